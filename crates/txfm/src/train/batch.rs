//! One batch on the host, as the data loader hands it to the model: the visible-gene tokens of
//! each sample and the full reconstruction target. `n` samples, `k` visible slots, `g` vocabulary
//! genes; all arrays row-major.

/// A batch of samples ready to become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub n: usize,
    pub k: usize,
    pub g: usize,
    /// Corpus sample ids. `[n]`
    pub sample: Vec<u64>,
    /// Raw total counts of each sample (its library size before normalisation). `[n]`
    pub library_size: Vec<f64>,
    /// Vocabulary indices of the visible genes; padding slots hold 0. `[n, k]`
    pub visible_genes: Vec<i64>,
    /// Preprocessed values (log1p of library-normalised counts) of the visible genes, zeros
    /// included; 0 at padding. `[n, k]`
    pub visible_values: Vec<f32>,
    /// True at padding slots (samples whose dataset profiles fewer than `k` genes). `[n, k]`
    pub visible_pad: Vec<bool>,
    /// Preprocessed values of every vocabulary gene; 0 where not profiled. `[n, g]`
    pub target: Vec<f32>,
    /// True where the sample's dataset profiles the gene: the loss covers exactly these. `[n, g]`
    pub target_mask: Vec<bool>,
}
