//! Checkpoints: everything needed to reload a model or resume its training, in one folder
//! `RUN/checkpoints/step-NNNNNNN/`: a trained-model bundle ([`crate::model::bundle`]:
//! `model.safetensors`, `config.toml`, `genes.tsv`, what embedding reads) plus the resume state:
//! - `optimizer.safetensors`: AdamW's step count and moments,
//! - `state.json`: where the run stands ([`TrainState`]),
//! - `axes.safetensors`, in the final checkpoint only: the read-outs' principal axes
//!   ([`crate::model::axes`]), fitted on the training corpus once training is done,
//! - `SHA256SUMS`: the SHA-256 of each file above and of the bundle's, in `sha256sum` format (so
//!   `sha256sum -c SHA256SUMS` checks it by hand), verified whenever the checkpoint is opened.
//!
//! The genes are checked against the corpus on load: equal for a run trained on it, containing it
//! for a fine-tuning run (`RunConfig::finetuned_from`).
//!
//! A checkpoint is written into a temporary folder and renamed into place, then
//! `checkpoints/latest` is atomically pointed at it: a kill at any moment leaves the previous
//! checkpoint intact and `latest` naming a complete one. What a kill cannot do, a disk or a copy
//! can: a file truncated or changed afterwards fails its checksum on open, and a resume falls back
//! to the newest intact checkpoint, saying which it skipped and why
//! ([`Checkpoint::latest_intact`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device};

use crate::config::RunConfig;
use super::loader::LoaderState;
use super::optim::AdamW;
use super::vocab::{VocabMap, Vocabulary, GENES_SHOWN};
use crate::atomic::{temp_dir_beside, write_atomic};
use crate::corpus::Corpus;
use crate::model::bundle::{genes_tsv, latest_in_run, verify, write_sums, ModelBundle, CHECKPOINTS_DIR, CONFIG_FILE, GENES_FILE, LATEST_FILE, MODEL_FILE};
use crate::model::{ReadoutAxes, TxFm, AXES_FILE};
use crate::{Error, Result};

const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";
/// The files `SHA256SUMS` covers, in its order (and [`AXES_FILE`] last where written).
const SUMMED: [&str; 5] = [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CONFIG_FILE, GENES_FILE];

/// What identifies the corpus a run trains on, to notice a resume on another one with the same
/// genes: its sample count and its datasets' names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusMark {
    pub n_samples: u64,
    pub datasets: Vec<String>,
}

impl CorpusMark {
    pub fn of(corpus: &Corpus) -> Self {
        CorpusMark { n_samples: corpus.summary.n_samples, datasets: corpus.summary.datasets.iter().map(|d| d.name.clone()).collect() }
    }
}

impl std::fmt::Display for CorpusMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} samples of {}", self.n_samples, self.datasets.join(", "))
    }
}

/// Where a run stands after `step` completed steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub step: u64,
    pub total_steps: u64,
    /// The next batch of the training sequence.
    pub loader: LoaderState,
    /// `RunConfig::seed`; with `step` it fixes the next step's random numbers.
    pub seed: u64,
    /// Learning rate of the next step (for the reader: the schedule is a function of `step`).
    pub next_lr: f64,
    pub weight_decay: f64,
    /// Ranks of a data-parallel run: with `loader.batch_size` it fixes the global batch, so a run
    /// resumes on as many ranks as it started on. Left out of `state.json` for single-process runs.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub world_size: u64,
    /// The corpus the run trains on (absent in checkpoints written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<CorpusMark>,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// The folder of checkpoints of a run.
pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join(CHECKPOINTS_DIR)
}

/// The folder of the checkpoint after `step` steps.
pub fn step_dir(run: &Path, step: u64) -> PathBuf {
    checkpoints_dir(run).join(format!("step-{step:07}"))
}

/// The `step-N` checkpoint folders of `run`, newest first, without opening them.
fn step_dirs(run: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = checkpoints_dir(run);
    let mut found = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(step) = name.strip_prefix("step-").and_then(|n| n.parse::<u64>().ok())
                && entry.path().is_dir()
            {
                found.push((step, entry.path()));
            }
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found)
}

/// The first checkpoint found in `run` (the `latest` pointer, or else the newest `step-N`
/// folder), without opening or checking it: whether the folder already holds a run.
pub fn any_checkpoint(run: &Path) -> Result<Option<PathBuf>> {
    let pointer = checkpoints_dir(run).join(LATEST_FILE);
    if pointer.exists() {
        return Ok(Some(pointer));
    }
    Ok(step_dirs(run)?.into_iter().next().map(|(_, p)| p))
}

/// What a checkpoint holds, borrowed from the trainer: the weights `vs` (indexed by `vocab`),
/// the optimiser, where the run stands, its config and, in the final checkpoint, the read-outs'
/// principal axes.
pub struct Snapshot<'a> {
    pub vs: &'a nn::VarStore,
    pub optimizer: &'a AdamW,
    pub state: &'a TrainState,
    pub config: &'a RunConfig,
    pub vocab: &'a Vocabulary,
    pub axes: Option<&'a ReadoutAxes>,
}

/// Writes `snapshot` as the checkpoint of `run` at its step and points `latest` at it.
pub fn save(run: &Path, snapshot: &Snapshot) -> Result<PathBuf> {
    let Snapshot { vs, optimizer, state, config, vocab, axes } = *snapshot;
    let dir = step_dir(run, state.step);
    let tmp = temp_dir_beside(&dir)?;
    let model_path = tmp.path().join(MODEL_FILE);
    vs.save(&model_path).map_err(|e| Error::format(&model_path, e.to_string()))?;
    optimizer.save(&tmp.path().join(OPTIMIZER_FILE))?;
    let state_json = serde_json::to_string_pretty(state).expect("the state serialises");
    write_atomic(&tmp.path().join(STATE_FILE), &state_json)?;
    write_atomic(&tmp.path().join(CONFIG_FILE), &config.to_toml())?;
    write_atomic(&tmp.path().join(GENES_FILE), &genes_tsv(&vocab.names, &vocab.symbols))?;
    if let Some(axes) = axes {
        axes.save(&tmp.path().join(AXES_FILE))?;
    }
    write_sums(tmp.path(), SUMMED.into_iter().chain(axes.is_some().then_some(AXES_FILE)))?;
    // A folder of that name is left from a timeline abandoned by a resume from an earlier step.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::rename(tmp.keep(), &dir).map_err(|e| Error::io(&dir, e))?;
    let name = dir.file_name().expect("named above").to_string_lossy();
    write_atomic(&checkpoints_dir(run).join(LATEST_FILE), &format!("{name}\n"))?;
    Ok(dir)
}

/// A checkpoint on disk: the model bundle (config, vocabulary; the tensors stay on disk until
/// loaded) and where the run stands. It reads as its bundle (`ckpt.config`, `ckpt.dir`,
/// `ckpt.var_names`).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub model: ModelBundle,
    pub state: TrainState,
}

impl std::ops::Deref for Checkpoint {
    type Target = ModelBundle;
    fn deref(&self) -> &ModelBundle {
        &self.model
    }
}

impl Checkpoint {
    /// The checkpoint `checkpoints/latest` of run folder `run` points at, if any.
    pub fn latest(run: &Path) -> Result<Option<Checkpoint>> {
        latest_in_run(run)?.map(|dir| Checkpoint::open(&dir)).transpose()
    }

    /// The checkpoint a resume continues from: the one `latest` points at if it is intact, else
    /// the newest intact `step-N` folder. Returns it with a line per checkpoint skipped on the
    /// way (its folder and why), newest first; `None` if the run has no checkpoint at all. A
    /// missing or garbled `latest` is skipped the same way, so a run whose pointer was lost still
    /// resumes.
    pub fn latest_intact(run: &Path) -> Result<Option<(Checkpoint, Vec<String>)>> {
        let dir = checkpoints_dir(run);
        let mut skipped = Vec::new();
        let candidates = step_dirs(run)?;
        let pointer = dir.join(LATEST_FILE);
        let pointed = match std::fs::read_to_string(&pointer) {
            Ok(name) => {
                let target = dir.join(name.trim());
                if candidates.iter().any(|(_, p)| *p == target) {
                    Some(target)
                } else {
                    skipped.push(format!("{}: names '{}', which is not a checkpoint folder here", pointer.display(), name.trim()));
                    None
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !candidates.is_empty() {
                    skipped.push(format!("{}: missing", pointer.display()));
                }
                None
            }
            Err(e) => {
                skipped.push(format!("{}: {e}", pointer.display()));
                None
            }
        };
        let order = pointed.iter().cloned().chain(candidates.into_iter().map(|(_, p)| p).filter(|p| Some(p) != pointed.as_ref()));
        for path in order {
            match Checkpoint::open(&path) {
                Ok(c) => return Ok(Some((c, skipped))),
                Err(e) => skipped.push(format!("{}: {e}", path.display())),
            }
        }
        if skipped.iter().any(|s| !s.starts_with(&pointer.display().to_string())) {
            return Err(Error::Invalid(format!("{}: no intact checkpoint to resume from:\n  {}", dir.display(), skipped.join("\n  "))));
        }
        Ok(None)
    }

    /// Reads a checkpoint folder's config, state and genes, after checking every file against
    /// the checksums recorded when it was written.
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        verify(dir, &[])?;
        let model = ModelBundle::read_dir(dir)?;
        let state_path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let state = serde_json::from_str(&text).map_err(|e| Error::format(&state_path, e.to_string()))?;
        Ok(Checkpoint { model, state })
    }

    pub fn optimizer_path(&self) -> PathBuf {
        self.dir.join(OPTIMIZER_FILE)
    }

    pub fn vocabulary(&self) -> Vocabulary {
        Vocabulary { names: self.var_names.clone(), symbols: self.var_symbols.clone() }
    }

    /// How batches of `corpus` map onto the weights: the identity after [`Self::check_genes`]
    /// for a run trained on that corpus; by gene id for a fine-tuning run, whose vocabulary must
    /// hold every corpus gene.
    pub fn vocab_map(&self, corpus: &Corpus) -> Result<VocabMap> {
        if self.config.finetuned_from.is_some() {
            return VocabMap::new(&self.vocabulary(), corpus, &self.dir.join(GENES_FILE).display().to_string());
        }
        self.check_genes(corpus)?;
        Ok(VocabMap::identity(corpus.n_vars()))
    }

    /// Refuses a corpus whose vocabulary is not the checkpoint's, gene for gene and in order,
    /// naming the first checkpoint genes the corpus lacks.
    pub fn check_genes(&self, corpus: &Corpus) -> Result<()> {
        if corpus.var_names == self.var_names {
            return Ok(());
        }
        let have: std::collections::HashSet<&str> = corpus.var_names.iter().map(String::as_str).collect();
        let missing: Vec<&str> = self.var_names.iter().map(String::as_str).filter(|g| !have.contains(g)).collect();
        let what = if missing.is_empty() {
            format!("the corpus has the same genes in another order or more genes ({} vs {})", corpus.var_names.len(), self.var_names.len())
        } else {
            let shown = missing.iter().take(GENES_SHOWN).copied().collect::<Vec<_>>().join(", ");
            format!("{} of its {} genes are missing from the corpus, first: {shown}", missing.len(), self.var_names.len())
        };
        Err(Error::format(
            self.dir.join(GENES_FILE),
            format!("the checkpoint's genes do not match corpus {}: {what}", corpus.dir.display()),
        ))
    }

    /// Builds the model of the checkpoint's config on `device` and loads its weights, after
    /// checking the vocabulary against `corpus` ([`Self::vocab_map`], which maps that corpus's
    /// batches onto the model).
    pub fn load_model(&self, corpus: &Corpus, device: Device) -> Result<(nn::VarStore, TxFm)> {
        self.vocab_map(corpus)?;
        self.load_weights(device)
    }
}
