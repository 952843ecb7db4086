//! The visible genes of each input row, drawn exactly as the training loader draws them: `K`
//! genes from the profiled ones ([`sample_visible_genes`], uniform or weighted by `m_i^τ`), their
//! preprocessed values, and padding when fewer than `K` genes are profiled.
//!
//! Each row's draw has its own random stream, keyed by (seed, sampling, row index): results do
//! not depend on chunk size, batch size or threads. The key is the loader's visible-gene stream
//! with the sampling in place of the epoch and the row in place of the sample id, so embedding
//! the file a single-dataset corpus was built from (keeping every cell), with the run's
//! `loader.seed`, shows each cell the very genes the loader showed it in epoch `sampling`.

use std::ops::Range;

use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use super::genes::{GeneMap, ModelRows};
use crate::config::RunConfig;
use crate::corpus::Corpus;
use crate::data::ExpressionSource;
use crate::model::{frequency_weights, VisibleTokens};
use crate::train::loader::sample_visible;
use crate::preprocess::Preprocess;
use crate::Result;

/// The random stream of row `row`'s draw number `sampling`: the loader's visible-gene stream.
pub fn row_rng(seed: u64, sampling: u64, row: u64) -> ChaCha8Rng {
    crate::train::loader::visible_rng(seed, sampling, row)
}

/// Draws visible genes for rows.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// Visible genes per sample (K).
    pub k: usize,
    pub seed: u64,
    pub preprocess: Preprocess,
    /// Sampling weights over the model vocabulary; `None` for uniform. `[G]`
    pub weights: Option<Vec<f64>>,
    /// The run's `loader.zero_weight`: a gene the row did not detect weighs this much.
    pub zero_weight: f64,
    /// Widen each row's `K` to its number of detected genes, so every detected gene is visible
    /// (the MAE convention: the encoder sees all of a sample's signal at inference). Only
    /// meaningful for a run that draws detected genes first (`zero_weight < 1`).
    pub all_detected: bool,
}

/// Visible tokens of a batch on the host. `[n, k]` each, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostVisible {
    pub n: usize,
    pub k: usize,
    /// Model gene indices; 0 at padding.
    pub genes: Vec<i64>,
    /// Preprocessed values, zeros included; 0 at padding.
    pub values: Vec<f32>,
    /// True at padding slots.
    pub pad: Vec<bool>,
}

impl HostVisible {
    pub fn to_tensors(&self, device: Device) -> VisibleTokens {
        let shape = [self.n as i64, self.k as i64];
        VisibleTokens {
            genes: Tensor::from_slice(&self.genes).view(shape).to_device(device),
            values: Tensor::from_slice(&self.values).view(shape).to_device(device),
            pad: Tensor::from_slice(&self.pad).view(shape).to_device(device),
        }
    }
}

impl Sampler {
    /// The draw of a model trained as `config`: its K, τ-weighting (`weights`), preprocessing
    /// and, unless `seed` is given, its `loader.seed`; see [`super::Embedder::sampler`] for what
    /// `k = None` means.
    pub fn of_run(config: &RunConfig, seed: Option<u64>, k: Option<usize>, weights: Option<Vec<f64>>) -> Sampler {
        Sampler {
            k: k.unwrap_or(config.model.n_visible),
            seed: seed.unwrap_or(config.loader.seed),
            preprocess: config.loader.preprocess,
            weights,
            zero_weight: config.loader.zero_weight,
            all_detected: k.is_none() && config.loader.zero_weight < 1.0,
        }
    }

    /// Visible tokens of local rows `range` of `rows` for sampling `sampling`, drawn from
    /// `profiled` (model indices, increasing). A `K` beyond the profiled genes shows them all and
    /// the batch is only as wide as they are: more slots would be padding, attended to by nothing.
    pub fn visible(&self, rows: &ModelRows, profiled: &[u32], sampling: u64, range: Range<usize>) -> HostVisible {
        let draws: Vec<(Vec<u32>, Vec<f32>)> = range
            .map(|r| {
                let (genes, counts) = rows.row(r);
                self.draw(profiled, genes, counts, rows.library_size[r], sampling, (rows.row_start + r) as u64)
            })
            .collect();
        HostVisible::from_draws(&draws)
    }

    /// One sample's visible genes (of `profiled`) and their preprocessed values, for draw number
    /// `sampling` of the sample keyed `key` (its row, or its corpus sample id); `genes`
    /// (increasing) and `counts` are its detected genes and counts, `library_size` its total.
    pub fn draw(&self, profiled: &[u32], genes: &[u32], counts: &[f32], library_size: f64, sampling: u64, key: u64) -> (Vec<u32>, Vec<f32>) {
        let detected = if self.all_detected { counts.iter().filter(|&&c| c > 0.0).count() } else { 0 };
        let k = self.k.max(detected).min(profiled.len()).max(1);
        let mut rng = row_rng(self.seed, sampling, key);
        let visible = sample_visible(profiled, k, self.weights.as_deref(), self.zero_weight, genes, counts, &mut rng);
        let values = self.preprocess.values_at(genes, counts, library_size, &visible);
        (visible, values)
    }
}

impl HostVisible {
    /// A batch of one row per draw of [`Sampler::draw`], as wide as the widest, the rest padded.
    pub fn from_draws(draws: &[(Vec<u32>, Vec<f32>)]) -> Self {
        let (n, k) = (draws.len(), draws.iter().map(|d| d.0.len()).max().unwrap_or(1).max(1));
        let mut b = HostVisible { n, k, genes: vec![0; n * k], values: vec![0.0; n * k], pad: vec![true; n * k] };
        for (i, (genes, values)) in draws.iter().enumerate() {
            for (j, (&g, &v)) in genes.iter().zip(values).enumerate() {
                b.genes[i * k + j] = g as i64;
                b.values[i * k + j] = v;
                b.pad[i * k + j] = false;
            }
        }
        b
    }
}

/// Frequency weights `m_i^τ` over the model vocabulary from a corpus's detection counts, matched
/// by gene id (model genes the corpus lacks count as undetected).
pub fn weights_from_corpus(corpus: &Corpus, vocab: &[String], tau: f64) -> Vec<f64> {
    let m: std::collections::HashMap<&str, u64> =
        corpus.var_names.iter().map(String::as_str).zip(corpus.n_cells.iter().copied()).collect();
    let n_cells: Vec<u64> = vocab.iter().map(|g| m.get(g.as_str()).copied().unwrap_or(0)).collect();
    frequency_weights(&n_cells, tau)
}

/// Frequency weights `m_i^τ` with `m_i` counted in the input itself (one streaming pass): the
/// stand-in for the training corpus's counts, which a checkpoint does not carry.
pub fn weights_from_input(src: &mut dyn ExpressionSource, genes: &GeneMap, tau: f64, chunk_rows: usize) -> Result<Vec<f64>> {
    let mut n_cells = vec![0u64; genes.n_vocab];
    let n = src.n_obs();
    let mut start = 0;
    while start < n {
        let end = (start + chunk_rows).min(n);
        let rows = genes.rows(src.read_rows(start, end)?);
        for &g in &rows.genes {
            n_cells[g as usize] += 1;
        }
        start = end;
    }
    Ok(frequency_weights(&n_cells, tau))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample_visible_genes;

    fn rows() -> ModelRows {
        // Row 0 counts genes 1 (3) and 4 (1), library 8 (4 counts at genes the model lacks);
        // row 1 is empty.
        ModelRows { row_start: 5, library_size: vec![8.0, 0.0], indptr: vec![0, 2, 2], genes: vec![1, 4], counts: vec![3.0, 1.0] }
    }

    #[test]
    fn a_k_beyond_the_profiled_genes_shows_them_all_without_padding() {
        let s = Sampler { k: 100_000, seed: 1, preprocess: Preprocess::LibNormLog1p { target_sum: 8.0 }, weights: None, zero_weight: 1.0, all_detected: false };
        let b = s.visible(&rows(), &[1, 2, 4], 0, 0..2);
        assert_eq!(b.k, 3, "capped at the 3 profiled genes, not 100,000 slots");
        assert_eq!(b.pad, [false; 6]);
        assert_eq!(b.genes, [1, 2, 4, 1, 2, 4], "all profiled genes, in order");
        let ln = |x: f32| x.ln_1p();
        assert_eq!(b.values, [ln(3.0), 0.0, ln(1.0), 0.0, 0.0, 0.0]);
    }

    #[test]
    fn all_detected_widens_each_row_to_its_detected_genes() {
        let profiled: Vec<u32> = (0..50).collect();
        let s = Sampler { k: 1, seed: 2, preprocess: Preprocess::default(), weights: None, zero_weight: 0.0, all_detected: true };
        let b = s.visible(&rows(), &profiled, 0, 0..2);
        // Row 0 detected genes 1 and 4: both shown. Row 1 detected nothing: one zero, then padding.
        assert_eq!(b.k, 2);
        let mut row0 = b.genes[..2].to_vec();
        row0.sort_unstable();
        assert_eq!(row0, [1, 4]);
        assert_eq!(b.pad, [false, false, false, true]);
        // Without the widening, K = 1 shows one of them.
        let narrow = Sampler { all_detected: false, ..s }.visible(&rows(), &profiled, 0, 0..2);
        assert_eq!(narrow.k, 1);
        assert!([1, 4].contains(&narrow.genes[0]));
    }

    #[test]
    fn draws_depend_on_seed_sampling_and_row_only() {
        let profiled: Vec<u32> = (0..50).collect();
        let s = Sampler { k: 5, seed: 3, preprocess: Preprocess::default(), weights: None, zero_weight: 1.0, all_detected: false };
        let both = s.visible(&rows(), &profiled, 0, 0..2);
        let second = s.visible(&rows(), &profiled, 0, 1..2);
        assert_eq!(both.genes[5..], second.genes[..], "a row's draw does not depend on its batch");
        assert_ne!(both.genes[..5], both.genes[5..], "rows differ");
        assert_ne!(s.visible(&rows(), &profiled, 1, 0..2).genes, both.genes, "samplings differ");
        let other = Sampler { seed: 4, ..s.clone() };
        assert_ne!(other.visible(&rows(), &profiled, 0, 0..2).genes, both.genes, "seeds differ");
        let mut rng = row_rng(3, 0, 6);
        assert_eq!(sample_visible_genes(&profiled, 5, None, &mut rng), both.genes[5..].iter().map(|&g| g as u32).collect::<Vec<_>>());
    }
}
