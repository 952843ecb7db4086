//! `txfm bench perturb`: the perturbation benchmark over embeddings in an h5ad's obsm.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use txfm::eval::perturb::guides::GuideConfig;
use txfm::eval::perturb::input::InputConfig;
use txfm::eval::perturb::postprocess::PostProcess;
use txfm::eval::perturb::prepare::Baseline;
use txfm::eval::perturb::workflow::{bench_file, Additions, BenchSettings};
use txfm::model::Readout;

/// The perturbation benchmark (Bendidi et al. 2024, as extended by TxFM) over one or more
/// embeddings in `obsm`: ilisi, lin, knn, p.cst, bmdb and inv under none/center/scale/TVN
/// post-processing, mean ± sd over seeds. Writes report.json, report.md and PNG plots to --out.
#[derive(clap::Args)]
pub struct Args {
    /// The .h5ad with raw counts in X (or --layer) and the embeddings in obsm.
    #[arg(long)]
    input: PathBuf,
    /// An obsm key to evaluate; repeat to compare embeddings in one table.
    #[arg(long = "obsm")]
    obsm: Vec<String>,
    /// Embed the input with this trained run (or checkpoint) first and evaluate it as X_txfm.
    #[arg(long)]
    model: Option<PathBuf>,
    /// --model's read-out: cls (X_txfm, the paper's) or cls_mean (also X_txfm_cls_mean,
    /// [CLS ; token mean], from the same pass).
    #[arg(long, default_value = "cls", value_parser = str::parse::<Readout>, requires = "model")]
    readout: Readout,
    /// Compute a baseline on the input first and evaluate it: pca (X_pca), libnorm (X_libnorm)
    /// or scvi (X_scvi: scVI fitted on the input with scvi-tools' defaults and --batch-key as its
    /// covariate; the model lands in OUT/cells.scvi/); repeatable. With --model or --baseline the input plus the new embeddings is
    /// written to OUT/cells.h5ad and benchmarked from there.
    #[arg(long = "baseline")]
    baselines: Vec<String>,
    /// Epochs of --baseline scvi (default: scvi-tools' rule, min(round(20000 / n_cells · 400), 400)).
    #[arg(long)]
    scvi_max_epochs: Option<usize>,
    /// Device for --model's embedding and for training the probe and the inv decoder: cpu, cuda,
    /// cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// obs column of perturbation labels (gene symbols).
    #[arg(long, default_value = "perturbation")]
    pert_key: String,
    /// obs column of batches.
    #[arg(long, default_value = "batch")]
    batch_key: String,
    /// The control label in --pert-key.
    #[arg(long, default_value = "control")]
    control: String,
    /// Take the perturbation labels from this obsm guide-count matrix (cells × guides) instead of
    /// --pert-key: cells with exactly one guide (count ≥ --guide-min-count) keep its target, the
    /// guide name up to its first `_`; non-targeting guides give the --control label.
    #[arg(long)]
    guides: Option<String>,
    /// The guides' names when --guides is a plain matrix: uns/KEY, or a text file with one per line
    /// (a dataframe in obsm names its own columns).
    #[arg(long, requires = "guides")]
    guide_names: Option<String>,
    /// Count from which a guide counts as detected in a cell.
    #[arg(long, default_value_t = 1.0, requires = "guides")]
    guide_min_count: f32,
    /// Pair databases: a folder (its CORUM, HuMAP, Reactome, SIGNOR and StringDB .txt files) or
    /// `entity1,entity2` CSV files; repeatable.
    #[arg(long, required = true)]
    annotations: Vec<PathBuf>,
    /// Number of seeds (splits), 0..S; at least 1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Post-processings to compare (comma-separated: none, center, scale, tvn).
    #[arg(long, value_delimiter = ',', default_value = "none,center,scale,tvn")]
    postprocess: Vec<String>,
    /// h5ad matrix with raw counts: X (default), raw, or a layer name.
    #[arg(long)]
    layer: Option<String>,
    /// Skip reading X: no inv and no Tx-Evaluation p.cst.
    #[arg(long)]
    no_expression: bool,
    /// Skip inv (the decoder is the slowest metric).
    #[arg(long)]
    no_inv: bool,
    /// Short probe and decoder training (a quick look, not the reference settings).
    #[arg(long)]
    quick: bool,
    /// A JSON file of PerturbConfig fields (flags above override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// kNN neighbours (default ⌊√n_train⌋ made odd).
    #[arg(long)]
    knn_k: Option<usize>,
    /// LISI perplexity.
    #[arg(long)]
    perplexity: Option<usize>,
    /// Linear-probe epochs.
    #[arg(long)]
    probe_epochs: Option<usize>,
    /// Decoder (inv) epochs.
    #[arg(long)]
    inv_epochs: Option<usize>,
    /// Train and run the inv decoders under bfloat16 autocast (not the reference's float32): on a
    /// CPU with AMX the full Jurkat benchmark took 6.2 min instead of 10.5, every inv within 0.004
    /// points of float32's (BENCHMARKS.md); without AMX, not measured.
    #[arg(long)]
    inv_bf16: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let settings = BenchSettings {
        config_file: a.config.clone(),
        quick: a.quick,
        seeds: a.seeds as usize,
        postprocess: a.postprocess.iter().map(|s| s.trim().parse::<PostProcess>()).collect::<Result<_, _>>()?,
        inv: !a.no_inv,
        device: a.device.clone(),
        knn_k: a.knn_k,
        perplexity: a.perplexity,
        probe_epochs: a.probe_epochs,
        inv_epochs: a.inv_epochs,
        inv_bf16: a.inv_bf16,
    };
    let input = InputConfig {
        obsm_keys: a.obsm.clone(),
        pert_key: a.pert_key,
        batch_key: a.batch_key.clone(),
        control: a.control,
        expression: !a.no_expression,
        layer: a.layer.clone(),
        guides: a.guides.clone().map(|obsm_key| GuideConfig {
            obsm_key,
            names: a.guide_names.clone(),
            min_count: a.guide_min_count,
            file: Some(a.input.clone()),
        }),
        ..InputConfig::default()
    };
    let add = Additions {
        model: a.model.clone(),
        readout: a.readout,
        baselines: a.baselines.iter().map(|b| b.parse::<Baseline>()).collect::<Result<_, _>>()?,
        scvi_max_epochs: a.scvi_max_epochs,
    };
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len} runs, {elapsed} elapsed, ETA {eta}")
                .expect("valid template"),
        )
    } else {
        ProgressBar::hidden()
    };
    let outcome = bench_file(&a.input, &input, &add, &settings, &a.annotations, &a.out, &mut |s| eprintln!("{s}"), &bar)?;
    if let Some(p) = &outcome.prepared {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
    }
    println!("{}", outcome.report.to_markdown());
    println!("written: {}, {}", outcome.json.display(), outcome.markdown.display());
    for p in outcome.plots {
        println!("plot: {}", p.display());
    }
    Ok(())
}
