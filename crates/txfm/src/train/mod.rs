//! Training, in the order a step uses it: the [`RunConfig`] (in [`crate::config`]), host [`Batch`]es from the streaming
//! corpus [`loader`], the learning-rate [`schedule`], [`optim`]'s AdamW, the [`trainer`] loop with
//! its validation ([`eval`], with the embeddings' [`health`]) and [`metrics`], and [`checkpoint`]s to reload or resume from. A
//! model's gene [`vocab`]ulary may differ from its corpus's: [`finetune`] starts a run from a
//! pretrained one on a target corpus with new genes.

pub mod batch;
pub mod vocab;
pub mod loader;
pub mod schedule;
pub mod optim;
pub mod eval;
pub mod health;
pub mod metrics;
pub mod plot;
pub mod checkpoint;
pub mod trainer;
pub mod finetune;
pub mod bench;

pub use batch::Batch;
pub use checkpoint::{Checkpoint, TrainState};
pub use crate::config::{OptimizerConfig, RunConfig};
pub use vocab::{VocabMap, VocabOverlap, Vocabulary};
pub use finetune::Finetune;
pub use trainer::{resume, train, StepHook, TrainOptions, TrainOutcome};
