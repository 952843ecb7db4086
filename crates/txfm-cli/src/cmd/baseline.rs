//! `txfm baseline pca|libnorm`: baseline embeddings on the same data, streamed from disk.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use txfm::baseline::{fit_pca, write_libnorm, CountInput, LibNormConfig, PcaConfig, PcaOutputs, SvdConfig, SvdSolver};
use txfm::data::SourceOptions;

#[derive(clap::Subcommand)]
pub enum Command {
    /// PCA of LibNorm+log1p expression, as scanpy's normalize_total → log1p →
    /// [highly_variable_genes] → pca, streamed from disk (an exact SVD where it is cheap, else a
    /// randomized block Krylov one). Writes obsm['X_pca'], the loadings (<out>.pcs.tsv) and the
    /// explained variance (<out>.pca.json).
    Pca(PcaArgs),
    /// (Lib+Log)Norm expression as the embedding: obsm['X_libnorm'], over the highly variable
    /// genes of wide inputs (the genes kept: <out>.genes.tsv).
    Libnorm(LibnormArgs),
    /// scVI (Lopez et al. 2018, scvi-tools 1.4.2's model and defaults) fitted on the raw counts,
    /// streamed: obsm['X_scvi'] (the posterior mean) and the model in <out stem>.scvi/.
    Scvi(ScviArgs),
}

#[derive(clap::Args)]
pub struct Io {
    /// Input: an .h5ad, MTX folder or table of raw counts, or a corpus folder.
    input: PathBuf,
    /// Output .h5ad: a copy of an .h5ad input with the embedding added, otherwise obs, var and
    /// the embedding only.
    #[arg(long)]
    out: PathBuf,
    /// Write obs, var and the embedding only, even for an .h5ad input (no copy of X).
    #[arg(long)]
    embedding_only: bool,
    /// Library size each sample is scaled to before log1p (scanpy's normalize_total target_sum).
    #[arg(long, default_value_t = txfm::baseline::pca::SCANPY_TARGET_SUM)]
    target_sum: f64,
    /// h5ad matrix: X (default), raw, or a layer name.
    #[arg(long)]
    layer: Option<String>,
    /// h5ad var column holding gene IDs (default: the var index).
    #[arg(long)]
    var_column: Option<String>,
}

#[derive(clap::Args)]
pub struct PcaArgs {
    #[command(flatten)]
    io: Io,
    /// Principal components.
    #[arg(long, default_value_t = 50)]
    n_comps: usize,
    /// Restrict to this many Seurat-flavour highly variable genes (default: all genes).
    #[arg(long)]
    n_top_genes: Option<usize>,
    /// Extra random vectors beyond --n-comps (accuracy of the trailing components).
    #[arg(long, default_value_t = SvdConfig::default().oversample)]
    oversample: usize,
    /// SVD solver: auto (exact where the smaller side of the matrix is a few thousand or less and
    /// cheap, else randomized), exact (an f64 eigendecomposition, scikit-learn's "full"; alias
    /// full) or randomized.
    #[arg(long, default_value = "auto")]
    svd_solver: SvdSolver,
    /// Randomized solver: most passes of its Krylov basis over the data before the final one.
    #[arg(long, default_value_t = SvdConfig::default().n_iter)]
    n_iter: usize,
    /// Randomized solver: stop once every component's Ritz residual is within this share of its
    /// eigenvalue (0: run all --n-iter passes).
    #[arg(long, default_value_t = SvdConfig::default().tol)]
    tol: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads for the sparse products (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Memory (GiB) for the log-normalised matrix the SVD passes read; past it the matrix is
    /// spilled to an anonymous temporary file in TMPDIR and streamed back.
    #[arg(long, default_value_t = txfm::baseline::log_cache::DEFAULT_CACHE_BUDGET_BYTES as f64 / (1u64 << 30) as f64)]
    memory_gib: f64,
}

#[derive(clap::Args)]
pub struct LibnormArgs {
    #[command(flatten)]
    io: Io,
    /// Keep this many highly variable genes of a wider input (0: every gene).
    #[arg(long, default_value_t = 2000)]
    n_top_genes: usize,
}

#[derive(clap::Args)]
pub struct ScviArgs {
    #[command(flatten)]
    io: Io,
    /// Settings: default (scvi-tools'), txeval (Tx-Evaluation's: 256 latent, 512 hidden, 8,000
    /// HVGs) or txfm (the TxFM paper's: 768 latent, 1,024 hidden, AdamW at 5e-4).
    #[arg(long, default_value = "default")]
    preset: String,
    /// obs column of the batch covariate (injected into the decoder).
    #[arg(long)]
    batch_key: Option<String>,
    #[arg(long)]
    n_latent: Option<usize>,
    #[arg(long)]
    n_hidden: Option<usize>,
    #[arg(long)]
    n_layers: Option<usize>,
    /// zinb (default), nb or poisson.
    #[arg(long)]
    likelihood: Option<txfm::baseline::scvi::Likelihood>,
    /// Epochs (default: scvi-tools' rule, min(round(20000 / n_cells · 400), 400)).
    #[arg(long)]
    max_epochs: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Restrict to this many highly variable genes.
    #[arg(long)]
    n_top_genes: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Hold out these cells (a file of 0-based row numbers, one per line, e.g. another fit's
    /// validation cells) instead of a random 10%.
    #[arg(long)]
    validation_cells: Option<PathBuf>,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pca(a) => pca(a),
        Command::Libnorm(a) => libnorm(a),
        Command::Scvi(a) => scvi(a),
    }
}

fn scvi(a: ScviArgs) -> anyhow::Result<()> {
    use txfm::baseline::scvi::{model_dir_beside, write_scvi, ScviConfig};
    let model_dir = model_dir_beside(&a.io.out);
    txfm::atomic::refuse_to_overwrite_input(&a.io.input, &a.io.out)?;
    txfm::atomic::refuse_to_overwrite_input(&a.io.input, &model_dir)?;
    let mut cfg = ScviConfig::preset(&a.preset)?;
    if let Some(v) = a.n_latent {
        cfg.n_latent = v;
    }
    if let Some(v) = a.n_hidden {
        cfg.n_hidden = v;
    }
    if let Some(v) = a.n_layers {
        cfg.n_layers = v;
    }
    if let Some(v) = a.likelihood {
        cfg.likelihood = v;
    }
    if let Some(v) = a.lr {
        cfg.lr = v;
    }
    if let Some(v) = a.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    cfg.max_epochs = a.max_epochs.or(cfg.max_epochs);
    cfg.n_top_genes = a.n_top_genes.or(cfg.n_top_genes);
    cfg.validate("command line")?;
    let device = a.device.parse::<txfm::runtime::DeviceSpec>()?.resolve()?;
    let mut input = open(&a.io)?;
    let epochs = cfg.epochs_for(input.n_obs());
    let bar = if std::io::stderr().is_terminal() { indicatif::ProgressBar::new(epochs as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("scvi [{bar:30}] epoch {pos}/{len} ({elapsed}, ETA {eta}) {msg}").expect("valid template"),
    );
    let validation = match &a.validation_cells {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .split_whitespace()
                .map(|t| t.parse::<usize>().with_context(|| format!("{}: '{t}' is not a row number", p.display())))
                .collect::<anyhow::Result<Vec<usize>>>()?,
        ),
        None => None,
    };
    let (model, split, warnings) = write_scvi(&mut input, &cfg, a.batch_key.as_deref(), validation.as_deref(), device, &a.io.out, a.io.embedding_only, &mut |r, _| {
        bar.inc(1);
        bar.set_message(format!(
            "ELBO train {:.2}{}",
            r.elbo_train,
            r.elbo_validation.map(|v| format!(", validation {v:.2}")).unwrap_or_default()
        ));
    })
    .with_context(|| format!("fitting scVI on {}", a.io.input.display()))?;
    bar.finish_and_clear();
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let (key, n_latent) = (txfm::baseline::scvi::OBSM_KEY, model.config.n_latent);
    let last = model.history.last().expect("at least one epoch");
    println!(
        "{}: obsm['{key}'] of {} cells × {} latent dims; {} genes, {} batch(es), {} epochs on {} training cells: \
         ELBO per cell {:.2} (train){}",
        a.io.out.display(),
        input.n_obs(),
        n_latent,
        model.var_names.len(),
        model.batch_names.len(),
        model.history.len(),
        split.n_train,
        last.elbo_train,
        last.elbo_validation.map(|v| format!(", {v:.2} on {} held-out cells", split.n_validation)).unwrap_or_default()
    );
    println!("model: {}", model_dir.display());
    Ok(())
}

fn open(io: &Io) -> anyhow::Result<CountInput<'static>> {
    let opts = SourceOptions { layer: io.layer.clone(), var_column: io.var_column.clone(), ..SourceOptions::default() };
    CountInput::open(&io.input, &opts).with_context(|| format!("opening {}", io.input.display()))
}

fn progress(total: usize) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {human_pos}/{human_len} rows ({per_sec}, ETA {eta})")
            .expect("valid template"),
    );
    bar
}

fn pca(a: PcaArgs) -> anyhow::Result<()> {
    let outs = PcaOutputs::beside(&a.io.out);
    for out in [&outs.h5ad, &outs.loadings, &outs.summary] {
        txfm::atomic::refuse_to_overwrite_input(&a.io.input, out)?;
    }
    let mut input = open(&a.io)?;
    let config = PcaConfig {
        target_sum: a.io.target_sum,
        n_top_genes: a.n_top_genes,
        svd: SvdConfig {
            n_components: a.n_comps,
            oversample: a.oversample,
            n_iter: a.n_iter,
            tol: a.tol,
            solver: a.svd_solver,
            seed: a.seed,
            threads: a.threads,
        },
        cache_budget_bytes: (a.memory_gib.max(0.0) * (1u64 << 30) as f64) as u64,
    };
    // Each stage of the fit sizes the bar to the passes it expects.
    let n_obs = input.n_obs();
    let bar = progress(n_obs);
    let fit = fit_pca(&mut input, &config, &mut |event| event.apply(&bar, n_obs)).context("fitting PCA")?;
    bar.finish_and_clear();
    let warnings = fit.write(&mut input, &outs, a.io.embedding_only)?;
    for w in fit.convergence_warning().into_iter().chain(warnings) {
        eprintln!("warning: {w}");
    }
    let total: f64 = fit.explained_variance_ratio.iter().sum();
    println!(
        "{}: {} samples × {} genes used (of {}), {} components explaining {:.2}% of the variance \
         (PC1 {:.2}%); {:.1} s statistics + {:.1} s SVD ({}, {} passes{})",
        outs.h5ad.display(),
        fit.n_obs,
        fit.var_indices.len(),
        input.n_vars(),
        fit.n_comps(),
        100.0 * total,
        100.0 * fit.explained_variance_ratio[0],
        fit.seconds_stats,
        fit.seconds_svd,
        fit.solver,
        fit.passes,
        fit.residual.map(|r| format!(", residual {r:.1e}")).unwrap_or_default()
    );
    println!("loadings: {}\nsummary: {}", outs.loadings.display(), outs.summary.display());
    Ok(())
}

fn libnorm(a: LibnormArgs) -> anyhow::Result<()> {
    txfm::atomic::refuse_to_overwrite_input(&a.io.input, &a.io.out)?;
    let mut input = open(&a.io)?;
    let config = LibNormConfig { target_sum: a.io.target_sum, n_top_genes: (a.n_top_genes > 0).then_some(a.n_top_genes) };
    let bar = progress(input.n_obs() * 2);
    bar.set_message("libnorm");
    let s = write_libnorm(&mut input, &config, &a.io.out, a.io.embedding_only, &mut |rows| bar.inc(rows as u64))?;
    bar.finish_and_clear();
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: obsm['{}'] of {} samples × {} genes (of {}); genes: {}",
        s.h5ad.display(),
        txfm::baseline::libnorm::OBSM_KEY,
        s.n_obs,
        s.n_genes,
        s.n_vars_input,
        s.genes.display()
    );
    Ok(())
}
