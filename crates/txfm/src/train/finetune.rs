//! Self-supervised fine-tuning on target data, the paper's transductive setting: a new run starts
//! from a pretrained run's latest weights (not its optimiser: a fresh AdamW and schedule over the
//! new run's steps) and trains the same masked reconstruction on the target corpus.
//!
//! The pretrained vocabulary is kept and the target corpus's unseen genes are appended
//! ([`Vocabulary::extend`]), so every pretrained gene keeps its index; the new genes' embedding
//! and decoder rows start as the model's own initialisation (embeddings at N(0,
//! `gene_embedding_std`²), decoder weights at N(0, 0.02²), zero bias, zero log-dispersion). The run folder is an ordinary one whose `config.toml` names the checkpoint it
//! started from (`finetuned_from`), which is what lets `resume` and `load_model` map the target
//! corpus onto the extended vocabulary.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tch::{nn, Tensor};

use super::checkpoint::{checkpoints_dir, Checkpoint};
use crate::config::RunConfig;
use super::trainer::{self, Start, TrainOptions, TrainOutcome};
use super::vocab::{VocabOverlap, Vocabulary};
use crate::corpus::Corpus;
use crate::{Error, Result};

/// A planned fine-tuning run: the pretrained checkpoint and the extended vocabulary.
#[derive(Debug, Clone)]
pub struct Finetune {
    /// The pretrained run's latest checkpoint.
    pub from: Checkpoint,
    /// Its vocabulary followed by the target corpus's new genes.
    pub vocab: Vocabulary,
    pub overlap: VocabOverlap,
}

impl Finetune {
    /// Plans fine-tuning the latest checkpoint of run folder `pretrained` on `corpus`.
    pub fn new(pretrained: &Path, corpus: &Corpus) -> Result<Self> {
        // Absolute, so the new run's `finetuned_from` names the checkpoint from anywhere.
        let pretrained = &std::fs::canonicalize(pretrained).map_err(|e| Error::io(pretrained, e))?;
        let from = Checkpoint::latest(pretrained)?
            .ok_or_else(|| Error::Invalid(format!("{}: no checkpoint to fine-tune from", checkpoints_dir(pretrained).display())))?;
        let (vocab, overlap) = from.vocabulary().extend(corpus);
        // Nothing pretrained would carry over: every gene of the corpus would be a fresh row.
        // Usually the two sides name genes differently (symbols against Ensembl IDs).
        if overlap.in_vocab == 0 {
            let show = |names: &[String]| names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            return Err(Error::Invalid(format!(
                "corpus {} shares no gene with the pretrained vocabulary of {} ({} genes): fine-tuning would start from \
                 weights that know none of its genes. Check the gene IDs (the corpus has e.g. {}; the model {})",
                corpus.dir.display(),
                from.dir.display(),
                from.var_names.len(),
                show(&corpus.var_names),
                show(&from.var_names)
            )));
        }
        Ok(Finetune { from, vocab, overlap })
    }

    /// The pretrained run's config, marked as fine-tuned from its checkpoint; steps, learning
    /// rate and device are the caller's to change, the model config is not.
    pub fn config(&self) -> RunConfig {
        RunConfig { finetuned_from: Some(self.from.dir.clone()), ..self.from.config.clone() }
    }

    /// Trains `config` (from [`Self::config`]) on `corpus` into `opts.out`, like
    /// [`train`](super::train) but from the pretrained weights.
    pub fn run(self, corpus: Arc<Corpus>, config: &RunConfig, opts: &TrainOptions) -> Result<TrainOutcome> {
        if config.model != self.from.config.model || config.finetuned_from.as_ref() != Some(&self.from.dir) {
            return Err(Error::Invalid(format!(
                "the fine-tuning config must keep the model config of {} and name it in finetuned_from (see Finetune::config)",
                self.from.dir.display()
            )));
        }
        trainer::start(corpus, config, opts, Start::Finetune { from: self.from, vocab: self.vocab })
    }
}

/// Loads `from`'s weights into `vs`, a model of the same config over an extended vocabulary:
/// tensors of equal shape are copied whole, gene-indexed ones (first dimension the pretrained
/// vocabulary size there, larger here) into their first rows, leaving the new genes' rows as
/// initialised.
pub(super) fn load_pretrained(vs: &mut nn::VarStore, from: &Checkpoint) -> Result<()> {
    let path = from.model_path();
    let bad = |message: String| Error::format(&path, message);
    let pretrained: HashMap<String, Tensor> = Tensor::read_safetensors(&path).map_err(|e| bad(e.to_string()))?.into_iter().collect();
    let n_old = from.var_names.len() as i64;
    let mut variables = vs.variables();
    if let Some(extra) = pretrained.keys().find(|name| !variables.contains_key(*name)) {
        return Err(bad(format!("tensor {extra} is not a parameter of the model config")));
    }
    tch::no_grad(|| {
        for (name, var) in variables.iter_mut() {
            let src = pretrained.get(name).ok_or_else(|| bad(format!("parameter {name} is missing")))?;
            let (to, of) = (var.size(), src.size());
            if to == of {
                var.copy_(src);
            } else if of.first() == Some(&n_old) && to.first().is_some_and(|&g| g > n_old) && to[1..] == of[1..] {
                var.narrow(0, 0, n_old).copy_(src);
            } else {
                return Err(bad(format!("parameter {name} has shape {of:?}; the model needs {to:?}")));
            }
        }
        Ok(())
    })
}
