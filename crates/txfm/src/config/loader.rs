//! How the corpus loader draws batches: batch size, K visible genes and their weighting, the
//! preprocessing, the split and the shuffle buffers. Part of [`super::RunConfig`].

use serde::{Deserialize, Serialize};

use crate::preprocess::Preprocess;
use crate::{Error, Result};

/// Fields left out of a config file take their [`Default`] values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Visible genes per sample (K); samples whose dataset profiles fewer are padded.
    pub k: usize,
    /// Visible genes are drawn with weights m_i^τ (m_i = `Corpus::n_cells`, see
    /// `model::frequency_weights`): 0 = uniform, > 0 favours frequently detected genes.
    pub tau: f64,
    /// Sampling weight of a gene the sample did not detect, relative to one it did (see
    /// `model::sample_visible_genes_expressed`): 1 draws zeros as often as detected genes (the
    /// paper), 0 shows the detected genes first.
    #[serde(default = "default_zero_weight")]
    pub zero_weight: f64,
    pub preprocess: Preprocess,
    /// Seeds the split, the epoch order and the visible genes.
    pub seed: u64,
    /// Threads decoding row groups.
    pub n_workers: usize,
    /// Row groups whose samples are shuffled together (≤ 1,024 samples each). Two buffers are held
    /// decoded: about 2 · buffer_row_groups · 1,024 · nnz per sample · 8 bytes (~0.8 GB at the
    /// default 16 for 3,000 non-zeros per cell).
    pub buffer_row_groups: usize,
    /// Share of samples held out for validation.
    pub validation_fraction: f64,
}

fn default_zero_weight() -> f64 {
    1.0
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 256,
            k: 1024,
            tau: 0.0,
            zero_weight: default_zero_weight(),
            preprocess: Preprocess::default(),
            seed: 0,
            n_workers: 2,
            buffer_row_groups: 16,
            validation_fraction: 0.05,
        }
    }
}

impl LoaderConfig {
    /// Small batches and buffers for CPU runs on simulated data.
    pub fn tiny() -> Self {
        LoaderConfig { batch_size: 32, k: 64, n_workers: 1, buffer_row_groups: 2, ..Self::default() }
    }

    /// `origin` names the config (file) for error messages.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let positive = [
            ("loader.batch_size", self.batch_size),
            ("loader.k", self.k),
            ("loader.n_workers", self.n_workers),
            ("loader.buffer_row_groups", self.buffer_row_groups),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::config(origin, field, "must be positive"));
            }
        }
        if !self.tau.is_finite() {
            return Err(Error::config(origin, "loader.tau", format!("must be finite, got {}", self.tau)));
        }
        if !(0.0..=1.0).contains(&self.zero_weight) {
            return Err(Error::config(origin, "loader.zero_weight", format!("must be in [0, 1], got {}", self.zero_weight)));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(Error::config(
                origin,
                "loader.validation_fraction",
                format!("must be in [0, 1), got {}", self.validation_fraction),
            ));
        }
        self.preprocess.validate(origin)
    }
}
