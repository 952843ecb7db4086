//! `txfm corpus build`: one streaming pass over every dataset.
//!
//! Per dataset, a reader thread decodes row chunks, harmonises genes and applies the sample
//! filters while the calling thread encodes Parquet, so both cores work. Memory holds a few chunks
//! plus O(n_obs) metadata, never a whole matrix. The vocabulary filter needs counts over all kept
//! samples, so rows keep every harmonised gene and the filter is written into `genes.parquet`
//! (see `schema`). Output goes to a temporary folder renamed into place at the end.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{sync_channel, Receiver};

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt16Array, UInt32Array, UInt64Array};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::SeedableRng;

use super::manifest::{DatasetSpec, Manifest};
use super::shard_writer::{ShardRows, ShardWriter};
use super::schema::{self, ROW_GROUP_ROWS};
use super::summary::{CorpusSummary, DatasetSummary};
use crate::data::counts_check::CountsCheck;
use crate::data::genes::{harmonise, GeneIdKind, GeneTable};
use crate::data::{open_source, ExpressionSource, ObsFrame};
use crate::{Error, Result};

/// Rows decoded per read: large enough to amortise HDF5 calls, small enough to bound memory.
const CHUNK_ROWS: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Replace an existing output folder (only once the new corpus is complete).
    pub overwrite: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Builds the corpus described by `manifest` into `out`, returning its summary.
pub fn build_corpus(manifest: &Manifest, out: &Path, opts: &BuildOptions) -> Result<CorpusSummary> {
    manifest.validate("manifest")?;
    if out.exists() && !opts.overwrite {
        return Err(Error::format(out, "output folder exists; choose another or pass --overwrite"));
    }
    if out.exists() {
        check_replaceable(out)?;
    }
    let tmp = crate::atomic::temp_dir_beside(out)?;
    let summary = build_into(manifest, tmp.path(), opts)?;
    if summary.n_samples == 0 || summary.n_vars == 0 {
        return Err(empty_corpus(manifest, &summary));
    }
    if out.exists() {
        // Swap in the new corpus before deleting the old one, so a failure leaves one of them whole.
        let old = crate::atomic::temp_dir_beside(out)?;
        std::fs::rename(out, old.path().join("old")).map_err(|e| Error::io(out, e))?;
        std::fs::rename(tmp.keep(), out).map_err(|e| Error::io(out, e))?;
    } else {
        std::fs::rename(tmp.keep(), out).map_err(|e| Error::io(out, e))?;
    }
    Ok(summary)
}

/// `--overwrite` replaces a corpus, never anything else: `out` must be a folder holding
/// `corpus.json` and nothing but a corpus's own files (`genes.parquet`, `obs.parquet`,
/// `profiled.parquet`, `shards/` of `part-N.parquet`). A folder that also holds, say, the manifest
/// or its h5ad is refused with what is there, before any work is done.
fn check_replaceable(out: &Path) -> Result<()> {
    use super::schema::{GENES_FILE, OBS_FILE, PROFILED_FILE, SHARD_DIR, SUMMARY_FILE};
    let refuse = |why: String| Err(Error::format(out, format!("--overwrite replaces only a txfm corpus folder, and {why}; nothing was changed")));
    if !out.is_dir() {
        return refuse("this is not a folder".into());
    }
    let list = |dir: &Path| -> Result<Vec<(String, bool)>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let is_dir = entry.file_type().map_err(|e| Error::io(entry.path(), e))?.is_dir();
            names.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
        }
        names.sort();
        Ok(names)
    };
    let entries = list(out)?;
    if !entries.iter().any(|(n, d)| n == SUMMARY_FILE && !d) {
        return refuse(format!("it has no {SUMMARY_FILE}"));
    }
    let mut foreign: Vec<String> = Vec::new();
    for (name, is_dir) in &entries {
        match (name.as_str(), is_dir) {
            (SUMMARY_FILE | GENES_FILE | OBS_FILE | PROFILED_FILE, false) => {}
            (SHARD_DIR, true) => {
                for (shard, sub) in list(&out.join(SHARD_DIR))? {
                    if sub || !(shard.starts_with("part-") && shard.ends_with(".parquet")) {
                        foreign.push(format!("{SHARD_DIR}/{shard}"));
                    }
                }
            }
            _ => foreign.push(if *is_dir { format!("{name}/") } else { name.clone() }),
        }
    }
    if !foreign.is_empty() {
        let shown: Vec<&str> = foreign.iter().take(5).map(String::as_str).collect();
        let more = if foreign.len() > 5 { format!(" and {} more", foreign.len() - 5) } else { String::new() };
        return refuse(format!("it also holds {}{more}", shown.join(", ")));
    }
    Ok(())
}

/// Why a build kept no sample or no gene, dataset by dataset (an empty corpus is never written).
fn empty_corpus(manifest: &Manifest, summary: &CorpusSummary) -> Error {
    let why: Vec<String> = summary
        .datasets
        .iter()
        .map(|d| {
            let hint = if d.n_genes_harmonised == 0 && d.n_vars_input > 0 {
                format!(
                    ": none of its {} var names mapped as {} gene ids{}",
                    d.n_vars_input,
                    format!("{:?}", d.mapping.kind).to_lowercase(),
                    if d.gene_ids == GeneIdKind::Raw { "" } else { " (gene_ids = \"raw\" keeps names as they are)" }
                )
            } else if d.n_after_obs_filter == 0 && d.n_obs_input > 0 {
                // Nothing reached QC: the dataset's own obs_filter kept no sample.
                let filters: Vec<String> = manifest
                    .datasets
                    .iter()
                    .filter(|s| s.name == d.name)
                    .flat_map(|s| s.obs_filter.iter())
                    .map(|f| format!("{} {} [{}]", f.column, if f.exclude { "not in" } else { "in" }, f.values.join(", ")))
                    .collect();
                format!(": its obs_filter ({}) matched none of its {} samples", filters.join(" and "), d.n_obs_input)
            } else {
                format!(
                    ": {} of {} samples failed QC (min_genes_per_cell = {})",
                    d.n_failed_qc, d.n_after_cap, manifest.filters.min_genes_per_cell
                )
            };
            format!("{} ({}){hint}", d.name, d.path.display())
        })
        .collect();
    Error::Invalid(format!(
        "the corpus would hold {} samples × {} genes, nothing to train on; {}",
        summary.n_samples,
        summary.n_vars,
        why.join("; ")
    ))
}

/// A decoded chunk of kept samples, genes already in union ids.
struct Prepared {
    obs_index: Vec<u64>,
    /// obs.parquet columns after `sample`.
    obs: Vec<ArrayRef>,
    library_size: Vec<f64>,
    indptr: Vec<u64>,
    genes: Vec<u32>,
    counts: Vec<f32>,
}

fn build_into(manifest: &Manifest, dir: &Path, opts: &BuildOptions) -> Result<CorpusSummary> {
    let shard_dir = dir.join(schema::SHARD_DIR);
    std::fs::create_dir_all(&shard_dir).map_err(|e| Error::io(&shard_dir, e))?;
    let obs_columns = union_obs_columns(manifest);
    let mut shards = ShardWriter::new(shard_dir, manifest.shard_rows);
    let mut obs = ObsWriter::create(&dir.join(schema::OBS_FILE), &obs_columns)?;
    let mut union = GeneUnion::default();
    let mut datasets = Vec::new();
    let mut dataset_genes: Vec<Vec<u32>> = Vec::new();
    let mut next_sample = 0u64;

    for (id, spec) in manifest.datasets.iter().enumerate() {
        let mut src = open_source(&spec.path, &spec.source_options())?;
        let mapping = harmonise(src.var_names(), spec.gene_ids, GeneTable::human());
        let local_to_union: Vec<u32> =
            mapping.ids.iter().zip(&mapping.symbols).map(|(g, s)| union.intern(g, s)).collect();
        let selected = select_rows(spec, src.as_ref(), manifest.seed)?;
        let n_after_obs_filter = selected.n_after_obs_filter;
        let rows = selected.rows;
        // Per corpus obs column: the dataset's column of that name, if it copies it.
        let obs_cols: Vec<Option<&str>> =
            obs_columns.iter().map(|c| spec.obs_columns.contains(c).then_some(c.as_str())).collect();
        let bar = progress_bar(opts.progress, rows.len() as u64, &spec.name);

        let increasing = local_to_union.windows(2).all(|w| w[0] < w[1]);
        let identity = local_to_union.iter().enumerate().all(|(i, &g)| g as usize == i);
        let min_genes = manifest.filters.min_genes_per_cell;
        let (tx, rx) = sync_channel::<Result<Prepared>>(2);
        let (kept, failed_qc) = std::thread::scope(|scope| -> Result<(usize, usize)> {
            let reader = scope.spawn(|| {
                let mut check = CountsCheck::allowing_non_counts(spec.allow_non_counts);
                let mut failed = 0usize;
                for run in chunk_runs(&rows, CHUNK_ROWS) {
                    let prepared = src
                        .read_rows(run.start_row, run.end_row)
                        .map(|chunk| {
                            check.observe(&chunk);
                            let local = mapping.remap(chunk);
                            let mut p = prepare(&local, &rows[run.rows.clone()], run.start_row, &local_to_union, increasing, identity, min_genes, &mut failed);
                            p.obs = obs_arrays(src.obs(), &spec.name, &obs_cols, &p.obs_index);
                            p
                        });
                    let stop = prepared.is_err();
                    if tx.send(prepared).is_err() || stop {
                        break;
                    }
                }
                drop(tx);
                let verdict = check.into_result_in(src.as_ref());
                verdict.map(|()| failed)
            });
            let kept = consume(rx, id as u16, &mut next_sample, &mut shards, &mut obs, &mut union, &bar)?;
            let failed = reader.join().expect("corpus reader thread panicked")?;
            Ok((kept, failed))
        })?;
        bar.finish_and_clear();

        let mut genes: Vec<u32> = local_to_union.clone();
        genes.sort_unstable();
        genes.dedup();
        datasets.push(DatasetSummary {
            id: id as u16,
            name: spec.name.clone(),
            path: spec.path.clone(),
            mode: spec.mode,
            gene_ids: spec.gene_ids,
            matrix: src.matrix_name().to_string(),
            n_obs_input: src.n_obs(),
            n_vars_input: src.n_vars(),
            n_after_obs_filter,
            n_after_cap: rows.len(),
            n_failed_qc: failed_qc,
            n_samples: kept,
            n_genes_harmonised: genes.len(),
            n_genes_profiled: 0,
            mapping: mapping.report.clone(),
        });
        dataset_genes.push(genes);
    }
    let shard_summaries = shards.finish()?;
    obs.finish()?;

    // Vocabulary: union genes seen in enough kept samples, in first-seen order.
    let min_cells = manifest.filters.min_cells_per_gene;
    let mut vocab_index = vec![-1i64; union.ids.len()];
    let mut n_vars = 0usize;
    for (g, &m) in union.n_cells.iter().enumerate() {
        if m >= min_cells {
            vocab_index[g] = n_vars as i64;
            n_vars += 1;
        }
    }
    let mut prof_ds = Vec::new();
    let mut prof_gene = Vec::new();
    for (d, genes) in dataset_genes.iter().enumerate() {
        let before = prof_gene.len();
        for &g in genes {
            if vocab_index[g as usize] >= 0 {
                prof_ds.push(d as u16);
                prof_gene.push(vocab_index[g as usize] as u32);
            }
        }
        datasets[d].n_genes_profiled = prof_gene.len() - before;
    }
    write_genes(&dir.join(schema::GENES_FILE), &union, &vocab_index)?;
    write_batch(
        &dir.join(schema::PROFILED_FILE),
        schema::profiled_schema(),
        vec![Arc::new(UInt16Array::from(prof_ds)), Arc::new(UInt32Array::from(prof_gene))],
    )?;

    let summary = CorpusSummary {
        format_version: schema::FORMAT_VERSION,
        txfm_version: env!("CARGO_PKG_VERSION").to_string(),
        filters: manifest.filters,
        n_samples: next_sample,
        n_genes_seen: union.ids.len(),
        n_vars,
        obs_columns,
        datasets,
        shards: shard_summaries,
    };
    let path = dir.join(schema::SUMMARY_FILE);
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    Ok(summary)
}

/// Receives prepared chunks and writes shards and obs rows; returns samples kept.
fn consume(
    rx: Receiver<Result<Prepared>>,
    dataset: u16,
    next_sample: &mut u64,
    shards: &mut ShardWriter,
    obs: &mut ObsWriter,
    union: &mut GeneUnion,
    bar: &indicatif::ProgressBar,
) -> Result<usize> {
    let mut kept = 0;
    for p in rx {
        let p = p?;
        let n = p.obs_index.len();
        for &g in &p.genes {
            union.n_cells[g as usize] += 1;
        }
        let samples: Vec<u64> = (*next_sample..*next_sample + n as u64).collect();
        obs.write(&samples, p.obs)?;
        shards.write(ShardRows {
            samples,
            dataset,
            library_size: p.library_size,
            indptr: p.indptr,
            genes: p.genes,
            counts: p.counts,
        })?;
        *next_sample += n as u64;
        kept += n;
        bar.inc(n as u64);
    }
    Ok(kept)
}

/// obs.parquet columns after `sample` for the kept rows `obs_index` (see `schema::obs_schema`).
fn obs_arrays(obs: &ObsFrame, dataset: &str, columns: &[Option<&str>], obs_index: &[u64]) -> Vec<ArrayRef> {
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(dataset, obs_index.len()))),
        Arc::new(UInt64Array::from(obs_index.to_vec())),
        Arc::new(StringArray::from_iter_values(obs_index.iter().map(|&i| &obs.names[i as usize]))),
    ];
    for col in columns {
        let col = col.and_then(|c| obs.column(c));
        let mut b = StringBuilder::new();
        for &i in obs_index {
            b.append_option(col.and_then(|c| c.get_str(i as usize)));
        }
        arrays.push(Arc::new(b.finish()));
    }
    arrays
}

/// Keeps the selected rows of `local` that pass the QC filter, with genes as union ids.
/// `increasing`: `local_to_union` is increasing, so mapped rows stay sorted.
#[allow(clippy::too_many_arguments)]
fn prepare(
    local: &crate::data::CsrChunk,
    selected: &[usize],
    start_row: usize,
    local_to_union: &[u32],
    increasing: bool,
    identity: bool,
    min_genes: u32,
    failed: &mut usize,
) -> Prepared {
    let mut p = Prepared { obs_index: Vec::new(), obs: Vec::new(), library_size: Vec::new(), indptr: vec![0], genes: Vec::new(), counts: Vec::new() };
    p.genes.reserve(local.nnz());
    p.counts.reserve(local.nnz());
    for &r in selected {
        let (idx, val) = local.row(r - start_row);
        if (idx.len() as u32) < min_genes {
            *failed += 1;
            continue;
        }
        let from = p.genes.len();
        if identity {
            p.genes.extend_from_slice(idx);
        } else {
            p.genes.extend(idx.iter().map(|&j| local_to_union[j as usize]));
        }
        p.counts.extend_from_slice(val);
        if !increasing {
            let mut pairs: Vec<(u32, f32)> = p.genes.drain(from..).zip(p.counts.drain(from..)).collect();
            pairs.sort_unstable_by_key(|&(g, _)| g);
            p.genes.extend(pairs.iter().map(|&(g, _)| g));
            p.counts.extend(pairs.iter().map(|&(_, v)| v));
        }
        p.library_size.push(val.iter().map(|&v| v as f64).sum());
        p.obs_index.push(r as u64);
        p.indptr.push(p.genes.len() as u64);
    }
    p
}

/// A contiguous input row range to read and the slice of selected rows inside it.
struct Run {
    start_row: usize,
    end_row: usize,
    rows: std::ops::Range<usize>,
}

/// Groups sorted selected rows into reads of at most `chunk` input rows, skipping gaps.
fn chunk_runs(rows: &[usize], chunk: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let start_row = rows[i];
        let mut j = i;
        while j < rows.len() && rows[j] < start_row + chunk {
            j += 1;
        }
        runs.push(Run { start_row, end_row: rows[j - 1] + 1, rows: i..j });
        i = j;
    }
    runs
}

struct Selection {
    n_after_obs_filter: usize,
    rows: Vec<usize>,
}

/// Rows passing the dataset's obs filters, then a seeded random subset of at most `max_samples`.
fn select_rows(spec: &DatasetSpec, src: &dyn ExpressionSource, seed: u64) -> Result<Selection> {
    let obs = src.obs();
    let missing = |c: &str| {
        Error::config(
            format!("dataset '{}' ({})", spec.name, spec.path.display()),
            format!("obs column '{c}'"),
            format!("not in the file; available: {}", obs.keys().join(", ")),
        )
    };
    for c in &spec.obs_columns {
        obs.column(c).ok_or_else(|| missing(c))?;
    }
    let mut rows: Vec<usize> = (0..src.n_obs()).collect();
    for f in &spec.obs_filter {
        let col = obs.column(&f.column).ok_or_else(|| missing(&f.column))?;
        rows.retain(|&i| {
            let hit = col.get_str(i).is_some_and(|v| f.values.contains(&v));
            hit != f.exclude
        });
    }
    let n_after_obs_filter = rows.len();
    if let Some(cap) = spec.max_samples.filter(|&c| c < rows.len()) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ hash_name(&spec.name));
        let mut pick: Vec<usize> = rand::seq::index::sample(&mut rng, rows.len(), cap).into_iter().map(|k| rows[k]).collect();
        pick.sort_unstable();
        rows = pick;
    }
    Ok(Selection { n_after_obs_filter, rows })
}

/// FNV-1a, so a dataset's subset depends on its name, not its position in the manifest.
fn hash_name(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

fn union_obs_columns(manifest: &Manifest) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for d in &manifest.datasets {
        for c in &d.obs_columns {
            if !cols.contains(c) {
                cols.push(c.clone());
            }
        }
    }
    cols
}

/// The union gene list across datasets, in first-seen order.
#[derive(Default)]
struct GeneUnion {
    ids: Vec<String>,
    symbols: Vec<String>,
    n_cells: Vec<u64>,
    index: HashMap<String, u32>,
}

impl GeneUnion {
    fn intern(&mut self, id: &str, symbol: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.symbols.push(symbol.to_string());
        self.n_cells.push(0);
        self.index.insert(id.to_string(), i);
        i
    }
}

fn progress_bar(show: bool, len: u64, name: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>16} {bar:30} {pos}/{len} samples  {per_sec}  ETA {eta}")
            .expect("valid template"),
    );
    bar.set_prefix(name.to_string());
    bar
}

fn writer_props() -> WriterProperties {
    // Snappy: the corpus is read many times per epoch and written once, so decode speed wins.
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

fn create_writer(path: &Path, schema: SchemaRef) -> Result<ArrowWriter<File>> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    ArrowWriter::try_new(file, schema, Some(writer_props())).map_err(|e| Error::parquet(path, e))
}

fn write_batch(path: &Path, schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<()> {
    let mut w = create_writer(path, schema.clone())?;
    let batch = RecordBatch::try_new(schema, columns).map_err(|e| Error::parquet(path, e))?;
    w.write(&batch).map_err(|e| Error::parquet(path, e))?;
    w.close().map_err(|e| Error::parquet(path, e))?;
    Ok(())
}

fn write_genes(path: &Path, union: &GeneUnion, vocab_index: &[i64]) -> Result<()> {
    write_batch(
        path,
        schema::genes_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(0..union.ids.len() as u32)),
            Arc::new(StringArray::from_iter_values(&union.ids)),
            Arc::new(StringArray::from_iter_values(&union.symbols)),
            Arc::new(UInt64Array::from(union.n_cells.clone())),
            Arc::new(BooleanArray::from(vocab_index.iter().map(|&v| v >= 0).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(vocab_index.to_vec())),
        ],
    )
}

/// Streams `obs.parquet`.
struct ObsWriter {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
}

impl ObsWriter {
    fn create(path: &Path, columns: &[String]) -> Result<Self> {
        let schema = schema::obs_schema(columns);
        Ok(ObsWriter { path: path.to_path_buf(), writer: create_writer(path, schema.clone())?, schema })
    }

    /// `rest`: the columns after `sample`, from [`obs_arrays`].
    fn write(&mut self, samples: &[u64], rest: Vec<ArrayRef>) -> Result<()> {
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(samples.to_vec()))];
        arrays.extend(rest);
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| Error::parquet(&self.path, e))?;
        self.writer.write(&batch).map_err(|e| Error::parquet(&self.path, e))
    }

    fn finish(self) -> Result<()> {
        self.writer.close().map_err(|e| Error::parquet(&self.path, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_runs_skip_gaps_and_bound_reads() {
        let runs = chunk_runs(&[0, 1, 5, 9, 20, 21], 10);
        let got: Vec<_> = runs.iter().map(|r| (r.start_row, r.end_row, r.rows.clone())).collect();
        assert_eq!(got, vec![(0, 10, 0..4), (20, 22, 4..6)]);
    }
}
