//! A multi-dataset corpus on disk: several expression files harmonised to one gene namespace,
//! QC-filtered, and written as Parquet shards that a data loader streams with bounded memory.
//!
//! Layout of a corpus folder (documented for data engineers in `schema`):
//! `corpus.json` (summary), `genes.parquet` (union vocabulary), `profiled.parquet` (each dataset's
//! profiled genes), `obs.parquet` (per-sample metadata), `shards/part-NNNNN.parquet` (counts).

pub mod manifest;
pub mod schema;
pub mod summary;
pub mod builder;
mod shard_writer;
pub mod reader;
pub mod stats;

pub use builder::{build_corpus, BuildOptions};
pub use manifest::{DatasetMode, DatasetSpec, Filters, Manifest, ObsFilter};
pub use reader::{Corpus, SampleBatch, ShardReader};
pub use summary::{CorpusSummary, DatasetSummary};
