//! Baselines on the same data: PCA and (Lib+Log)Norm features.

pub mod pca;
pub mod libnorm;
