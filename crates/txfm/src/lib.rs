//! txfm: a Rust implementation of TxFM, the masked-autoencoder transcriptomic foundation model of
//! Kenyon-Dean et al., "Effective Biological Representation Learning by Masking Gene Expression"
//! (ICLR 2026 FM4Science workshop).
//!
//! Modules in pipeline order: data I/O and gene harmonisation → corpus → preprocessing → model →
//! training → embedding → evaluation (perturbation benchmark, gene-relationship recall) and
//! baselines, plus the simulator and plotting, with the tensor runtime kept behind [`runtime`].

pub mod error;
pub mod atomic;
pub mod runtime;
pub mod data;
pub mod corpus;
pub mod preprocess;
pub mod config;
pub mod model;
pub mod train;
pub mod embed;
pub mod eval;
pub mod baseline;
pub mod plot;
pub mod simulate;
pub mod quickstart;
pub mod ablate;
#[doc(hidden)]
pub mod testing;

pub use error::{Error, Result};
