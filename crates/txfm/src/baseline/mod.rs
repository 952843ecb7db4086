//! Baselines on the same data as the model, written where its embeddings go (`obsm`): PCA of
//! LibNorm+log1p expression and the (Lib+Log)Norm features themselves. Both stream the input from
//! disk (an h5ad or other expression file, or a corpus), one pass at a time; PCA's SVD then works
//! on the values it uses, materialised once (in memory, or spilled to disk past a budget).

pub mod input;
pub mod hvg;
pub mod log_cache;
pub mod progress;
pub mod randomized_svd;
pub mod exact_svd;
pub mod output;
pub mod pca;
pub mod libnorm;
pub mod scvi;

pub use hvg::{highly_variable_seurat, GeneStats, Hvg};
pub use input::CountInput;
pub use progress::FitProgress;
pub use log_cache::{LogCache, LogCacheBuilder, DEFAULT_CACHE_BUDGET_BYTES};
pub use libnorm::{libnorm_features, write_libnorm, LibNormConfig, LibNormSummary};
pub use pca::{fit_pca, Loadings, Pca, PcaConfig, PcaOutputs, PcaSummary};
pub use exact_svd::{exact_svd, ExactPlan};
pub use randomized_svd::{randomized_svd, CscBlock, RowBlocks, Svd, SvdConfig, SvdSolver};
