//! scVI's minibatches, streamed: each epoch reads the input once in row chunks, keeps the rows of
//! one split (train or validation) on the genes used, and emits them in batches. Rows are
//! shuffled `shuffle_rows` at a time, so an input of up to that many cells is shuffled whole each
//! epoch, as scvi-tools does, and a larger one stays bounded in memory.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::baseline::CountInput;
use crate::Result;

/// Which cells go where, and what each brings besides its counts.
pub struct Plan {
    /// Local index of each input gene among the genes used (`u32::MAX`: not used). `[n_vars]`
    pub gene_slot: Vec<u32>,
    pub n_genes: usize,
    /// Batch code of each cell. `[n_obs]`
    pub batch: Vec<u32>,
    pub n_batch: usize,
    /// Whether each cell is in the validation split. `[n_obs]`
    pub is_val: Vec<bool>,
}

/// One minibatch: dense counts over the genes used and the cells' batch codes.
pub struct Minibatch {
    /// `[n, n_genes]` row-major.
    pub counts: Vec<f32>,
    pub batch: Vec<u32>,
    /// Input row of each cell.
    pub rows: Vec<usize>,
}

impl Minibatch {
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// A cell's counts on the genes used, sparse.
struct Row {
    index: usize,
    entries: Vec<(u32, f32)>,
}

/// Which cells a pass visits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    All,
}

/// Streams the cells of `split` once, in batches of `batch_size`, shuffled by `rng` (in input
/// order without one). With `min_last`, a last batch smaller than it is dropped (batch norm
/// cannot train on a single cell).
#[allow(clippy::too_many_arguments)]
pub fn for_each_batch(
    input: &mut CountInput,
    plan: &Plan,
    split: Split,
    batch_size: usize,
    shuffle_rows: usize,
    mut rng: Option<&mut ChaCha8Rng>,
    min_last: usize,
    f: &mut dyn FnMut(Minibatch) -> Result<()>,
) -> Result<()> {
    let mut buffer: Vec<Row> = Vec::new();
    let emit = |rows: &mut Vec<Row>, f: &mut dyn FnMut(Minibatch) -> Result<()>, n: usize| -> Result<()> {
        let taken: Vec<Row> = rows.drain(..n).collect();
        let mut counts = vec![0f32; n * plan.n_genes];
        for (i, r) in taken.iter().enumerate() {
            for &(g, v) in &r.entries {
                counts[i * plan.n_genes + g as usize] = v;
            }
        }
        f(Minibatch { counts, batch: taken.iter().map(|r| plan.batch[r.index]).collect(), rows: taken.iter().map(|r| r.index).collect() })
    };
    input.for_each_chunk(|chunk, _| {
        for i in 0..chunk.n_rows() {
            let index = chunk.row_start + i;
            let keep = match split {
                Split::Train => !plan.is_val[index],
                Split::Validation => plan.is_val[index],
                Split::All => true,
            };
            if !keep {
                continue;
            }
            let (s, e) = (chunk.indptr[i] as usize, chunk.indptr[i + 1] as usize);
            let entries = chunk.indices[s..e]
                .iter()
                .zip(&chunk.data[s..e])
                .filter_map(|(&j, &v)| {
                    let g = plan.gene_slot[j as usize];
                    (g != u32::MAX).then_some((g, v))
                })
                .collect();
            buffer.push(Row { index, entries });
        }
        if buffer.len() >= shuffle_rows {
            if let Some(r) = rng.as_deref_mut() {
                buffer.shuffle(r);
            }
            while buffer.len() >= batch_size {
                emit(&mut buffer, f, batch_size)?;
            }
        }
        Ok(())
    })?;
    if let Some(r) = rng {
        buffer.shuffle(r);
    }
    while buffer.len() >= batch_size {
        emit(&mut buffer, f, batch_size)?;
    }
    if !buffer.is_empty() && buffer.len() >= min_last {
        let n = buffer.len();
        emit(&mut buffer, f, n)?;
    }
    Ok(())
}
