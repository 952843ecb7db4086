//! Expression data in and out: the in-memory shapes every reader yields, the readers for AnnData
//! `.h5ad`, 10x MTX folders and bulk tables, the h5ad writer, the raw-count check and gene-ID
//! harmonisation.

pub mod matrix;
pub mod obs;
pub mod source;
pub mod memory;
pub mod counts_check;
pub mod h5ad;
pub mod mtx;
pub mod table;
pub mod genes;

pub use matrix::CsrChunk;
pub use obs::{ObsColumn, ObsFrame};
pub use memory::{MemoryMatrix, MemorySource, Values};
pub use source::{open_source, ExpressionSource, SourceFormat, SourceMeta, SourceOptions};
