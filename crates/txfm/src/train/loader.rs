//! Streaming shuffled batches from a corpus: bounded memory, an order fixed by the seed alone, and
//! exact resumption mid-epoch.
//!
//! An epoch, for the loader's split:
//! 1. The (shard, row group) units are shuffled by ChaCha8 seeded with (seed, epoch).
//! 2. Runs of `buffer_row_groups` consecutive units form shuffle buffers; the samples of a buffer
//!    are shuffled by ChaCha8 seeded with (seed, epoch, buffer index).
//! 3. The buffers' samples, one buffer after the other, are cut into batches of `batch_size`;
//!    only the epoch's last batch may be smaller, so each sample appears exactly once.
//! 4. A sample's visible genes are drawn by ChaCha8 seeded with (seed, epoch, sample id).
//!
//! Nothing depends on thread timing: `n_workers` threads decode units in parallel (read, map to
//! the vocabulary, draw visible genes), and one assembler thread takes their results in unit
//! order, shuffles each buffer and builds the batches. So a run is reproduced exactly by any
//! number of workers, and resuming from a [`LoaderState`] skips the first `batches_done` (global)
//! batches of the same sequence (whole buffers before them are not even read).
//!
//! Memory is bounded independently of the corpus size: the assembler hands out the units of the
//! buffer it is cutting and of the next one only, so at most two buffers of decoded sparse samples
//! (2 · buffer_row_groups · ROW_GROUP_ROWS samples) exist, plus [`BATCHES_AHEAD`] + 1 dense
//! batches. The loader itself keeps two counts per unit.
//!
//! Data parallelism: a loader for rank r of N ([`Loader::sharded`]) cuts the same sample sequence
//! into global batches of N · `batch_size` samples and keeps samples r, r + N, r + 2N, … of each.
//! So the N ranks' batches of a step partition the global batch, and together they see exactly the
//! batches a single process with batch size N · `batch_size` sees. An epoch's last global batch may
//! be smaller (unequal shares, weighted by the trainer); one of fewer than N samples is dropped, as
//! some rank would get none. Every rank reads and decodes every row group, and densifies its share
//! only.
//!
//! Train/validation split: a sample is in validation iff hash(seed, sample id) / 2⁶⁴ <
//! `validation_fraction`, a fixed property of the id, stable across runs, epochs and resumes.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Batch;
use crate::corpus::Corpus;
use crate::model::{frequency_weights, sample_visible_genes_expressed};
use crate::{Error, Result};

/// Finished batches waiting for the consumer: enough to hide assembly behind a training step.
pub const BATCHES_AHEAD: usize = 2;

pub use crate::config::LoaderConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
}

impl Split {
    /// The split of sample id `sample`; depends only on (seed, sample, fraction).
    pub fn of(sample: u64, seed: u64, validation_fraction: f64) -> Split {
        if sample_uniform(SPLIT_STREAM, seed, sample) < validation_fraction { Split::Validation } else { Split::Train }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where a training run stands in the batch sequence; saved with checkpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    pub epoch: u64,
    /// Batches of `epoch` already consumed.
    pub batches_done: usize,
}

impl LoaderState {
    /// The state after consuming one more batch, rolling over to the next epoch after the last.
    pub fn after_batch(self, batches_per_epoch: usize) -> LoaderState {
        if self.batches_done + 1 >= batches_per_epoch {
            LoaderState { epoch: self.epoch + 1, batches_done: 0 }
        } else {
            LoaderState { epoch: self.epoch, batches_done: self.batches_done + 1 }
        }
    }
}

/// Batches of one split of a corpus.
pub struct Loader {
    shared: Arc<Shared>,
}

/// What the worker and assembler threads read.
struct Shared {
    corpus: Arc<Corpus>,
    cfg: LoaderConfig,
    split: Split,
    units: Vec<Unit>,
    /// Gene sampling weights over the vocabulary; `None` for uniform. `[n_vars]`
    weights: Option<Vec<f64>>,
    /// Each dataset's profiled genes as a dense mask. `[n_datasets][n_vars]`
    profiled_mask: Vec<Vec<bool>>,
    /// This loader's share of each global batch: samples `rank`, `rank + world`, …
    rank: usize,
    world: usize,
}

/// One row group of one shard: the unit read at random.
#[derive(Debug, Clone, Copy)]
struct Unit {
    shard: usize,
    row_group: usize,
    /// Samples per split, indexed by `Split::index`.
    n_samples: [u64; 2],
}

impl Loader {
    /// Reads each shard's `sample` column once to count the split per row group.
    pub fn new(corpus: Arc<Corpus>, cfg: LoaderConfig, split: Split) -> Result<Loader> {
        Self::sharded(corpus, cfg, split, 0, 1)
    }

    /// Rank `rank`'s loader of a data-parallel run on `world` ranks: its share of every global
    /// batch of `world · cfg.batch_size` samples (see the module docs).
    pub fn sharded(corpus: Arc<Corpus>, cfg: LoaderConfig, split: Split, rank: usize, world: usize) -> Result<Loader> {
        cfg.validate("loader config")?;
        if rank >= world {
            return Err(Error::Invalid(format!("loader: rank {rank} of a world of {world}")));
        }
        let mut units = Vec::new();
        for (shard, path) in corpus.shard_paths().iter().enumerate() {
            scan_shard(path, shard, &cfg, &mut units)?;
        }
        let weights = (cfg.tau != 0.0).then(|| frequency_weights(&corpus.n_cells, cfg.tau));
        let profiled_mask = corpus
            .profiled
            .iter()
            .map(|genes| {
                let mut mask = vec![false; corpus.n_vars()];
                genes.iter().for_each(|&g| mask[g as usize] = true);
                mask
            })
            .collect();
        Ok(Loader { shared: Arc::new(Shared { corpus, cfg, split, units, weights, profiled_mask, rank, world }) })
    }

    pub fn split(&self) -> Split {
        self.shared.split
    }

    pub fn n_samples(&self, split: Split) -> u64 {
        self.shared.units.iter().map(|u| u.n_samples[split.index()]).sum()
    }

    /// Samples per global batch: `batch_size` times the number of ranks.
    fn global_batch(&self) -> usize {
        self.shared.cfg.batch_size * self.shared.world
    }

    /// (Global) batches per epoch of the loader's split, the last one possibly partial.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, global) = (self.n_samples(self.shared.split) as usize, self.global_batch());
        // A last batch too small to give every rank a sample is dropped (see the module docs).
        n / global + usize::from(n % global >= self.shared.world.max(1) && n % global > 0)
    }

    /// The batches of epoch `state.epoch` from batch `state.batches_done` on, shuffled.
    pub fn epoch_iter(&self, state: LoaderState) -> Batches {
        let total = self.batches_per_epoch();
        if state.batches_done > total {
            return Batches::failed(Error::Invalid(format!(
                "loader state: {} batches done of an epoch of {total}; was the corpus or batch size changed?",
                state.batches_done
            )));
        }
        let mut order: Vec<usize> = (0..self.shared.units.len()).collect();
        order.shuffle(&mut stream_rng(UNIT_ORDER_STREAM, self.shared.cfg.seed, state.epoch, 0));
        self.start(Plan { epoch: state.epoch, order, shuffle: true, skip: (state.batches_done * self.global_batch()) as u64 })
    }

    /// The loader's split in corpus order, without shuffling and with the visible genes of
    /// epoch 0: the same batches every call, for evaluation.
    pub fn eval_iter(&self) -> Batches {
        self.start(Plan { epoch: 0, order: (0..self.shared.units.len()).collect(), shuffle: false, skip: 0 })
    }

    fn start(&self, plan: Plan) -> Batches {
        let (tx, rx) = sync_channel(BATCHES_AHEAD);
        let shared = self.shared.clone();
        let assembler = std::thread::spawn(move || assemble(&shared, plan, &tx));
        Batches { rx: Some(rx), assembler: Some(assembler) }
    }
}

/// What to read for one pass.
struct Plan {
    epoch: u64,
    /// All unit indices in reading order; buffer b is `order[b·B .. (b+1)·B]`.
    order: Vec<usize>,
    shuffle: bool,
    /// Samples of the pass to leave out at its start (resumption).
    skip: u64,
}

/// The batches of one pass, produced by background threads that stop when this is dropped.
pub struct Batches {
    rx: Option<Receiver<Result<Batch>>>,
    assembler: Option<JoinHandle<()>>,
}

impl Batches {
    /// An iterator that yields `err` once.
    fn failed(err: Error) -> Batches {
        let (tx, rx) = sync_channel(1);
        tx.send(Err(err)).expect("the receiver is alive");
        Batches { rx: Some(rx), assembler: None }
    }

    /// Closes the channel first, so a blocked assembler sees it and exits, then joins it.
    fn stop(&mut self) -> std::thread::Result<()> {
        self.rx = None;
        self.assembler.take().map_or(Ok(()), JoinHandle::join)
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let item = self.rx.as_ref()?.recv().ok();
        if !matches!(item, Some(Ok(_))) {
            // The pass ended or failed: nothing follows an error.
            if let Err(panic) = self.stop() {
                std::panic::resume_unwind(panic);
            }
        }
        item
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // A panic was already reported by `next`, or the consumer stopped early; don't panic in drop.
        let _ = self.stop();
    }
}

/// A decoded sample of the loader's split.
struct Prepared {
    sample: u64,
    dataset: u16,
    library_size: f64,
    /// Vocabulary indices of the non-zero counts, increasing. `[nnz]`
    genes: Vec<u32>,
    /// Raw counts. `[nnz]`
    counts: Vec<f32>,
    /// Visible genes, vocabulary indices. `[min(k, n_profiled)]`
    visible: Vec<u32>,
    /// Preprocessed values at `visible`. `[min(k, n_profiled)]`
    visible_values: Vec<f32>,
}

/// The assembler: dispatches units to workers two buffers at a time, takes their results in unit
/// order, shuffles each buffer and sends batches. Returns when the pass is done, a unit fails, or
/// the consumer hangs up.
fn assemble(shared: &Arc<Shared>, plan: Plan, out: &SyncSender<Result<Batch>>) {
    let (job_tx, job_rx) = channel::<(usize, usize)>();
    let (res_tx, res_rx) = sync_channel::<(usize, Result<Vec<Prepared>>)>(shared.cfg.n_workers);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let workers: Vec<JoinHandle<()>> = (0..shared.cfg.n_workers)
        .map(|_| {
            let (shared, jobs, results) = (shared.clone(), job_rx.clone(), res_tx.clone());
            std::thread::spawn(move || work(&shared, plan.epoch, &jobs, &results))
        })
        .collect();
    drop(res_tx);
    run_pass(shared, &plan, &job_tx, &res_rx, out);
    // Hang up both channels so idle and blocked workers exit, then wait for them.
    drop(job_tx);
    drop(res_rx);
    for w in workers {
        let _ = w.join();
    }
}

fn run_pass(
    shared: &Shared,
    plan: &Plan,
    jobs: &Sender<(usize, usize)>,
    results: &Receiver<(usize, Result<Vec<Prepared>>)>,
    out: &SyncSender<Result<Batch>>,
) {
    let cfg = &shared.cfg;
    let split = shared.split.index();
    let global = cfg.batch_size * shared.world;
    let buffers: Vec<&[usize]> = plan.order.chunks(cfg.buffer_row_groups).collect();
    // Whole buffers before the resume point are not read.
    let mut skip = plan.skip;
    let mut first = 0;
    while first < buffers.len() {
        let n: u64 = buffers[first].iter().map(|&u| shared.units[u].n_samples[split]).sum();
        if n > skip {
            break;
        }
        skip -= n;
        first += 1;
    }
    // Job ids are positions in `plan.order`; units without samples of the split are not read.
    let dispatch = |b: usize| {
        for (j, &u) in buffers.get(b).copied().unwrap_or_default().iter().enumerate() {
            if shared.units[u].n_samples[split] > 0 {
                // `assemble` holds a receiver until this function returns.
                jobs.send((b * cfg.buffer_row_groups + j, u)).expect("workers are alive");
            }
        }
    };
    dispatch(first);
    let mut decoded: BTreeMap<usize, Vec<Prepared>> = BTreeMap::new();
    let mut carry: VecDeque<Prepared> = VecDeque::new();
    for (b, buffer) in buffers.iter().enumerate().skip(first) {
        dispatch(b + 1);
        let mut samples = Vec::new();
        for (j, &u) in buffer.iter().enumerate() {
            let pos = b * cfg.buffer_row_groups + j;
            if shared.units[u].n_samples[split] == 0 {
                continue;
            }
            while !decoded.contains_key(&pos) {
                let Ok((p, r)) = results.recv() else { return };
                match r {
                    Ok(unit) => {
                        decoded.insert(p, unit);
                    }
                    Err(e) => {
                        let _ = out.send(Err(e));
                        return;
                    }
                }
            }
            samples.extend(decoded.remove(&pos).expect("just checked"));
        }
        if plan.shuffle {
            samples.shuffle(&mut stream_rng(BUFFER_ORDER_STREAM, cfg.seed, plan.epoch, b as u64));
        }
        carry.extend(samples.into_iter().skip(std::mem::take(&mut skip) as usize));
        while carry.len() >= global {
            if out.send(Ok(make_batch(shared, carry.drain(..global).skip(shared.rank).step_by(shared.world)))).is_err() {
                return;
            }
        }
    }
    if carry.len() >= shared.world {
        let _ = out.send(Ok(make_batch(shared, carry.drain(..).skip(shared.rank).step_by(shared.world))));
    }
}

/// A worker: decodes units until the job channel closes or the assembler hangs up.
fn work(shared: &Shared, epoch: u64, jobs: &Mutex<Receiver<(usize, usize)>>, results: &SyncSender<(usize, Result<Vec<Prepared>>)>) {
    loop {
        let job = jobs.lock().expect("no worker panics holding the lock").recv();
        let Ok((pos, unit)) = job else { return };
        // A panic must reach the assembler as an error: it waits for this unit in order.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(shared, epoch, &shared.units[unit])))
            .unwrap_or_else(|_| Err(Error::Invalid(format!("loader worker panicked decoding shard {} row group {}", shared.units[unit].shard, shared.units[unit].row_group))));
        if results.send((pos, r)).is_err() {
            return;
        }
    }
}

/// Reads one unit and prepares its samples of the split, in file order.
fn decode(shared: &Shared, epoch: u64, unit: &Unit) -> Result<Vec<Prepared>> {
    let (corpus, cfg) = (&shared.corpus, &shared.cfg);
    let raw = corpus.shard(unit.shard)?.read_row_groups(vec![unit.row_group])?;
    let vocab = corpus.to_vocab(&raw);
    let mut out = Vec::with_capacity(unit.n_samples[shared.split.index()] as usize);
    for i in 0..vocab.n_rows() {
        let sample = raw.sample[i];
        if Split::of(sample, cfg.seed, cfg.validation_fraction) != shared.split {
            continue;
        }
        let dataset = raw.dataset[i];
        let profiled = corpus.profiled.get(dataset as usize).ok_or_else(|| {
            let path = &corpus.shard_paths()[unit.shard];
            Error::format(path, format!("sample {sample}: dataset {dataset} not in corpus.json"))
        })?;
        let (genes, counts) = vocab.row(i);
        let library_size = raw.library_size[i];
        let mut rng = visible_rng(cfg.seed, epoch, sample);
        let visible = sample_visible(profiled, cfg.k, shared.weights.as_deref(), cfg.zero_weight, genes, counts, &mut rng);
        let visible_values = cfg.preprocess.values_at(genes, counts, library_size, &visible);
        out.push(Prepared { sample, dataset, library_size, genes: genes.to_vec(), counts: counts.to_vec(), visible, visible_values });
    }
    Ok(out)
}

/// The visible genes of one sample with detected `genes` (strictly increasing) and their
/// `counts`: the loader's and the embedder's draw, so both show a cell the same genes.
pub fn sample_visible(profiled: &[u32], k: usize, weights: Option<&[f64]>, zero_weight: f64, genes: &[u32], counts: &[f32], rng: &mut ChaCha8Rng) -> Vec<u32> {
    if zero_weight == 1.0 || counts.iter().all(|&c| c > 0.0) {
        return sample_visible_genes_expressed(profiled, k, weights, zero_weight, genes, rng);
    }
    let expressed: Vec<u32> = genes.iter().zip(counts).filter(|(_, c)| **c > 0.0).map(|(&g, _)| g).collect();
    sample_visible_genes_expressed(profiled, k, weights, zero_weight, &expressed, rng)
}

/// Densifies prepared samples into a batch: targets over all `g` vocabulary genes, visible slots
/// padded to `k`.
fn make_batch(shared: &Shared, samples: impl ExactSizeIterator<Item = Prepared>) -> Batch {
    let (n, k, g) = (samples.len(), shared.cfg.k, shared.corpus.n_vars());
    let mut b = Batch {
        n,
        k,
        g,
        sample: Vec::with_capacity(n),
        library_size: Vec::with_capacity(n),
        visible_genes: vec![0; n * k],
        visible_values: vec![0.0; n * k],
        visible_pad: vec![true; n * k],
        target: vec![0.0; n * g],
        target_mask: Vec::with_capacity(n * g),
    };
    for (i, s) in samples.enumerate() {
        b.sample.push(s.sample);
        b.library_size.push(s.library_size);
        for (j, (&gene, &v)) in s.visible.iter().zip(&s.visible_values).enumerate() {
            b.visible_genes[i * k + j] = gene as i64;
            b.visible_values[i * k + j] = v;
            b.visible_pad[i * k + j] = false;
        }
        shared.cfg.preprocess.scatter(&s.genes, &s.counts, s.library_size, &mut b.target[i * g..(i + 1) * g]);
        b.target_mask.extend_from_slice(&shared.profiled_mask[s.dataset as usize]);
    }
    b
}

/// Counts each row group's samples per split from the shard's `sample` column alone.
fn scan_shard(path: &Path, shard: usize, cfg: &LoaderConfig, units: &mut Vec<Unit>) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(path, e))?;
    let rows: Vec<usize> = builder.metadata().row_groups().iter().map(|rg| rg.num_rows() as usize).collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["sample"]);
    let reader = builder.with_projection(mask).build().map_err(|e| Error::parquet(path, e))?;
    let mut ids = Vec::new();
    for b in reader {
        let b = b.map_err(|e| Error::parquet(path, e))?;
        let col = b
            .column_by_name("sample")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| Error::format(path, "missing u64 column 'sample'"))?;
        ids.extend_from_slice(col.values());
    }
    if ids.len() != rows.iter().sum::<usize>() {
        return Err(Error::format(path, format!("{} sample ids for {} rows", ids.len(), rows.iter().sum::<usize>())));
    }
    let mut at = 0;
    for (row_group, n) in rows.into_iter().enumerate() {
        let mut n_samples = [0u64; 2];
        for &s in &ids[at..at + n] {
            n_samples[Split::of(s, cfg.seed, cfg.validation_fraction).index()] += 1;
        }
        units.push(Unit { shard, row_group, n_samples });
        at += n;
    }
    Ok(())
}

/// Separate random streams derived from the one seed.
const SPLIT_STREAM: u64 = 0x5350_4c49_5421_0001;
const UNIT_ORDER_STREAM: u64 = 1;
const BUFFER_ORDER_STREAM: u64 = 2;
const VISIBLE_STREAM: u64 = 3;

/// ChaCha8 keyed by all four words, so distinct (stream, seed, epoch, index) never share a stream.
fn stream_rng(stream: u64, seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip([stream, seed, epoch, index]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// The stream of sample `sample`'s visible genes in epoch `epoch`. Shared with `embed`, so that
/// embedding a cell replays the draw training showed it.
pub(crate) fn visible_rng(seed: u64, epoch: u64, sample: u64) -> ChaCha8Rng {
    stream_rng(VISIBLE_STREAM, seed, epoch, sample)
}

/// A uniform number in [0, 1) fixed by (stream, seed, sample id): the top 53 bits of a hash.
/// The split uses [`SPLIT_STREAM`]; other per-sample choices (the cells the read-out axes are
/// fitted on) use streams of their own, independent of it.
pub(crate) fn sample_uniform(stream: u64, seed: u64, sample: u64) -> f64 {
    (mix(mix(seed ^ stream) ^ sample) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// SplitMix64's finaliser: a fast bijective hash whose output bits are all well mixed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::preprocess::Preprocess;
    use crate::corpus::{build_corpus, BuildOptions, DatasetSpec, Filters, Manifest};
    use crate::data::genes::GeneIdKind;
    use crate::data::h5ad::H5adWriter;
    use crate::data::{open_source, CsrChunk, ObsFrame, SourceOptions};
    use crate::simulate::{simulate_to_h5ad, SimConfig};

    /// 600 simulated cells plus 40 cells of a dataset profiling 6 of the simulated genes and one
    /// gene seen in a single cell (dropped from the vocabulary); its first cell is empty (library
    /// size 0). Shards of 80 rows: 8 units, so buffers of 3 units give 3 buffers.
    fn test_corpus() -> (tempfile::TempDir, Arc<Corpus>) {
        let dir = tempfile::tempdir().unwrap();
        let sim = dir.path().join("sim.h5ad");
        let mut cfg = SimConfig::tiny();
        cfg.n_cells = 600;
        simulate_to_h5ad(&cfg, &sim, &indicatif::ProgressBar::hidden()).unwrap();
        let genes = open_source(&sim, &SourceOptions::default()).unwrap().var_names().to_vec();

        let small = dir.path().join("small.h5ad");
        let names = genes[..6].iter().cloned().chain(["lonely".to_string()]).collect();
        let mut w = H5adWriter::create(&small, &ObsFrame { names, columns: vec![] }).unwrap();
        let mut x = CsrChunk::new(0, 7);
        x.push_dense_row(&[0.0; 7]);
        for i in 1..40usize {
            let row: Vec<f32> = (0..7).map(|j| if j == 6 { if i == 1 { 9.0 } else { 0.0 } } else { ((i * (j + 1)) % 5) as f32 }).collect();
            x.push_dense_row(&row);
        }
        w.append_x(&x).unwrap();
        w.finish(&ObsFrame { names: (0..40).map(|i| format!("s{i}")).collect(), columns: vec![] }).unwrap();

        let specs = vec![DatasetSpec::new("sim", &sim, GeneIdKind::Raw), DatasetSpec::new("small", &small, GeneIdKind::Raw)];
        let mut m = Manifest::new(specs, Filters { min_cells_per_gene: 2, min_genes_per_cell: 0 });
        m.shard_rows = 80;
        let out = dir.path().join("corpus");
        build_corpus(&m, &out, &BuildOptions::default()).unwrap();
        let corpus = Corpus::open(&out).unwrap();
        assert_eq!(corpus.summary.shards.len(), 8);
        assert_eq!(corpus.profiled[1].len(), 6, "the lonely gene is out of the vocabulary");
        (dir, Arc::new(corpus))
    }

    fn config() -> LoaderConfig {
        LoaderConfig {
            batch_size: 50,
            k: 40,
            tau: 0.0,
            zero_weight: 1.0,
            preprocess: Preprocess::default(),
            seed: 7,
            n_workers: 2,
            buffer_row_groups: 3,
            validation_fraction: 0.2,
        }
    }

    /// A stored sample: dataset, library size, and vocabulary-indexed counts.
    struct Raw {
        dataset: u16,
        library_size: f64,
        counts: Vec<(u32, f32)>,
    }

    /// Every sample id in corpus order, and each sample's raw data.
    fn read_raw(corpus: &Corpus) -> (Vec<u64>, HashMap<u64, Raw>) {
        let (mut order, mut raw) = (Vec::new(), HashMap::new());
        for s in 0..corpus.summary.shards.len() {
            let b = corpus.shard(s).unwrap().read_all().unwrap();
            let v = corpus.to_vocab(&b);
            for i in 0..v.n_rows() {
                let (g, c) = v.row(i);
                order.push(b.sample[i]);
                raw.insert(b.sample[i], Raw { dataset: b.dataset[i], library_size: b.library_size[i], counts: g.iter().copied().zip(c.iter().copied()).collect() });
            }
        }
        (order, raw)
    }

    fn collect(batches: Batches) -> Vec<Batch> {
        batches.collect::<Result<Vec<_>>>().unwrap()
    }

    fn ids(batches: &[Batch]) -> Vec<u64> {
        batches.iter().flat_map(|b| b.sample.iter().copied()).collect()
    }

    #[test]
    fn an_epoch_covers_each_train_sample_once_and_the_splits_partition_the_corpus() {
        let (_dir, corpus) = test_corpus();
        let (order, _) = read_raw(&corpus);
        let train = Loader::new(corpus.clone(), config(), Split::Train).unwrap();
        let val = Loader::new(corpus.clone(), config(), Split::Validation).unwrap();

        let epoch = collect(train.epoch_iter(LoaderState::default()));
        assert_eq!(epoch.len(), train.batches_per_epoch());
        assert!(epoch[..epoch.len() - 1].iter().all(|b| b.n == 50), "only the last batch is partial");
        let mut seen = ids(&epoch);
        assert_ne!(seen, order.iter().copied().filter(|&s| Split::of(s, 7, 0.2) == Split::Train).collect::<Vec<_>>(), "shuffled");
        seen.sort_unstable();
        let mut expected_train: Vec<u64> = order.iter().copied().filter(|&s| Split::of(s, 7, 0.2) == Split::Train).collect();
        expected_train.sort_unstable();
        assert_eq!(seen, expected_train, "each train sample exactly once");

        // Validation in corpus order, fixed.
        let held_out = ids(&collect(val.eval_iter()));
        assert_eq!(held_out, order.iter().copied().filter(|&s| Split::of(s, 7, 0.2) == Split::Validation).collect::<Vec<_>>());
        let train_set: HashSet<u64> = seen.iter().copied().collect();
        assert!(held_out.iter().all(|s| !train_set.contains(s)), "train ∩ validation = ∅");
        assert_eq!(seen.len() + held_out.len(), order.len(), "train ∪ validation = all");
        assert_eq!((train.n_samples(Split::Train), train.n_samples(Split::Validation)), (seen.len() as u64, held_out.len() as u64));
        // About a fifth held out.
        assert!((90..=170).contains(&held_out.len()), "{} of 640 held out", held_out.len());
    }

    #[test]
    fn batches_hold_the_preprocessed_counts_and_profiled_genes_of_their_samples() {
        let (_dir, corpus) = test_corpus();
        let (_, raw) = read_raw(&corpus);
        for tau in [0.0, 0.5] {
            let loader = Loader::new(corpus.clone(), LoaderConfig { tau, ..config() }, Split::Train).unwrap();
            let mut padded = 0;
            for b in collect(loader.epoch_iter(LoaderState { epoch: 2, batches_done: 0 })) {
                let (k, g) = (b.k, b.g);
                assert_eq!((k, g, b.sample.len()), (40, corpus.n_vars(), b.n));
                for (i, s) in b.sample.iter().enumerate() {
                    let r = &raw[s];
                    let profiled = &corpus.profiled[r.dataset as usize];
                    // Target: log1p(count / library · 1e5), recomputed here; 0 elsewhere.
                    let mut expected = vec![0.0f64; g];
                    for &(gene, c) in &r.counts {
                        expected[gene as usize] = if r.library_size > 0.0 { (c as f64 / r.library_size * 1e5).ln_1p() } else { 0.0 };
                    }
                    let target = &b.target[i * g..(i + 1) * g];
                    for (t, e) in target.iter().zip(&expected) {
                        assert!(t.is_finite() && (*t as f64 - e).abs() <= 1e-5 * e.max(1.0), "sample {s}: {t} vs {e}");
                    }
                    let mask: Vec<u32> = (0..g as u32).filter(|&j| b.target_mask[i * g + j as usize]).collect();
                    assert_eq!(&mask, profiled, "target_mask = the dataset's profiled genes");

                    let n_visible = k.min(profiled.len());
                    let slots = i * k..(i + 1) * k;
                    let visible = &b.visible_genes[slots.clone()];
                    let pad = &b.visible_pad[slots.clone()];
                    assert!(pad[..n_visible].iter().all(|&p| !p) && pad[n_visible..].iter().all(|&p| p));
                    assert!(visible[n_visible..].iter().all(|&v| v == 0));
                    assert!(b.visible_values[slots.clone()][n_visible..].iter().all(|&v| v == 0.0));
                    let distinct: HashSet<i64> = visible[..n_visible].iter().copied().collect();
                    assert_eq!(distinct.len(), n_visible, "no duplicate visible genes");
                    for (j, &v) in visible[..n_visible].iter().enumerate() {
                        assert!(profiled.binary_search(&(v as u32)).is_ok(), "visible gene {v} not profiled");
                        assert_eq!(b.visible_values[i * k + j], target[v as usize], "visible value = target value");
                    }
                    padded += usize::from(n_visible < k);
                }
            }
            assert!(padded > 0, "samples of the small dataset are padded");
        }
    }

    #[test]
    fn the_order_depends_on_seed_and_epoch_only() {
        let (_dir, corpus) = test_corpus();
        let run = |seed, epoch, n_workers| {
            let loader = Loader::new(corpus.clone(), LoaderConfig { seed, n_workers, ..config() }, Split::Train).unwrap();
            collect(loader.epoch_iter(LoaderState { epoch, batches_done: 0 }))
        };
        let reference = run(7, 0, 2);
        assert_eq!(run(7, 0, 2), reference, "same seed, same batches");
        assert_eq!(run(7, 0, 1), reference, "independent of the number of workers");
        assert_eq!(run(7, 0, 4), reference);
        let next_epoch = run(7, 1, 2);
        assert_ne!(ids(&next_epoch), ids(&reference), "a new epoch, a new order");
        let mut a = ids(&next_epoch);
        let mut b = ids(&reference);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "the same samples");
        assert_ne!(ids(&run(8, 0, 2)), ids(&reference), "another seed, another order");

        let val = Loader::new(corpus.clone(), config(), Split::Validation).unwrap();
        assert_eq!(collect(val.eval_iter()), collect(val.eval_iter()), "evaluation batches are fixed");
    }

    #[test]
    fn resuming_yields_exactly_the_remaining_batches() {
        let (_dir, corpus) = test_corpus();
        let loader = Loader::new(corpus, config(), Split::Train).unwrap();
        let full = collect(loader.epoch_iter(LoaderState { epoch: 1, batches_done: 0 }));
        let total = loader.batches_per_epoch();
        // Every resume point, including ones past whole buffers and the end of the epoch.
        for done in 0..=total {
            let rest = collect(loader.epoch_iter(LoaderState { epoch: 1, batches_done: done }));
            assert_eq!(rest, full[done..], "resumed after {done} batches");
        }
        assert!(loader.epoch_iter(LoaderState { epoch: 1, batches_done: total + 1 }).next().unwrap().is_err());

        let mut state = LoaderState { epoch: 1, batches_done: 0 };
        for _ in 0..total {
            state = state.after_batch(total);
        }
        assert_eq!(state, LoaderState { epoch: 2, batches_done: 0 });
    }

    #[test]
    fn ranks_share_out_the_batches_of_one_process_with_their_total_batch_size() {
        let (_dir, corpus) = test_corpus();
        let single = Loader::new(corpus.clone(), config(), Split::Train).unwrap();
        let half = LoaderConfig { batch_size: 25, ..config() };
        let ranks: Vec<Loader> = (0..2).map(|r| Loader::sharded(corpus.clone(), half.clone(), Split::Train, r, 2).unwrap()).collect();
        assert!(Loader::sharded(corpus.clone(), half.clone(), Split::Train, 2, 2).is_err());
        let total = single.batches_per_epoch();
        assert!(ranks.iter().all(|l| l.batches_per_epoch() == total));
        // From the start and from a resume point mid-epoch.
        for done in [0, 3] {
            let state = LoaderState { epoch: 1, batches_done: done };
            let whole = collect(single.epoch_iter(state));
            let shares: Vec<Vec<Batch>> = ranks.iter().map(|l| collect(l.epoch_iter(state))).collect();
            assert_eq!(shares[0].len(), whole.len());
            for (step, b) in whole.iter().enumerate() {
                let (r0, r1) = (&shares[0][step], &shares[1][step]);
                assert_eq!(r0.n + r1.n, b.n, "step {step}");
                assert_eq!(r0.sample, b.sample.iter().copied().step_by(2).collect::<Vec<_>>());
                assert_eq!(r1.sample, b.sample.iter().copied().skip(1).step_by(2).collect::<Vec<_>>());
                // The same densified rows as the single process's.
                let g = b.g;
                assert_eq!(r1.target[..g], b.target[g..2 * g]);
                assert_eq!(r1.visible_genes[..b.k], b.visible_genes[b.k..2 * b.k]);
            }
        }

        // A last global batch with fewer samples than ranks is dropped.
        let n = single.n_samples(Split::Train) as usize;
        let batch_size = (1..n).find(|&b| (1..4).contains(&(n % (4 * b)))).unwrap();
        let cfg = LoaderConfig { batch_size, ..config() };
        let four: Vec<Loader> = (0..4).map(|r| Loader::sharded(corpus.clone(), cfg.clone(), Split::Train, r, 4).unwrap()).collect();
        assert_eq!(four[0].batches_per_epoch(), n / (4 * batch_size));
        let seen: usize = four.iter().map(|l| {
            let batches = collect(l.epoch_iter(LoaderState::default()));
            assert_eq!(batches.len(), l.batches_per_epoch());
            batches.iter().map(|b| b.n).sum::<usize>()
        }).sum();
        assert_eq!(seen, n - n % (4 * batch_size));
    }

    #[test]
    fn dropping_an_iterator_early_stops_its_threads() {
        let (_dir, corpus) = test_corpus();
        let loader = Loader::new(corpus, LoaderConfig { batch_size: 5, buffer_row_groups: 1, ..config() }, Split::Train).unwrap();
        let mut it = loader.epoch_iter(LoaderState::default());
        assert!(it.next().unwrap().is_ok());
        drop(it); // joins the assembler, which joins its workers: returning at all is the test
    }

    #[test]
    fn the_split_is_a_stable_hash_of_the_sample_id() {
        let val = (0..100_000u64).filter(|&s| Split::of(s, 3, 0.05) == Split::Validation).count();
        assert!((4_700..5_300).contains(&val), "{val} of 100,000");
        assert!((0..1000u64).all(|s| Split::of(s, 3, 0.0) == Split::Train));
        let a: Vec<Split> = (0..1000u64).map(|s| Split::of(s, 3, 0.5)).collect();
        assert_eq!(a, (0..1000u64).map(|s| Split::of(s, 3, 0.5)).collect::<Vec<_>>());
        assert_ne!(a, (0..1000u64).map(|s| Split::of(s, 4, 0.5)).collect::<Vec<_>>(), "seeded");
    }

    #[test]
    fn invalid_configs_name_their_field() {
        let err = LoaderConfig { buffer_row_groups: 0, ..config() }.validate("run.toml").unwrap_err();
        assert_eq!(err.to_string(), "run.toml: loader.buffer_row_groups: must be positive");
        assert!(LoaderConfig { validation_fraction: 1.0, ..config() }.validate("run.toml").is_err());
        let partial: LoaderConfig = serde_json::from_str(r#"{"batch_size": 8, "preprocess": {"kind": "log1p"}}"#).unwrap();
        assert_eq!(partial, LoaderConfig { batch_size: 8, preprocess: Preprocess::Log1p, ..LoaderConfig::default() });
    }

    /// Two simulated datasets written one after the other, as every corpus is built, in 16 row
    /// groups of 50 cells (8 per dataset).
    fn two_dataset_corpus() -> (tempfile::TempDir, Arc<Corpus>) {
        let dir = tempfile::tempdir().unwrap();
        let mut specs = Vec::new();
        for (name, seed) in [("a", 1), ("b", 2)] {
            let path = dir.path().join(format!("{name}.h5ad"));
            let cfg = SimConfig { n_cells: 400, seed, ..SimConfig::tiny() };
            simulate_to_h5ad(&cfg, &path, &indicatif::ProgressBar::hidden()).unwrap();
            specs.push(DatasetSpec::new(name, &path, GeneIdKind::Raw));
        }
        let mut m = Manifest::new(specs, Filters { min_cells_per_gene: 1, min_genes_per_cell: 0 });
        m.shard_rows = 50;
        let out = dir.path().join("corpus");
        build_corpus(&m, &out, &BuildOptions::default()).unwrap();
        (dir, Arc::new(Corpus::open(&out).unwrap()))
    }

    #[test]
    fn the_cpu_recipe_mixes_the_datasets_of_a_corpus_in_its_batches() {
        // A shuffle buffer of 2 row groups made most batches single-dataset: on the shared corpus
        // the gradient then swung from dataset to dataset and pretraining never left the per-gene
        // baseline (docs/experiments.md § 25). The recipes shuffle 16 row groups together.
        let (_dir, corpus) = two_dataset_corpus();
        for (name, run) in [("small", crate::config::RunConfig::small()), ("tiny", crate::config::RunConfig::tiny())] {
            let cfg = LoaderConfig { n_workers: 1, ..run.loader };
            let cfg_batch = cfg.batch_size;
            let loader = Loader::new(corpus.clone(), cfg, Split::Train).unwrap();
            let (mut mixed, mut total) = (0, 0);
            // The epoch's last batch holds what is left over (here a single sample).
            for batch in loader.epoch_iter(LoaderState::default()).map(Result::unwrap).filter(|b| b.n == cfg_batch) {
                let first = batch.sample.iter().filter(|&&s| s < 400).count();
                mixed += usize::from(first > 0 && first < batch.n);
                total += 1;
            }
            assert!(total >= 10, "{name}: {total} batches");
            assert_eq!(mixed, total, "{name}: {mixed} of {total} batches hold both datasets");
        }
    }
}
