//! Reading a built corpus: its summary, vocabulary, profiled gene sets, and shards by row group
//! (the random-access unit a shuffling loader needs).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int64Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::schema;
use super::summary::CorpusSummary;
use crate::data::CsrChunk;
use crate::{Error, Result};

/// An opened corpus folder. Holds only metadata; counts stay on disk until a shard is read.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub dir: PathBuf,
    pub summary: CorpusSummary,
    /// Vocabulary gene IDs (the model's `var_names`). `[n_vars]`
    pub var_names: Vec<String>,
    /// Display symbols of the vocabulary genes. `[n_vars]`
    pub var_symbols: Vec<String>,
    /// Samples with a non-zero count of each vocabulary gene (m_i, for frequency-weighted sampling). `[n_vars]`
    pub n_cells: Vec<u64>,
    /// Vocabulary indices each dataset profiles, increasing. `[n_datasets][..]`
    pub profiled: Vec<Vec<u32>>,
    /// Stored gene id → vocabulary index, or -1 for genes the vocabulary filter dropped. `[n_genes_seen]`
    pub gene_to_vocab: Vec<i64>,
}

/// Samples of one row group. Genes are stored gene ids (see `schema`), not vocabulary indices.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleBatch {
    pub sample: Vec<u64>,
    pub dataset: Vec<u16>,
    pub library_size: Vec<f64>,
    /// Raw counts, columns = stored gene ids. `[n, n_genes_seen]`
    pub counts: CsrChunk,
}

impl Corpus {
    pub fn open(dir: &Path) -> Result<Self> {
        let summary = CorpusSummary::load(dir)?;
        let genes_path = dir.join(schema::GENES_FILE);
        let genes = read_all(&genes_path)?;
        let mut var_names = Vec::new();
        let mut var_symbols = Vec::new();
        let mut n_cells = Vec::new();
        let mut gene_to_vocab = Vec::new();
        for b in &genes {
            let ids = column(b, "gene_id", &genes_path)?.as_string::<i32>();
            let sym = column(b, "symbol", &genes_path)?.as_string::<i32>();
            let m = column(b, "n_cells", &genes_path)?.as_primitive::<UInt64Type>();
            let v = column(b, "vocab_index", &genes_path)?.as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                gene_to_vocab.push(v.value(i));
                if v.value(i) >= 0 {
                    var_names.push(ids.value(i).to_string());
                    var_symbols.push(sym.value(i).to_string());
                    n_cells.push(m.value(i));
                }
            }
        }
        if var_names.len() != summary.n_vars || gene_to_vocab.len() != summary.n_genes_seen {
            return Err(Error::format(&genes_path, format!(
                "{} vocabulary genes of {} rows, but corpus.json says {} of {}",
                var_names.len(), gene_to_vocab.len(), summary.n_vars, summary.n_genes_seen
            )));
        }
        let prof_path = dir.join(schema::PROFILED_FILE);
        let mut profiled = vec![Vec::new(); summary.datasets.len()];
        for b in read_all(&prof_path)? {
            let d = column(&b, "dataset", &prof_path)?.as_primitive::<UInt16Type>();
            let g = column(&b, "vocab_index", &prof_path)?.as_primitive::<UInt32Type>();
            for i in 0..b.num_rows() {
                let ds = profiled.get_mut(d.value(i) as usize).ok_or_else(|| {
                    Error::format(&prof_path, format!("dataset id {} not in corpus.json", d.value(i)))
                })?;
                ds.push(g.value(i));
            }
        }
        Ok(Corpus { dir: dir.to_path_buf(), summary, var_names, var_symbols, n_cells, profiled, gene_to_vocab })
    }

    pub fn n_vars(&self) -> usize {
        self.var_names.len()
    }

    pub fn n_samples(&self) -> u64 {
        self.summary.n_samples
    }

    pub fn shard_paths(&self) -> Vec<PathBuf> {
        self.summary.shards.iter().map(|s| self.dir.join(&s.file)).collect()
    }

    pub fn shard(&self, i: usize) -> Result<ShardReader> {
        let path = self.shard_paths().into_iter().nth(i).ok_or_else(|| {
            Error::Invalid(format!("{}: no shard {i} (corpus has {})", self.dir.display(), self.summary.shards.len()))
        })?;
        ShardReader::open(&path, self.summary.n_genes_seen)
    }

    /// The values of obs column `column` (an input name from the manifest's `obs_columns`) for the
    /// samples that `keep` accepts, streamed from `obs.parquet` a record batch at a time; `None`
    /// when the corpus did not copy that column. Null values are left out.
    pub fn obs_labels(&self, column: &str, keep: impl Fn(u64) -> bool) -> Result<Option<std::collections::HashMap<u64, String>>> {
        if !self.summary.obs_columns.iter().any(|c| c == column) {
            return Ok(None);
        }
        let path = self.dir.join(schema::OBS_FILE);
        let stored = schema::stored_obs_column(column);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(&path, e))?;
        let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), ["sample", stored.as_str()]);
        let reader = builder.with_projection(mask).build().map_err(|e| Error::parquet(&path, e))?;
        let mut out = std::collections::HashMap::new();
        for batch in reader {
            let batch = batch.map_err(|e| Error::parquet(&path, e))?;
            let samples = batch
                .column_by_name("sample")
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(|| Error::format(&path, "missing u64 column 'sample'"))?;
            let values = batch
                .column_by_name(&stored)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| Error::format(&path, format!("missing utf8 column '{stored}'")))?;
            for (sample, value) in samples.iter().zip(values.iter()) {
                if let (Some(sample), Some(value)) = (sample, value)
                    && keep(sample)
                {
                    out.insert(sample, value.to_string());
                }
            }
        }
        Ok(Some(out))
    }

    /// Counts restricted to the vocabulary, columns = vocabulary indices. `[n, n_vars]`
    pub fn to_vocab(&self, batch: &SampleBatch) -> CsrChunk {
        let mut out = CsrChunk::new(batch.counts.row_start, self.n_vars());
        for i in 0..batch.counts.n_rows() {
            let (idx, val) = batch.counts.row(i);
            out.push_row(idx.iter().zip(val).filter_map(|(&g, &v)| {
                let k = self.gene_to_vocab[g as usize];
                (k >= 0).then_some((k as u32, v))
            }));
        }
        out
    }
}

/// One shard file, read a row group at a time.
pub struct ShardReader {
    path: PathBuf,
    n_genes_seen: usize,
    n_row_groups: usize,
    n_rows: u64,
}

impl ShardReader {
    /// `n_genes_seen`: the corpus's stored gene count (the column count of the batches).
    pub fn open(path: &Path, n_genes_seen: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(path, e))?;
        let md = b.metadata();
        Ok(ShardReader {
            path: path.to_path_buf(),
            n_genes_seen,
            n_row_groups: md.num_row_groups(),
            n_rows: md.file_metadata().num_rows() as u64,
        })
    }

    pub fn n_row_groups(&self) -> usize {
        self.n_row_groups
    }

    pub fn n_rows(&self) -> u64 {
        self.n_rows
    }

    /// Row groups `groups` (in file order), as one batch.
    pub fn read_row_groups(&self, groups: Vec<usize>) -> Result<SampleBatch> {
        let path = &self.path;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_row_groups(groups).with_batch_size(8 * schema::ROW_GROUP_ROWS).build())
            .map_err(|e| Error::parquet(path, e))?;
        let mut out = SampleBatch { sample: Vec::new(), dataset: Vec::new(), library_size: Vec::new(), counts: CsrChunk::new(0, self.n_genes_seen) };
        for b in reader {
            let b = b.map_err(|e| Error::parquet(path, e))?;
            out.sample.extend(column(&b, "sample", path)?.as_primitive::<UInt64Type>().values().iter());
            out.dataset.extend(column(&b, "dataset", path)?.as_primitive::<UInt16Type>().values().iter());
            out.library_size.extend(column(&b, "library_size", path)?.as_primitive::<Float64Type>().values().iter());
            let genes = column(&b, "genes", path)?.as_list::<i32>();
            let counts = column(&b, "counts", path)?.as_list::<i32>();
            let gv = genes.values().as_primitive::<UInt32Type>();
            let cv = counts.values().as_primitive::<Float32Type>();
            for i in 0..b.num_rows() {
                let (a, e) = (genes.value_offsets()[i] as usize, genes.value_offsets()[i + 1] as usize);
                out.counts.indices.extend_from_slice(&gv.values()[a..e]);
                out.counts.data.extend_from_slice(&cv.values()[a..e]);
                out.counts.indptr.push(out.counts.indices.len() as u64);
            }
        }
        Ok(out)
    }

    /// The whole shard.
    pub fn read_all(&self) -> Result<SampleBatch> {
        self.read_row_groups((0..self.n_row_groups).collect())
    }
}

fn read_all(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| Error::parquet(path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::parquet(path, e))
}

fn column<'a>(b: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a arrow_array::ArrayRef> {
    b.column_by_name(name).ok_or_else(|| Error::format(path, format!("missing column '{name}'")))
}
