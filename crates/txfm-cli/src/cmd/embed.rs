//! `txfm embed`: embeddings (the CLS, or [CLS ; token mean]) of every sample of an input file.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use txfm::embed::{EmbedJob, EmbedOptions, OutputFormat};
use txfm::model::Readout;
use txfm::runtime::DeviceSpec;

use super::source_args::SourceArgs;

/// Embed every sample of an input (.h5ad, 10x MTX folder or bulk table) with a trained model:
/// its genes are mapped onto the model's vocabulary, K visible genes are drawn from those it
/// profiles as in training, and the encoder's CLS output (see --readout), in the principal axes
/// the model carries (see --no-axes), is written, streamed chunk by chunk.
/// Output by extension: .h5ad (a copy of the input's obs, var, X and obsm plus obsm[KEY]),
/// .npy (float32 n_obs × d, with obs in <stem>.obs.tsv) or .parquet (obs_name, obs columns,
/// KEY_0 … KEY_{d-1}).
#[derive(clap::Args)]
pub struct Args {
    /// A run folder (uses checkpoints/latest) or a checkpoint folder.
    #[arg(long)]
    model: PathBuf,
    /// The input: .h5ad, 10x MTX folder, or .tsv/.csv table.
    #[arg(long)]
    input: PathBuf,
    /// The output file; replaced atomically if it exists.
    #[arg(long)]
    output: PathBuf,
    /// Output format: h5ad, npy or parquet (default: from the output's extension).
    #[arg(long)]
    format: Option<String>,
    /// obsm key of the embeddings (h5ad), column prefix (parquet).
    #[arg(long, default_value = "X_txfm")]
    key: String,
    /// How to read the input. `--gene-ids auto` follows the model's vocabulary: raw IDs for a
    /// model trained on raw IDs.
    #[command(flatten)]
    source: SourceArgs,
    /// Seed of the visible-gene draws (default: the run's loader seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Average the CLS of this many independent draws of the visible genes.
    #[arg(long, default_value_t = 1)]
    samplings: usize,
    /// What to read from the encoder: cls (the CLS token, the paper's sample embedding) or
    /// cls_mean ([CLS ; mean of the visible genes' output tokens], twice as wide; +2.6 points of
    /// the benchmark average on the CPU recipe, docs/experiments.md § 14).
    #[arg(long, default_value = "cls", value_parser = str::parse::<Readout>)]
    readout: Readout,
    /// Visible genes per sample, capped at the genes the input profiles. Default: the model's K;
    /// for a run that draws detected genes first (loader.zero_weight < 1), every detected gene
    /// of each cell and at least K. Give it to replay the training loader's draw exactly.
    #[arg(long)]
    k: Option<usize>,
    /// Write the raw read-out instead of mapping it into the principal axes fitted on the
    /// training corpus at the end of training (a shift and a rotation: distances are the same,
    /// but the columns are then uncorrelated and ordered by variance, as a PCA's, so that the
    /// benchmark's `scale` whitens them; docs/experiments.md § 22).
    #[arg(long)]
    no_axes: bool,
    /// Samples per forward pass.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    threads: Option<usize>,
    /// For a model trained with frequency-weighted sampling (tau ≠ 0): its training corpus, whose
    /// gene detection counts give the weights (default: counted in the input).
    #[arg(long)]
    weights_corpus: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let gene_ids = a.source.gene_id_kind()?;
    let format = a.format.as_deref().map(str::parse::<OutputFormat>).transpose()?;
    anyhow::ensure!(a.samplings > 0 && a.batch_size > 0, "--samplings and --batch-size must be positive");
    let opts = EmbedOptions {
        model: a.model.clone(),
        input: a.input.clone(),
        source: a.source.options(),
        gene_ids,
        output: a.output.clone(),
        format,
        key: a.key,
        seed: a.seed,
        k: a.k,
        samplings: a.samplings,
        readout: a.readout,
        principal_axes: !a.no_axes,
        batch_size: a.batch_size,
        device: a.device.parse::<DeviceSpec>()?,
        threads: a.threads,
        weights_corpus: a.weights_corpus,
        ..EmbedOptions::default()
    };
    let job = EmbedJob::prepare(opts)
        .with_context(|| format!("embedding {} with {}", a.input.display(), a.model.display()))?;
    eprintln!(
        "model {} (step {}, d = {}), read-out {} ({} dims), {}",
        job.embedder.bundle.dir.display(),
        job.embedder.bundle.step().map_or("?".to_string(), |s| s.to_string()),
        job.embedder.bundle.config.model.d_model,
        job.opts.readout,
        job.embedder.dim(),
        job.axes_note()
    );
    eprintln!("genes: {}", job.genes.mapping.report);
    eprintln!("{}", job.genes);
    let profiled = job.genes.profiled.len();
    let k = if job.sampler.k > profiled {
        format!("K = {profiled} (the {} asked for, capped at the {profiled} profiled genes)", job.sampler.k)
    } else if job.sampler.all_detected {
        format!("every detected gene of each cell, at least K = {}", job.sampler.k)
    } else {
        format!("K = {}", job.sampler.k)
    };
    eprintln!(
        "visible genes: {k}, {} sampling, seed {}, {} sampling(s) averaged",
        job.weights, job.sampler.seed, job.opts.samplings
    );
    let bar = if std::io::stderr().is_terminal() {
        let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} cells  {per_sec}  ETA {eta}")
            .expect("the template is valid");
        indicatif::ProgressBar::new(job.n_obs() as u64).with_style(style)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let summary = job.run(&bar).with_context(|| format!("writing embeddings to {}", a.output.display()))?;
    bar.finish_and_clear();
    for w in &summary.warnings {
        eprintln!("warning: {w}");
    }
    let files: Vec<String> = summary.files.iter().map(|f| f.display().to_string()).collect();
    eprintln!(
        "embedded {} cells × {} dims in {:.1}s ({:.0} cells/s) → {}",
        summary.n_obs,
        summary.dim,
        summary.seconds,
        summary.cells_per_second(),
        files.join(", ")
    );
    Ok(())
}
