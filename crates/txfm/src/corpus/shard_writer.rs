//! Writes shard files, rolling to a new one every `shard_rows` samples. Row groups are encoded
//! column-parallel: gene indices on a helper thread, counts and the small columns on the caller,
//! because Parquet encoding is most of ingestion's work and would otherwise hold one core.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Float64Array, ListArray, RecordBatch, UInt16Array, UInt32Array, UInt64Array};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::schema::{self, ROW_GROUP_ROWS};
use super::summary::ShardSummary;
use crate::{Error, Result};

/// Samples of one dataset ready to store: CSR rows over stored gene ids.
pub(crate) struct ShardRows {
    pub samples: Vec<u64>,
    pub dataset: u16,
    pub library_size: Vec<f64>,
    /// `[n + 1]`
    pub indptr: Vec<u64>,
    pub genes: Vec<u32>,
    pub counts: Vec<f32>,
}

struct OpenShard {
    path: PathBuf,
    writer: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    n_rows: u64,
    n_groups: usize,
}

pub(crate) struct ShardWriter {
    dir: PathBuf,
    shard_rows: usize,
    current: Option<OpenShard>,
    done: Vec<ShardSummary>,
}

/// Gene indices are sorted within a row: delta-packed they take a few bits each. Counts are small
/// integers stored as f32: byte-stream-split leaves their high bytes as runs Snappy removes.
/// Neither has a useful dictionary or min/max (building both cost ~30% of ingestion); `sample`
/// keeps statistics so readers can prune row groups by id.
fn shard_props() -> WriterProperties {
    let list_item = |c: &str| ColumnPath::from(vec![c.to_string(), "list".into(), "item".into()]);
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from("sample"), EnabledStatistics::Chunk)
        .set_column_encoding(list_item("genes"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(list_item("counts"), Encoding::BYTE_STREAM_SPLIT)
        .build();
    add_encoded_arrow_schema_to_metadata(&schema::shard_schema(), &mut props);
    props
}

impl ShardWriter {
    pub fn new(dir: PathBuf, shard_rows: usize) -> Self {
        ShardWriter { dir, shard_rows, current: None, done: Vec::new() }
    }

    pub fn write(&mut self, rows: ShardRows) -> Result<()> {
        let n = rows.samples.len();
        let batch = shard_batch(rows).map_err(|e| Error::parquet(&self.dir, e))?;
        let mut from = 0;
        while from < n {
            let shard = match &mut self.current {
                Some(s) => s,
                None => self.current.insert(self.open()?),
            };
            let take = (self.shard_rows - shard.n_rows as usize).min(n - from);
            write_row_groups(shard, &batch.slice(from, take))?;
            shard.n_rows += take as u64;
            from += take;
            if shard.n_rows as usize == self.shard_rows {
                self.close_current()?;
            }
        }
        Ok(())
    }

    fn open(&self) -> Result<OpenShard> {
        let path = self.dir.join(schema::shard_file_name(self.done.len()));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let parquet_schema = ArrowSchemaConverter::new().convert(&schema::shard_schema()).map_err(|e| Error::parquet(&path, e))?;
        let writer = SerializedFileWriter::new(file, parquet_schema.root_schema_ptr(), Arc::new(shard_props()))
            .map_err(|e| Error::parquet(&path, e))?;
        let factory = ArrowRowGroupWriterFactory::new(&writer, schema::shard_schema());
        Ok(OpenShard { path, writer, factory, n_rows: 0, n_groups: 0 })
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(s) = self.current.take() {
            s.writer.close().map_err(|e| Error::parquet(&s.path, e))?;
            let file = s.path.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
            self.done.push(ShardSummary { file: format!("{}/{file}", schema::SHARD_DIR), n_rows: s.n_rows });
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<ShardSummary>> {
        self.close_current()?;
        Ok(self.done)
    }
}

/// Column of the shard schema encoded on the helper thread.
const GENES_COLUMN: usize = 3;

/// Appends `batch` to `shard` as row groups of at most [`ROW_GROUP_ROWS`] rows.
fn write_row_groups(shard: &mut OpenShard, batch: &RecordBatch) -> Result<()> {
    let path = shard.path.clone();
    let perr = |e: parquet::errors::ParquetError| Error::parquet(&path, e);
    let groups: Vec<RecordBatch> = (0..batch.num_rows())
        .step_by(ROW_GROUP_ROWS)
        .map(|o| batch.slice(o, ROW_GROUP_ROWS.min(batch.num_rows() - o)))
        .collect();
    let mut writers: Vec<Vec<ArrowColumnWriter>> = (0..groups.len())
        .map(|g| shard.factory.create_column_writers(shard.n_groups + g))
        .collect::<std::result::Result<_, _>>()
        .map_err(perr)?;
    let encode = |w: &mut ArrowColumnWriter, b: &RecordBatch, c: usize| -> parquet::errors::Result<()> {
        for leaf in compute_leaves(b.schema().field(c), b.column(c))? {
            w.write(&leaf)?;
        }
        Ok(())
    };
    let gene_writers: Vec<ArrowColumnWriter> = writers.iter_mut().map(|ws| ws.remove(GENES_COLUMN)).collect();
    let (gene_chunks, other_chunks) = std::thread::scope(|scope| {
        let genes = scope.spawn(|| -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
            gene_writers
                .into_iter()
                .zip(&groups)
                .map(|(mut w, b)| {
                    encode(&mut w, b, GENES_COLUMN)?;
                    w.close()
                })
                .collect()
        });
        let others = writers
            .into_iter()
            .zip(&groups)
            .map(|(ws, b)| {
                let cols = (0..b.num_columns()).filter(|&c| c != GENES_COLUMN);
                ws.into_iter()
                    .zip(cols)
                    .map(|(mut w, c)| {
                        encode(&mut w, b, c)?;
                        w.close()
                    })
                    .collect::<parquet::errors::Result<Vec<_>>>()
            })
            .collect::<parquet::errors::Result<Vec<_>>>();
        (genes.join().expect("gene encoder panicked"), others)
    });
    for (g, (gene_chunk, mut others)) in gene_chunks.map_err(perr)?.into_iter().zip(other_chunks.map_err(perr)?).enumerate() {
        others.insert(GENES_COLUMN, gene_chunk);
        let mut rg = shard.writer.next_row_group().map_err(perr)?;
        for chunk in others {
            chunk.append_to_row_group(&mut rg).map_err(perr)?;
        }
        rg.close().map_err(perr)?;
        debug_assert_eq!(shard.writer.flushed_row_groups().len(), shard.n_groups + g + 1);
    }
    shard.n_groups += groups.len();
    Ok(())
}

/// `rows` as one record batch; its vectors move into the Arrow buffers without a copy.
fn shard_batch(rows: ShardRows) -> std::result::Result<RecordBatch, String> {
    let n = rows.samples.len();
    let offsets: Vec<i32> = rows
        .indptr
        .iter()
        .map(|&o| i32::try_from(o).map_err(|_| "more than 2^31 values in one chunk".to_string()))
        .collect::<std::result::Result<_, _>>()?;
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    let list = |dt: DataType, values: ArrayRef| {
        Arc::new(ListArray::new(Arc::new(Field::new("item", dt, false)), offsets.clone(), values, None)) as ArrayRef
    };
    RecordBatch::try_new(
        schema::shard_schema(),
        vec![
            Arc::new(UInt64Array::from(rows.samples)),
            Arc::new(UInt16Array::from(vec![rows.dataset; n])),
            Arc::new(Float64Array::from(rows.library_size)),
            list(DataType::UInt32, Arc::new(UInt32Array::from(rows.genes))),
            list(DataType::Float32, Arc::new(Float32Array::from(rows.counts))),
        ],
    )
    .map_err(|e| e.to_string())
}
