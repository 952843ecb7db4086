//! `txfm train`: pretrain a model on a corpus, or resume a run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use txfm::corpus::Corpus;
use txfm::runtime::DeviceSpec;
use txfm::train::{resume, train, RunConfig, TrainOptions};

/// Train a TxFM model on a corpus; checkpoints, metrics.jsonl and config.toml go to --out.
#[derive(clap::Args)]
pub struct Args {
    /// A corpus folder (from `txfm corpus build`).
    #[arg(long)]
    corpus: PathBuf,
    /// Run preset: tiny (CPU), s, b or l.
    #[arg(long, default_value = "tiny", conflicts_with = "config")]
    preset: String,
    /// A run config (TOML or JSON) instead of a preset, e.g. a run's config.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its latest checkpoint, with that checkpoint's config.
    #[arg(long, conflicts_with_all = ["config", "steps"])]
    resume: bool,
    /// cpu, cuda, cuda:N or auto (overrides the config's).
    #[arg(long)]
    device: Option<String>,
    /// Total steps (overrides the config's steps or epochs).
    #[arg(long)]
    steps: Option<u64>,
    /// Checkpoint and exit once this many steps are done (resume later with --resume).
    #[arg(long)]
    stop_at: Option<u64>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let corpus = Arc::new(Corpus::open(&a.corpus).with_context(|| format!("opening corpus {}", a.corpus.display()))?);
    let opts = TrainOptions { out: a.out.clone(), progress: std::io::stderr().is_terminal(), stop_at: a.stop_at };
    let device = a.device.as_deref().map(str::parse::<DeviceSpec>).transpose()?;
    let outcome = if a.resume {
        resume(corpus, &opts, device)?
    } else {
        let mut config = match &a.config {
            Some(path) => RunConfig::load(path)?,
            None => RunConfig::preset(&a.preset)?,
        };
        if let Some(d) = &a.device {
            config.device = d.clone();
        }
        if let Some(s) = a.steps {
            (config.steps, config.epochs) = (Some(s), None);
        }
        train(corpus, &config, &opts).with_context(|| format!("training into {}", a.out.display()))?
    };
    eprintln!(
        "steps {}..{} of {} at {:.0} samples/s; checkpoint {}",
        outcome.first_step,
        outcome.step,
        outcome.total_steps,
        outcome.samples_per_s,
        outcome.checkpoint.display()
    );
    if let Some(e) = outcome.eval {
        println!("validation loss {:.4} (per-gene-mean baseline {:.4}) on {} samples", e.loss, e.baseline, e.n_samples);
    }
    Ok(())
}
