//! The corpus's on-disk format: plain Parquet files plus one JSON summary, readable with pandas,
//! pyarrow, DuckDB or Spark.
//!
//! | file | one row per | columns |
//! |---|---|---|
//! | `genes.parquet` | harmonised gene seen in any dataset | `gene` u32 (row number), `gene_id` utf8 (unversioned Ensembl ID, or the raw ID for `gene_ids = "raw"`), `symbol` utf8, `n_cells` u64 (kept samples with a non-zero count: m_i), `in_vocab` bool (passed `min_cells_per_gene`), `vocab_index` i64 (position in the model vocabulary, -1 if not in it) |
//! | `profiled.parquet` | (dataset, vocabulary gene) profiled by that dataset | `dataset` u16, `vocab_index` u32 |
//! | `obs.parquet` | sample | `sample` u64, `dataset` utf8, `obs_index` u64 (row in the input file), `obs_name` utf8, then the manifest's `obs_columns` as nullable utf8 (one named like a fixed column is stored as `obs_<name>`) |
//! | `shards/part-NNNNN.parquet` | sample | `sample` u64, `dataset` u16, `library_size` f64 (sum of `counts`), `genes` list<u32> (`gene` ids, increasing), `counts` list<f32> (non-zero raw counts) |
//!
//! Rows keep every harmonised gene of their dataset, also those the vocabulary filter dropped:
//! the stored counts equal the input's, and `library_size` is the sample's depth over all its
//! harmonised genes. A loader maps `gene` → `vocab_index` and skips genes outside the vocabulary.
//! Shards hold `shard_rows` samples in row groups of [`ROW_GROUP_ROWS`], the unit a shuffling loader
//! reads at random.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

pub const SUMMARY_FILE: &str = "corpus.json";
pub const GENES_FILE: &str = "genes.parquet";
pub const PROFILED_FILE: &str = "profiled.parquet";
pub const OBS_FILE: &str = "obs.parquet";
pub const SHARD_DIR: &str = "shards";
/// Samples per Parquet row group: small enough that random row groups make a well-mixed buffer.
pub const ROW_GROUP_ROWS: usize = 1024;
/// Bumped on any incompatible change of the files above.
pub const FORMAT_VERSION: u32 = 1;

pub fn shard_file_name(i: usize) -> String {
    format!("part-{i:05}.parquet")
}

pub fn shard_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample", DataType::UInt64, false),
        Field::new("dataset", DataType::UInt16, false),
        Field::new("library_size", DataType::Float64, false),
        Field::new("genes", DataType::List(Arc::new(Field::new("item", DataType::UInt32, false))), false),
        Field::new("counts", DataType::List(Arc::new(Field::new("item", DataType::Float32, false))), false),
    ]))
}

pub fn genes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("gene", DataType::UInt32, false),
        Field::new("gene_id", DataType::Utf8, false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("n_cells", DataType::UInt64, false),
        Field::new("in_vocab", DataType::Boolean, false),
        Field::new("vocab_index", DataType::Int64, false),
    ]))
}

pub fn profiled_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("dataset", DataType::UInt16, false),
        Field::new("vocab_index", DataType::UInt32, false),
    ]))
}

/// obs.parquet's own columns; an input obs column of the same name is stored as `obs_<name>`.
pub const OBS_FIXED_COLUMNS: [&str; 4] = ["sample", "dataset", "obs_index", "obs_name"];

/// The name under which input obs column `column` is stored in obs.parquet.
pub fn stored_obs_column(column: &str) -> String {
    if OBS_FIXED_COLUMNS.contains(&column) { format!("obs_{column}") } else { column.to_string() }
}

/// `columns`: the input obs columns copied, by their input names.
pub fn obs_schema(columns: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("sample", DataType::UInt64, false),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("obs_index", DataType::UInt64, false),
        Field::new("obs_name", DataType::Utf8, false),
    ];
    fields.extend(columns.iter().map(|c| Field::new(stored_obs_column(c), DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
}
