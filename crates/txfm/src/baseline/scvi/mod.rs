//! scVI (Lopez et al. 2018, "Deep generative modeling for single-cell transcriptomics") as a
//! baseline beside PCA, on the project's runtime: the networks and likelihoods as scvi-tools
//! 1.4.2 defines them, fitted on counts streamed from disk, the posterior mean as the embedding
//! (`obsm['X_scvi']`), and the gene vectors the paper reads from it.

pub mod config;
pub mod likelihood;
pub mod module;
pub mod data;
pub mod fit;

pub use config::{Likelihood, OptimizerKind, ScviConfig};
pub use fit::{fit_scvi, model_dir_beside, write_scvi, EpochRecord, Scvi, SplitSizes, OBSM_KEY};
