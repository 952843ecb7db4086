//! `txfm finetune`: self-supervised fine-tuning of a pretrained run on a target corpus.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use txfm::corpus::Corpus;
use txfm::train::{Finetune, TrainOptions};

/// Fine-tune a pretrained run on a target corpus (masked reconstruction, the transductive
/// setting): starts from --from's latest weights with a fresh optimiser, extends the gene
/// vocabulary with the corpus's unseen genes, and writes an ordinary run folder to --out
/// (continue it with `txfm train --resume`).
#[derive(clap::Args)]
pub struct Args {
    /// The pretrained run folder.
    #[arg(long)]
    from: PathBuf,
    /// The target corpus folder (from `txfm corpus build`).
    #[arg(long)]
    corpus: PathBuf,
    /// New run folder.
    #[arg(long)]
    out: PathBuf,
    /// Steps of the fine-tuning run (default: the pretrained run's steps or epochs).
    #[arg(long)]
    steps: Option<u64>,
    /// Peak learning rate (default: the pretrained run's).
    #[arg(long)]
    lr: Option<f64>,
    /// cpu, cuda, cuda:N or auto (default: the pretrained run's).
    #[arg(long)]
    device: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let corpus = Arc::new(Corpus::open(&a.corpus).with_context(|| format!("opening corpus {}", a.corpus.display()))?);
    let plan = Finetune::new(&a.from, &corpus).with_context(|| format!("reading pretrained run {}", a.from.display()))?;
    let o = plan.overlap;
    println!(
        "{} of the corpus's genes are in the pretrained vocabulary, {} are new (vocabulary {} → {}); {} pretrained genes are not profiled",
        o.in_vocab,
        o.new,
        plan.from.var_names.len(),
        plan.vocab.len(),
        o.unprofiled
    );
    let mut config = plan.config();
    if let Some(s) = a.steps {
        (config.steps, config.epochs) = (Some(s), None);
    }
    if let Some(lr) = a.lr {
        config.optimizer.lr = lr;
    }
    if let Some(d) = a.device {
        config.device = d;
    }
    let opts = TrainOptions { out: a.out.clone(), progress: std::io::stderr().is_terminal(), stop_at: None, on_step: None };
    let outcome = plan.run(corpus, &config, &opts).with_context(|| format!("fine-tuning into {}", a.out.display()))?;
    eprintln!("{} steps at {:.0} samples/s; checkpoint {}", outcome.step, outcome.samples_per_s, outcome.checkpoint.display());
    if let Some(e) = outcome.initial_eval {
        println!("validation loss before fine-tuning {:.4}", e.loss);
    }
    if let Some(e) = outcome.eval {
        println!("validation loss {:.4} (per-gene baseline {:.4}) on {} samples", e.loss, e.baseline, e.n_samples);
    }
    Ok(())
}
