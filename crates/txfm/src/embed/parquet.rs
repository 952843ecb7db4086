//! Embeddings as a Parquet table, one row per sample: `obs_name`, the obs columns (text,
//! categorical → string; numbers and bools as such), then one float32 column per dimension,
//! `<key>_0` … `<key>_{d-1}`. Flat columns rather than one list column because that is what
//! `pandas.read_parquet` turns straight into a numeric frame
//! (`df.filter(regex=r"^X_txfm_\d+$").to_numpy()`), and polars, DuckDB and Spark read it as is.
//! One row group per chunk of rows written.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tempfile::TempPath;

use super::output::EmbeddingSink;
use crate::atomic::temp_file_beside;
use crate::data::{CsrChunk, ObsColumn, ObsFrame};
use crate::{Error, Result};

/// Streams rows into a Parquet file.
pub struct ParquetWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
    tmp: TempPath,
    schema: SchemaRef,
    obs: ObsFrame,
    d: usize,
    rows: usize,
    warnings: Vec<String>,
}

fn obs_type(col: &ObsColumn) -> DataType {
    match col {
        ObsColumn::Float(_) => DataType::Float64,
        ObsColumn::Int(_) => DataType::Int64,
        ObsColumn::Bool(_) => DataType::Boolean,
        ObsColumn::Str(_) | ObsColumn::Categorical { .. } => DataType::Utf8,
    }
}

/// Rows `start..end` of an obs column as an Arrow array of [`obs_type`].
fn obs_array(col: &ObsColumn, start: usize, end: usize) -> ArrayRef {
    match col {
        ObsColumn::Float(v) => Arc::new(Float64Array::from(v[start..end].to_vec())),
        ObsColumn::Int(v) => Arc::new(Int64Array::from(v[start..end].to_vec())),
        ObsColumn::Bool(v) => Arc::new(BooleanArray::from(v[start..end].to_vec())),
        _ => {
            let mut b = StringBuilder::new();
            (start..end).for_each(|i| b.append_option(col.get_str(i)));
            Arc::new(b.finish())
        }
    }
}

impl ParquetWriter {
    pub fn create(path: &Path, obs: &ObsFrame, key: &str, d: usize) -> Result<Self> {
        let dims: Vec<String> = (0..d).map(|i| format!("{key}_{i}")).collect();
        let mut warnings = Vec::new();
        let mut kept = ObsFrame { names: obs.names.clone(), columns: Vec::new() };
        for (k, col) in &obs.columns {
            if k == "obs_name" || dims.contains(k) {
                warnings.push(format!("obs/{k}: not written: the name is taken by an output column"));
            } else {
                kept.columns.push((k.clone(), col.clone()));
            }
        }
        let mut fields = vec![Field::new("obs_name", DataType::Utf8, false)];
        fields.extend(kept.columns.iter().map(|(k, c)| Field::new(k, obs_type(c), true)));
        fields.extend(dims.iter().map(|k| Field::new(k, DataType::Float32, false)));
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let tmp = temp_file_beside(path)?;
        let file = tmp.reopen().map_err(|e| Error::io(path, e))?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| Error::parquet(path, e))?;
        Ok(ParquetWriter { path: path.to_path_buf(), writer, tmp: tmp.into_temp_path(), schema, obs: kept, d, rows: 0, warnings })
    }
}

impl EmbeddingSink for ParquetWriter {
    fn write(&mut self, _chunk: &CsrChunk, embeddings: &[f32]) -> Result<()> {
        let (d, start) = (self.d, self.rows);
        let n = embeddings.len() / d;
        let end = start + n;
        if end > self.obs.n_obs() || n * d != embeddings.len() {
            return Err(Error::format(&self.path, format!("{} values appended after {start} of {} rows of {d}", embeddings.len(), self.obs.n_obs())));
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(&self.obs.names[start..end]))];
        columns.extend(self.obs.columns.iter().map(|(_, c)| obs_array(c, start, end)));
        for j in 0..d {
            columns.push(Arc::new(Float32Array::from_iter_values((0..n).map(|i| embeddings[i * d + j]))));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| Error::parquet(&self.path, e))?;
        self.writer.write(&batch).and_then(|()| self.writer.flush()).map_err(|e| Error::parquet(&self.path, e))?;
        self.rows = end;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let ParquetWriter { path, writer, tmp, obs, rows, .. } = *self;
        if rows != obs.n_obs() {
            return Err(Error::format(&path, format!("{rows} of {} rows written", obs.n_obs())));
        }
        writer.close().map_err(|e| Error::parquet(&path, e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(vec![path])
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}
