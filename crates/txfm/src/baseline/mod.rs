//! Baselines on the same data as the model, written where its embeddings go (`obsm`): PCA of
//! LibNorm+log1p expression and the (Lib+Log)Norm features themselves. Both stream the input from
//! disk (an h5ad or other expression file, or a corpus), one pass at a time.

pub mod input;
pub mod hvg;
pub mod randomized_svd;
pub mod output;
pub mod pca;
pub mod libnorm;

pub use hvg::{highly_variable_seurat, GeneStats, Hvg};
pub use input::CountInput;
pub use libnorm::{write_libnorm, LibNormConfig, LibNormSummary};
pub use pca::{fit_pca, Loadings, Pca, PcaConfig, PcaOutputs, PcaSummary};
pub use randomized_svd::{randomized_svd, RowBlocks, Svd, SvdConfig};
