//! `txfm quickstart`: the whole pipeline on an embedded default, so a new user sees every stage
//! work in a few minutes on a laptop: simulate a Perturb-seq screen → build a corpus → train the
//! tiny model → embed the screen → PCA and (Lib+Log)Norm baselines → the perturbation benchmark
//! of all three against the simulator's true gene pairs → gene-pair recall from the model's
//! parameters → `report.md` with plots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::atomic::write_atomic;
use crate::embed::{EmbedOptions, EmbedSummary};
use crate::model::Readout;
use crate::eval::annotations::load_paths;
use crate::eval::perturb::input::{load as load_perturb_input, InputConfig};
use crate::eval::genes::{gene_recall, report as gene_report, GeneRecallConfig, GeneVectors, NullMode, DECODER_COMPONENTS, ENCODER_COMPONENTS};
use crate::eval::perturb::plots::write_plots;
use crate::eval::perturb::prepare::{prepare, Baseline, Prepare, CLS_MEAN_KEY};
use crate::eval::perturb::report::PerturbReport;
use crate::eval::perturb::run::{run as run_benchmark, PerturbConfig};
use crate::corpus::{build_corpus, stats::stats_table, BuildOptions, Corpus, CorpusSummary, DatasetSpec, Filters, Manifest};
use crate::data::genes::GeneIdKind;
use crate::simulate::{simulate_to_h5ad, SimConfig, SimSummary};
use crate::train::{train, RunConfig, TrainOptions, TrainOutcome};
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct QuickstartConfig {
    /// Folder for everything the quickstart writes (re-running replaces its contents).
    pub out: PathBuf,
    pub sim: SimConfig,
    /// The training stage's run (the `small` preset, the CPU recipe, or `medium`, the GPU one).
    pub run: RunConfig,
    /// The benchmark stage (quick: short probe and decoder training).
    pub bench: PerturbConfig,
    pub progress: bool,
}

impl QuickstartConfig {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        QuickstartConfig {
            out: out.into(),
            sim: SimConfig::quickstart(),
            run: Self::run_config("auto").expect("a preset"),
            bench: PerturbConfig::quick().with_seeds(3),
            progress: false,
        }
    }

    /// The run preset `name` (`auto`, `medium`, `small` or `tiny`) with the health's kNN on the
    /// simulated cell states: per cell, the screen's 60 perturbations are at chance for every
    /// embedding (PCA's kNN 3.5%, below the 10% of always guessing "control"), so they cannot
    /// show a collapse. `auto` is `medium` where libtorch sees a CUDA device, else `small`: the
    /// GPU recipe scores higher but would take hours on a CPU.
    pub fn run_config(name: &str) -> Result<RunConfig> {
        let name = match name {
            "auto" if crate::runtime::cuda_device_count() > 0 => "medium",
            "auto" => "small",
            other => other,
        };
        let mut run = match name {
            "medium" | "small" | "tiny" => RunConfig::preset(name)?,
            _ => return Err(Error::Invalid(format!("quickstart run preset '{name}': expected auto, medium, small or tiny"))),
        };
        run.health_label = Some("cell_state".into());
        Ok(run)
    }
}

#[derive(Debug, Clone)]
pub struct QuickstartOutputs {
    pub sim: SimSummary,
    pub manifest: PathBuf,
    pub corpus_dir: PathBuf,
    pub corpus: CorpusSummary,
    pub run_dir: PathBuf,
    pub train: TrainOutcome,
    pub embed: EmbedSummary,
    /// The screen with `obsm` X_txfm, X_pca and X_libnorm.
    pub cells: PathBuf,
    pub bench: PerturbReport,
    pub bench_dir: PathBuf,
    pub report: PathBuf,
}

/// The embeddings the benchmark compares, in table order.
pub const EMBEDDINGS: [&str; 4] = ["X_txfm", CLS_MEAN_KEY, "X_pca", "X_libnorm"];

/// Runs every stage and writes `report.md` in `cfg.out`.
pub fn run(cfg: &QuickstartConfig) -> Result<QuickstartOutputs> {
    let out = &cfg.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;

    stage(cfg, "1/7 simulate a Perturb-seq screen");
    let h5ad = out.join("sim.h5ad");
    let bar = if cfg.progress { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    let sim = simulate_to_h5ad(&cfg.sim, &h5ad, &bar)?;

    stage(cfg, "2/7 build a corpus");
    let mut ds = DatasetSpec::new("sim", "sim.h5ad", GeneIdKind::Raw);
    ds.obs_columns = ["perturbation", "batch", "is_control", "cell_state"].map(String::from).to_vec();
    // The simulated screen is shallow (a few hundred detected genes per cell), so the cell filter
    // sits below scanpy's 200 to keep the screen whole.
    let manifest = Manifest::new(vec![ds], Filters { min_cells_per_gene: 3, min_genes_per_cell: 50 });
    let manifest_path = out.join("corpus.toml");
    write_atomic(&manifest_path, &toml::to_string_pretty(&manifest).expect("manifest serialises"))?;
    let manifest = Manifest::load(&manifest_path)?;
    let corpus_dir = out.join("corpus");
    let corpus = build_corpus(&manifest, &corpus_dir, &BuildOptions { overwrite: true, progress: cfg.progress })?;

    stage(cfg, "3/7 train the model");
    let run_dir = out.join("run");
    // A re-run starts the training afresh, as it rebuilds the corpus.
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
    }
    let opened = Arc::new(Corpus::open(&corpus_dir)?);
    let trained = train(opened, &cfg.run, &TrainOptions { progress: cfg.progress, ..TrainOptions::new(&run_dir) })?;

    stage(cfg, "4/7 embed every cell with the trained model; 5/7 PCA and (Lib+Log)Norm baselines");
    let cells = out.join("cells.h5ad");
    // The [CLS ; token mean] read-out beside the paper's CLS, from the same pass (docs/experiments.md § 14).
    let what = Prepare {
        model: Some(run_dir.clone()),
        embed: EmbedOptions { readout: Readout::ClsMean, ..EmbedOptions::default() },
        baselines: vec![Baseline::Pca, Baseline::Libnorm],
        ..Prepare::default()
    };
    let prepared = prepare(&h5ad, &cells, &what, &bar_for(cfg))?;
    let embed = prepared.embed.clone().expect("a model was given");

    stage(cfg, "6/7 perturbation benchmark against the true gene pairs");
    let bench_dir = out.join("bench");
    std::fs::create_dir_all(&bench_dir).map_err(|e| Error::io(&bench_dir, e))?;
    let input_cfg = InputConfig { obsm_keys: prepared.keys.clone(), ..InputConfig::default() };
    let bench_input = load_perturb_input(&cells, &input_cfg)?;
    let dbs = load_paths(std::slice::from_ref(&sim.pairs_csv))?;
    let bench = run_benchmark(&bench_input, &dbs, &cfg.bench, &bar_for(cfg))?;
    bench.write_json(&bench_dir.join("report.json"))?;
    bench.write_markdown(&bench_dir.join("report.md"))?;
    write_plots(&bench, &bench_dir)?;

    stage(cfg, "7/7 gene-relationship recall from the model's parameters and PCA loadings");
    let genes_dir = out.join("genes");
    let (encoder, decoder) = GeneVectors::from_checkpoint(&run_dir)?;
    let loadings = GeneVectors::from_loadings(&out.join("cells.pca.pcs.tsv"))?;
    let mut recalls = Vec::new();
    for (v, components) in [(encoder, ENCODER_COMPONENTS), (decoder, DECODER_COMPONENTS), (loadings, 50)] {
        let rc = GeneRecallConfig { components, ..GeneRecallConfig::default() };
        recalls.push(gene_recall(&v, &dbs, &rc, NullMode::Streamed)?);
    }
    gene_report::write(&genes_dir, &recalls)?;

    let report = out.join("report.md");
    let mut text = report_markdown(&sim, &corpus, &manifest_path, &corpus_dir, &run_dir, &cfg.run, &trained);
    text.push_str(&later_stages_markdown(&embed, prepared.pca_variance.unwrap_or(f64::NAN), &bench));
    text.push_str(&format!(
        "\n## 7. Gene relationships from parameters\n\n\
         `txfm bench genes`: recall of the true gene pairs among the cosine similarities of the \
         encoder's gene embeddings, the decoder's per-gene weights and the PCA loadings, at the \
         5th/95th percentiles (chance ≈ 10%, the random-pair null). `genes/gene_recall.md`, \
         `genes/gene_recall.json`.\n\n{}",
        gene_report::markdown(&recalls).trim_start_matches("# Gene-relationship recall\n\n")
    ));
    write_atomic(&report, &text)?;
    Ok(QuickstartOutputs { sim, manifest: manifest_path, corpus_dir, corpus, run_dir, train: trained, embed, cells, bench, bench_dir, report })
}

fn bar_for(cfg: &QuickstartConfig) -> indicatif::ProgressBar {
    if cfg.progress { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() }
}

fn later_stages_markdown(embed: &EmbedSummary, pca_variance: f64, bench: &PerturbReport) -> String {
    let best = |key: &str| bench.best_rows().into_iter().find(|r| r.embedding == key);
    let line = |key: &str| match best(key) {
        Some(r) => format!(
            "- `{key}` (best post-processing: {}): average {}, bmdb {}\n",
            r.postprocess.name(),
            r.summary.average.mean.map_or("—".into(), |m| format!("{m:.1}")),
            r.summary.bmdb.mean.map_or("—".into(), |m| format!("{m:.1}"))
        ),
        None => format!("- `{key}`: not benchmarked\n"),
    };
    let mut s = format!(
        "\n## 4. Embedding\n\n\
         `txfm embed --readout cls_mean` wrote the CLS embedding of all {n} cells ({d} dimensions, \
         the paper's) into `obsm['X_txfm']` of `cells.h5ad`, and beside it the CLS with the mean of \
         the visible genes' output tokens ({d2} dimensions) into `obsm['{CLS_MEAN_KEY}']`, at {rate:.0} \
         cells/s, {axes}.\n\n\
         ## 5. Baselines\n\n\
         `txfm baseline pca` added `obsm['X_pca']` (50 components of LibNorm+log1p, {var:.1}% of the \
         variance; loadings in `cells.pca.pcs.tsv`) and `txfm baseline libnorm` `obsm['X_libnorm']`.\n\n\
         ## 6. Perturbation benchmark\n\n\
         `txfm bench perturb` on the four embeddings, with the simulator's true gene pairs as the \
         known relationships (bmdb). Full report: `bench/report.md`, `bench/report.json`; plots: \
         `bench/metrics.png`, `bench/bmdb_recall.png`, `bench/postprocess.png`.\n\n",
        n = embed.n_obs,
        d = embed.dim / 2,
        d2 = embed.dim,
        rate = embed.cells_per_second(),
        axes = match embed.axes_cells {
            Some(n) => format!(
                "each in its principal axes, fitted on {n} training cells at the end of training and saved \
                 with the weights (centred and rotated, distances unchanged: the benchmark's `scale` then \
                 whitens them as it whitens a PCA's; `--no-axes` writes the raw read-out)"
            ),
            None => "the raw read-out (the checkpoint carries no principal axes)".into(),
        },
        var = 100.0 * pca_variance,
    );
    for key in EMBEDDINGS {
        s.push_str(&line(key));
    }
    s.push('\n');
    s.push_str(&bench.main_table());
    s.push_str("\n![metrics](bench/metrics.png)\n");
    s
}

fn stage(cfg: &QuickstartConfig, what: &str) {
    if cfg.progress {
        eprintln!("quickstart: {what}");
    }
}

fn report_markdown(sim: &SimSummary, corpus: &CorpusSummary, manifest: &Path, corpus_dir: &Path, run_dir: &Path, run: &RunConfig, trained: &TrainOutcome) -> String {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(
        "# txfm quickstart report\n\n\
         ## 1. Simulated Perturb-seq screen\n\n\
         `{h5ad}`: {cells} cells × {genes} genes, {density:.1}% non-zero, {ctrl} control cells, \
         {pert} perturbations; {pairs} true gene pairs (ordered) in `{pairs_csv}`, the ground truth in `{truth}`. \
         Simulated at {rate:.0} cells/s.\n\n\
         ## 2. Corpus\n\n\
         Built from `{manifest}` into `{corpus}/` (Parquet shards; see `txfm corpus stats {corpus}`).\n\n\
         {table}\n\n\
         ## 3. Training\n\n\
         The CPU recipe (d {d}, {blocks} blocks, K {k}), {steps} steps at {train_rate:.0} samples/s, into `{run}/` (`config.toml`, \
         `metrics.jsonl`, the loss curve `loss.png`, `checkpoints/`). {validation}\n",
        h5ad = name(&sim.h5ad),
        cells = sim.n_cells,
        genes = sim.n_genes,
        density = 100.0 * sim.density(),
        ctrl = sim.n_controls,
        pert = sim.n_perturbations,
        pairs = sim.n_pairs,
        pairs_csv = name(&sim.pairs_csv),
        truth = name(&sim.truth_json),
        rate = sim.cells_per_second(),
        manifest = name(manifest),
        corpus = name(corpus_dir),
        table = stats_table(corpus),
        steps = trained.step,
        d = run.model.d_model,
        blocks = run.model.n_blocks,
        k = run.model.n_visible,
        train_rate = trained.samples_per_s,
        run = name(run_dir),
        validation = match &trained.eval {
            Some(e) => format!(
                "Final validation loss {:.4} on {} held-out cells, against {:.4} for the trivial baseline \
                 that predicts each gene's best constant ({}).{}",
                e.loss,
                e.n_samples,
                e.baseline,
                if e.loss < e.baseline { "the model beats it" } else { "the model does not beat it yet" },
                e.health.as_ref().map_or(String::new(), |h| format!(
                    "\n\nRepresentation health of the held-out cells' CLS embeddings (`run/health.png`): \
                     participation ratio {:.1} (effective dimensions), top component {:.0}% of the variance, \
                     ln(library size) ridge R² {:.2}{}.",
                    h.participation_ratio,
                    100.0 * h.top_share,
                    h.library_r2,
                    h.label.as_ref().map_or(String::new(), |l| format!(
                        ", {} kNN accuracy {:.0}% (chance {:.0}%)",
                        l.column,
                        100.0 * l.accuracy,
                        100.0 * l.chance
                    ))
                ))
            ),
            None => "No validation was run.".into(),
        },
    )
}
