//! inv: gene-expression reconstruction from frozen embeddings, after Tx-Evaluation's
//! `DecoderModel` (`biomodalities/eval/reconstruction.py`). An MLP decodes each cell's embedding
//! into its normalise_total(1e4) + log1p expression; it trains on `split.train` and is scored on
//! `split.test2`, cells of unseen batches *and* unseen perturbations, by
//! - the Spearman correlation across cells of predicted and true expression, per gene, averaged
//!   over genes (`evaluate_reconstruction_metrics`, torchmetrics' `SpearmanCorrCoef` with one output
//!   per gene);
//! - Structural Integrity (`utils/metrics.py`, `StructuralTranscriptomeDistance`): within each
//!   batch, prediction and truth are each centred on their own batch's control mean; per batch
//!   `dist_b = ‖P_b − T_b‖_F / n_b` and `max_b = ‖T_b‖_F / n_b`; integrity is
//!   `1 − mean_b dist_b / (2 · mean_b max_b)`. 1 is perfect; predicting every cell's control mean
//!   (zero effect) gives 0.5, so it measures how well the perturbation effects are recovered,
//!   independent of the batch offsets.
//!
//! The benchmark's single `inv` number is [`Reconstruction::score`], the mean of the two in percent.
//! Tx-Evaluation logs them separately; averaging is our choice, made so `inv` reads on the same
//! 0–100 scale as `lin` and `knn`.
//!
//! As the reference: the decoder is `depth` Linear+ReLU layers whose widths step linearly from the
//! embedding width to the number of genes ([`hidden_widths`]), then a Linear to the genes; MSE loss;
//! AdamW with `replogle_eval_reconstruct.yaml`'s lr 1e-4, weight decay 1e-6, batches of 512 for 30
//! epochs under the linear-warm-up cosine schedule stepped per batch (10 epochs from 3e-5). Controls
//! are kept in both sets (the reconstruction datasets are opened without `control_key`, and the
//! integrity needs them).
//!
//! Differences: every `test2` cell is scored (the reference keeps only every 100th test batch of
//! its shuffled loader); a gene that is constant across the test cells in either prediction or
//! truth has correlation 0 (torchmetrics divides by `σ_p·σ_t + 1e-6`, which gives 0 there, where
//! SciPy gives NaN); a batch without controls is left uncentred, as in the reference.
//! Initialisation, optimiser and shuffling as [`super::probe`]: seeded, deterministic, on CPU.
//!
//! Cost: the decoder has about `dim·h₁ + h₁·h₂ + h₂·h₃ + h₃·n_vars` weights, so with thousands of
//! genes the default depth is heavy on CPU; `depth` and `epochs` are the knobs, and
//! [`ReconstructConfig::autocast`] (`--inv-bf16`) halves it on CPUs with AMX.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor, nn};

use crate::runtime::{with_autocast, AutocastDtype};

use super::data::{Expression, PerturbData, Split};
use super::probe::{FitConfig, Linear, rows_tensor};

/// Decoder settings (defaults: Tx-Evaluation's `replogle_eval_reconstruct.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconstructConfig {
    /// Hidden layers (`model_depth`).
    pub depth: usize,
    pub fit: FitConfig,
    /// The decoder's matmuls under autocast at this type (`None`: float32, the reference's).
    /// bfloat16 is not Tx-Evaluation's setting: a faster, approximate inv (`--inv-bf16`), measured
    /// on a CPU with AMX in BENCHMARKS.md (not on a GPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autocast: Option<AutocastDtype>,
}

impl Default for ReconstructConfig {
    fn default() -> Self {
        ReconstructConfig {
            depth: 3,
            fit: FitConfig {
                epochs: 30,
                batch_size: 512,
                lr: 1e-4,
                weight_decay: 1e-6,
                warmup_epochs: 10,
                warmup_start_lr: 3e-5,
                min_lr: 0.0,
                seed: 42,
            },
            autocast: None,
        }
    }
}

/// How well `test2` expression is decoded from the embedding.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reconstruction {
    /// Mean over genes of the Spearman correlation across `test2` cells, in [−1, 1].
    pub spearman: f64,
    /// Structural Integrity, at most 1 (0.5: no better than predicting the control mean).
    pub structural_integrity: f64,
    /// Mean squared error over `test2` cells × genes (the training loss).
    pub mse: f64,
}

impl Reconstruction {
    /// The benchmark's `inv`: `100 · (spearman + structural_integrity) / 2`.
    pub fn score(&self) -> f64 {
        100.0 * (self.spearman + self.structural_integrity) / 2.0
    }
}

/// Rows of `test2` decoded per forward pass.
const PREDICT_ROWS: usize = 4096;

/// Trains a decoder from the embedding to `expr` on `split.train` and scores it on `split.test2`.
///
/// Panics if `expr` does not have `data`'s cells or either set is empty.
pub fn reconstruct(data: &PerturbData, split: &Split, expr: &Expression, cfg: &ReconstructConfig) -> Reconstruction {
    reconstruct_on(data, split, expr, cfg, Device::Cpu)
}

/// [`reconstruct`] with the decoder trained on `device`.
pub fn reconstruct_on(data: &PerturbData, split: &Split, expr: &Expression, cfg: &ReconstructConfig, device: Device) -> Reconstruction {
    assert_eq!(expr.n_obs, data.n_obs, "expression and embedding must hold the same cells");
    assert!(!split.train.is_empty() && !split.test2.is_empty(), "reconstruction needs train and test2 cells");
    let n_vars = expr.n_vars;
    let x = rows_tensor(data, &split.train).to_device(device);
    let y = Tensor::from_slice(&expression_rows(expr, &split.train)).view([split.train.len() as i64, n_vars as i64]).to_device(device);
    let vs = nn::VarStore::new(device);
    let decoder = Decoder::new(&vs.root(), data.dim, n_vars, cfg.depth, &mut ChaCha8Rng::seed_from_u64(cfg.fit.seed));
    // Under autocast the loss is computed in float32 (autocast's policy for mse_loss).
    cfg.fit.run(&vs, split.train.len(), |idx| {
        with_autocast(device, cfg.autocast, || decoder.forward(&x.index_select(0, idx)).mse_loss(&y.index_select(0, idx), Reduction::Mean))
    });

    let mut pred = Vec::with_capacity(split.test2.len() * n_vars);
    for rows in split.test2.chunks(PREDICT_ROWS) {
        let p = tch::no_grad(|| with_autocast(device, cfg.autocast, || decoder.forward(&rows_tensor(data, rows).to_device(device))));
        pred.extend(Vec::<f32>::try_from(p.reshape([-1]).to_device(Device::Cpu).to_kind(Kind::Float)).expect("decoder output"));
    }
    let target = expression_rows(expr, &split.test2);
    let mse = pred.iter().zip(&target).map(|(&p, &t)| (p as f64 - t as f64).powi(2)).sum::<f64>() / pred.len() as f64;
    let batch: Vec<u32> = split.test2.iter().map(|&i| data.batch[i]).collect();
    let control: Vec<bool> = split.test2.iter().map(|&i| data.is_control(i)).collect();
    Reconstruction {
        spearman: mean_spearman(&pred, &target, split.test2.len(), n_vars),
        structural_integrity: structural_integrity(&pred, &target, n_vars, &batch, &control),
        mse,
    }
}

/// Hidden widths of the decoder: `⌊dim + (n_vars − dim)·i/(depth + 1)⌋` for `i = 1..=depth`, a
/// linear ramp from the embedding to the genes (`main_eval.py`).
pub fn hidden_widths(dim: usize, n_vars: usize, depth: usize) -> Vec<usize> {
    (1..=depth)
        .map(|i| (dim as f64 + (n_vars as f64 - dim as f64) * i as f64 / (depth + 1) as f64).trunc() as usize)
        .collect()
}

/// Mean over genes of Spearman's ρ between `pred` and `target` (both `[n_obs, n_vars]`,
/// row-major) across cells; tied values share their average rank, and a gene constant in either
/// has ρ = 0.
pub fn mean_spearman(pred: &[f32], target: &[f32], n_obs: usize, n_vars: usize) -> f64 {
    assert_eq!(pred.len(), n_obs * n_vars);
    assert_eq!(target.len(), n_obs * n_vars);
    let (mut col, mut order) = (vec![0f32; n_obs], Vec::with_capacity(n_obs));
    let (mut rank_p, mut rank_t) = (vec![0f64; n_obs], vec![0f64; n_obs]);
    let mut total = 0.0;
    for g in 0..n_vars {
        col.iter_mut().enumerate().for_each(|(i, v)| *v = pred[i * n_vars + g]);
        average_ranks(&col, &mut order, &mut rank_p);
        col.iter_mut().enumerate().for_each(|(i, v)| *v = target[i * n_vars + g]);
        average_ranks(&col, &mut order, &mut rank_t);
        // Average ranks always have mean (n + 1)/2.
        let mid = (n_obs as f64 + 1.0) / 2.0;
        let (mut cov, mut var_p, mut var_t) = (0.0, 0.0, 0.0);
        for (a, b) in rank_p.iter().zip(&rank_t) {
            cov += (a - mid) * (b - mid);
            var_p += (a - mid) * (a - mid);
            var_t += (b - mid) * (b - mid);
        }
        if var_p > 0.0 && var_t > 0.0 {
            total += cov / (var_p * var_t).sqrt();
        }
    }
    total / n_vars as f64
}

/// 1-based ranks of `values` into `ranks`, ties sharing their average (SciPy's `rankdata`).
fn average_ranks(values: &[f32], order: &mut Vec<usize>, ranks: &mut [f64]) {
    order.clear();
    order.extend(0..values.len());
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let shared = (start + end + 1) as f64 / 2.0;
        order[start..end].iter().for_each(|&i| ranks[i] = shared);
        start = end;
    }
}

/// Structural Integrity of `pred` against `target` (both `[n, n_vars]`, row-major) for cells of
/// batches `batch` `[n]`, `control` `[n]` marking the control cells: see the module doc.
pub fn structural_integrity(pred: &[f32], target: &[f32], n_vars: usize, batch: &[u32], control: &[bool]) -> f64 {
    let n = batch.len();
    assert_eq!(pred.len(), n * n_vars);
    assert_eq!(target.len(), n * n_vars);
    assert_eq!(control.len(), n);
    let mut batches = batch.to_vec();
    batches.sort_unstable();
    batches.dedup();
    let (mut dist, mut max) = (0.0, 0.0);
    for b in batches {
        let rows: Vec<usize> = (0..n).filter(|&i| batch[i] == b).collect();
        let controls: Vec<usize> = rows.iter().copied().filter(|&i| control[i]).collect();
        let centre = |m: &[f32]| -> Vec<f64> {
            let mut mean = vec![0.0; n_vars];
            for &i in &controls {
                mean.iter_mut().zip(&m[i * n_vars..(i + 1) * n_vars]).for_each(|(s, &v)| *s += v as f64);
            }
            mean.iter_mut().for_each(|s| *s /= controls.len().max(1) as f64);
            mean
        };
        let (centre_p, centre_t) = (centre(pred), centre(target));
        let (mut diff_sq, mut target_sq) = (0.0, 0.0);
        for &i in &rows {
            for g in 0..n_vars {
                let p = pred[i * n_vars + g] as f64 - centre_p[g];
                let t = target[i * n_vars + g] as f64 - centre_t[g];
                diff_sq += (p - t) * (p - t);
                target_sq += t * t;
            }
        }
        dist += diff_sq.sqrt() / rows.len() as f64;
        max += target_sq.sqrt() / rows.len() as f64;
    }
    // The means over batches share their denominator, which cancels.
    1.0 - dist / (2.0 * max)
}

/// Rows `idx` of the expression matrix, contiguous. `[idx.len(), n_vars]`
fn expression_rows(expr: &Expression, idx: &[usize]) -> Vec<f32> {
    idx.iter().flat_map(|&i| expr.values[i * expr.n_vars..(i + 1) * expr.n_vars].iter().copied()).collect()
}

/// The MLP decoder: `depth` Linear+ReLU layers, then a Linear to the genes.
#[derive(Debug)]
struct Decoder {
    layers: Vec<Linear>,
}

impl Decoder {
    fn new(path: &nn::Path, dim: usize, n_vars: usize, depth: usize, rng: &mut ChaCha8Rng) -> Self {
        let mut widths = vec![dim];
        widths.extend(hidden_widths(dim, n_vars, depth));
        widths.push(n_vars);
        let layers = widths.windows(2).enumerate().map(|(l, w)| Linear::new(path / l, w[0], w[1], rng)).collect();
        Decoder { layers }
    }

    /// `[n, dim]` → `[n, n_vars]`
    fn forward(&self, x: &Tensor) -> Tensor {
        let (last, hidden) = self.layers.split_last().expect("at least the output layer");
        let h = hidden.iter().fold(x.shallow_clone(), |h, layer| layer.forward(&h).relu());
        last.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn widths_ramp_from_the_embedding_to_the_genes() {
        assert_eq!(hidden_widths(512, 2000, 3), vec![884, 1256, 1628]);
        assert_eq!(hidden_widths(100, 20, 3), vec![80, 60, 40]);
        assert_eq!(hidden_widths(8, 100, 0), Vec::<usize>::new());
    }

    #[test]
    fn spearman_by_hand() {
        // Gene 0 agrees in order, gene 1 is reversed, gene 2 has tied truth, gene 3 is constant.
        #[rustfmt::skip]
        let pred = [
            1.0, 4.0, 1.0, 0.5,
            2.0, 3.0, 2.0, 0.7,
            3.0, 2.0, 3.0, 0.9,
        ];
        #[rustfmt::skip]
        let target = [
            10.0, 1.0, 0.0, 2.0,
            20.0, 2.0, 0.0, 2.0,
            30.0, 3.0, 1.0, 2.0,
        ];
        // Gene 2: ranks (1, 2, 3) against (1.5, 1.5, 3): cov 1.5, variances 2 and 1.5.
        let tied = 1.5 / (2.0f64 * 1.5).sqrt();
        let expected = (1.0 - 1.0 + tied + 0.0) / 4.0;
        assert!((mean_spearman(&pred, &target, 3, 4) - expected).abs() < 1e-12);
    }

    #[test]
    fn structural_integrity_by_hand() {
        // One batch of two cells, one gene, cell 0 the control: centred truth (0, 2).
        let (batch, control) = ([0, 0], [true, false]);
        let si = |pred: [f32; 2]| structural_integrity(&pred, &[1.0, 3.0], 1, &batch, &control);
        assert_eq!(si([1.0, 3.0]), 1.0);
        assert_eq!(si([0.0, 0.0]), 0.5, "no effect predicted");
        // Centred prediction (0, 1): dist ‖(0, −1)‖/2 = 0.5, max ‖(0, 2)‖/2 = 1.
        assert_eq!(si([5.0, 6.0]), 0.75);
        assert_eq!(si([3.0, 1.0]), 0.0, "the opposite effect");
        // Two batches average their distances and their maxima separately.
        let two = structural_integrity(&[1.0, 3.0, 7.0, 7.0], &[1.0, 3.0, 5.0, 9.0], 1, &[0, 0, 1, 1], &[true, false, true, false]);
        assert!((two - (1.0 - (0.0 + 2.0) / 2.0 / (2.0 * (1.0 + 2.0) / 2.0))).abs() < 1e-12, "{two}");
    }

    /// 600 cells in 3 batches (the first 20 of each are controls), 6-d embedding, and 12 genes that
    /// are a fixed linear map of it; batch 0–1 train, batch 2 is test2.
    fn linear_world() -> (PerturbData, Split, Expression) {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (n, dim, n_vars) = (600, 6, 12);
        let x: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a: Vec<f32> = (0..dim * n_vars).map(|_| rng.random_range(-1.0..1.0)).collect();
        let values = (0..n * n_vars)
            .map(|e| {
                let (i, g) = (e / n_vars, e % n_vars);
                (0..dim).map(|k| x[i * dim + k] * a[k * n_vars + g]).sum::<f32>()
            })
            .collect();
        let batch: Vec<u32> = (0..n).map(|i| (i / 200) as u32).collect();
        let pert: Vec<u32> = (0..n).map(|i| u32::from(i % 200 >= 20)).collect();
        let split = Split { train: (0..400).collect(), test1: Vec::new(), test2: (400..600).collect() };
        let data = PerturbData {
            n_obs: n,
            dim,
            x,
            pert,
            pert_names: vec!["ctrl".into(), "p".into()],
            batch,
            batch_names: vec!["b0".into(), "b1".into(), "b2".into()],
            control: 0,
        };
        let expr = Expression { n_obs: n, n_vars, values, var_names: (0..n_vars).map(|g| format!("g{g}")).collect() };
        (data, split, expr)
    }

    fn quick() -> ReconstructConfig {
        ReconstructConfig { fit: FitConfig { epochs: 100, batch_size: 32, lr: 3e-3, warmup_epochs: 2, ..ReconstructConfig::default().fit }, ..ReconstructConfig::default() }
    }

    #[test]
    fn a_linear_expression_is_reconstructed_and_a_shuffled_one_is_not() {
        let (data, split, expr) = linear_world();
        let r = reconstruct(&data, &split, &expr, &quick());
        assert!(r.spearman > 0.95 && r.structural_integrity > 0.85, "{r:?}");
        assert!(r.score() > 90.0, "{}", r.score());
        assert_eq!(reconstruct(&data, &split, &expr, &quick()), r, "seeded runs agree");

        let mut order: Vec<usize> = (0..data.n_obs).collect();
        order.reverse();
        let shuffled = Expression {
            values: order.iter().flat_map(|&i| expr.values[i * expr.n_vars..(i + 1) * expr.n_vars].to_vec()).collect(),
            ..expr.clone()
        };
        let r = reconstruct(&data, &split, &shuffled, &quick());
        assert!(r.spearman.abs() < 0.15, "{r:?}");
        assert!(r.structural_integrity < 0.55, "{r:?}");
    }

    #[test]
    fn a_bfloat16_decoder_reconstructs_close_to_the_float32_one() {
        let (data, split, expr) = linear_world();
        let f32_run = reconstruct(&data, &split, &expr, &quick());
        let bf16 = ReconstructConfig { autocast: Some(AutocastDtype::Bf16), ..quick() };
        let r = reconstruct(&data, &split, &expr, &bf16);
        assert_ne!(r, f32_run, "bfloat16 gave float32's result to the bit: autocast did not apply");
        assert!((r.score() - f32_run.score()).abs() < 1.0, "bfloat16 {r:?} vs float32 {f32_run:?}");
        assert_eq!(reconstruct(&data, &split, &expr, &bf16), r, "seeded bfloat16 runs agree");
        assert!(!serde_json::to_string(&quick()).unwrap().contains("autocast"), "float32 configs serialise as before");
    }
}
