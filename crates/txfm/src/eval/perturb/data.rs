//! The benchmark's input in memory: one embedding of `n_obs` cells with their perturbation and
//! batch labels, and the split of cells the metrics train and score on. Every metric takes these
//! two types, so any embedding (ours, PCA, another model's `obsm`) goes through the same code.

/// An embedding and its labels. Labels are codes into the name lists, in first-seen order.
#[derive(Debug, Clone, PartialEq)]
pub struct PerturbData {
    pub n_obs: usize,
    /// Embedding width.
    pub dim: usize,
    /// Row-major embedding. `[n_obs, dim]`
    pub x: Vec<f32>,
    /// Perturbation of each cell, a code into `pert_names`. `[n_obs]`
    pub pert: Vec<u32>,
    pub pert_names: Vec<String>,
    /// Batch of each cell, a code into `batch_names`. `[n_obs]`
    pub batch: Vec<u32>,
    pub batch_names: Vec<String>,
    /// The code of the control label in `pert_names`.
    pub control: u32,
}

impl PerturbData {
    /// Row `i` of the embedding. `[dim]`
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    pub fn is_control(&self, i: usize) -> bool {
        self.pert[i] == self.control
    }

    pub fn n_perts(&self) -> usize {
        self.pert_names.len()
    }

    pub fn n_batches(&self) -> usize {
        self.batch_names.len()
    }

    /// The same labels with another embedding of the same cells (e.g. post-processed).
    ///
    /// Panics if `x` is not `n_obs × dim` long.
    pub fn with_x(&self, dim: usize, x: Vec<f32>) -> PerturbData {
        assert_eq!(x.len(), self.n_obs * dim, "embedding of the wrong size");
        PerturbData { dim, x, ..self.clone() }
    }
}

/// Which cells each metric trains and scores on (row indices into [`PerturbData`], ascending).
/// Seeded: a share of the batches and of the non-control perturbations go to training.
/// - `train`: training batches × training perturbations, and those batches' controls;
/// - `test1`: the other batches × training perturbations (unseen batches, seen labels), and those
///   batches' controls;
/// - `test2`: the other batches × the other perturbations (unseen batches and labels), and those
///   batches' controls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Split {
    pub train: Vec<usize>,
    pub test1: Vec<usize>,
    pub test2: Vec<usize>,
}

/// Top-1 and top-5 accuracy, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct TopK {
    // NaN (an empty test split) is written as null and read back as NaN.
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub top1: f64,
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub top5: f64,
}

impl TopK {
    /// The score the benchmark averages: the mean of top-1 and top-5.
    pub fn mean(&self) -> f64 {
        (self.top1 + self.top5) / 2.0
    }
}

/// Gene expression of the same cells as the embedding, the reconstruction target of `inv`:
/// normalise_total(1e4) then log1p, over the genes kept (`var_names`). `[n_obs, n_vars]`
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    pub n_obs: usize,
    pub n_vars: usize,
    pub values: Vec<f32>,
    pub var_names: Vec<String>,
}
