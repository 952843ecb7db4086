//! AnnData `.h5ad` files. [`H5adSource`] streams one matrix (`X`, `raw/X` or a layer; stored CSR,
//! CSC or dense) in row chunks, with `obs` and `var_names` from the dataframes beside it;
//! [`H5adWriter`] streams CSR rows and `obsm` embeddings into a new file that
//! `anndata.read_h5ad` opens; [`obsm`] reads `obsm` arrays and writes copies with new ones.
//!
//! On-disk layout: <https://anndata.readthedocs.io/en/stable/fileformat-prose.html>. Files from
//! anndata < 0.7 (compound-typed `obs`/`var` tables, `h5sparse_format` matrices) are read too.

mod hdf;
mod frame;
mod csc;
mod read;
mod write;
pub mod obsm;

pub use csc::CscConfig;
pub use read::{H5adSource, MatrixLayout, read_obsm_matrix, read_uns_strings};
pub use write::H5adWriter;
