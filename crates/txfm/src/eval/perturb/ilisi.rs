//! ilisi: batch mixing, the Local Inverse Simpson's Index over batch labels (Korsunsky et al.
//! 2019, Harmony; `harmonypy.compute_lisi`, and Tx-Evaluation's `biomodalities/eval/ilisi.py`).
//!
//! For each cell: its `3·perplexity − 1` nearest other cells (Euclidean, exact; `NearestNeighbors(
//! n_neighbors=3·perplexity)` with the cell itself dropped), a Gaussian kernel `exp(−β·d)` over
//! their (unsquared) distances whose `β` is fitted by binary search until the kernel's entropy is
//! `ln(perplexity)` (tolerance 1e-5, at most 50 halvings/doublings from `β = 1`), and the inverse
//! Simpson's index `1 / Σ_b p_b²` of the kernel-weighted batch proportions `p_b`. LISI runs from 1
//! (all neighbours in one batch) to the number of batches (even mixing of equal batches).
//!
//! The score is `(mean LISI − 1) / (n_batches − 1)` in [0, 1]. Tx-Evaluation's `compute` returns
//! the plain mean LISI (its "normalised" array is computed and left unused) and scIB scales the
//! median by `n_batches − 1`; we take Tx-Evaluation's mean with scIB's scaling, so 0 is no mixing
//! and 1 is perfect mixing whatever the number of batches. `n_batches` counts the batches present
//! among the cells given.
//!
//! The kernel is evaluated as `exp(−β(d − d_min))`, which has the same entropy and weights as
//! `exp(−β·d)` but cannot underflow to an all-zero kernel on far-apart neighbours (where the
//! reference's search would see entropy 0 and drift).
//!
//! Tx-Evaluation's run scores the `test1` cells with `k = ⌊√n⌋` made odd (`k_initial: 251`, so
//! perplexity 83, in `replogle_eval.yaml`); which cells and which perplexity are the caller's.

use serde::{Deserialize, Serialize};

use super::data::PerturbData;
use super::knn::{Space, nearest};

/// LISI settings: the kernel's perplexity, the effective number of neighbours (harmonypy's
/// default, 30); `3·perplexity − 1` neighbours are searched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LisiConfig {
    pub perplexity: usize,
}

impl Default for LisiConfig {
    fn default() -> Self {
        LisiConfig { perplexity: 30 }
    }
}

/// Binary-search tolerance on the entropy and its iteration cap (harmonypy's values).
const ENTROPY_TOL: f64 = 1e-5;
const MAX_ITER: usize = 50;

/// Batch mixing in [0, 1]: `(mean LISI − 1) / (n_batches − 1)`. NaN with fewer than two batches,
/// where there is no mixing to measure.
pub fn ilisi(data: &PerturbData, cfg: &LisiConfig) -> f64 {
    let mut present = data.batch.clone();
    present.sort_unstable();
    present.dedup();
    if present.len() < 2 {
        return f64::NAN;
    }
    let scores = lisi(data, cfg);
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    (mean - 1.0) / (present.len() - 1) as f64
}

/// LISI of the batch labels around each cell. `[n_obs]`
///
/// Panics if `cfg.perplexity` is 0.
pub fn lisi(data: &PerturbData, cfg: &LisiConfig) -> Vec<f64> {
    assert!(cfg.perplexity > 0, "LISI needs a positive perplexity");
    let nb = nearest(&data.x, None, data.dim, 3 * cfg.perplexity - 1, Space::Euclidean);
    let n_labels = data.batch.iter().max().map_or(0, |&b| b as usize + 1);
    let mut mass = vec![0.0; n_labels];
    (0..data.n_obs)
        .map(|i| {
            if nb.k == 0 {
                return 1.0;
            }
            let p = kernel(nb.value_of(i), cfg.perplexity as f64);
            mass.iter_mut().for_each(|m| *m = 0.0);
            for (&j, pj) in nb.index_of(i).iter().zip(p) {
                mass[data.batch[j] as usize] += pj;
            }
            1.0 / mass.iter().map(|m| m * m).sum::<f64>()
        })
        .collect()
}

/// Normalised weights `exp(−β·d) / Σ` over distances `d`, with `β` fitted by binary search to the
/// target perplexity. `[d.len()]`
fn kernel(d: &[f64], perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    let (mut entropy, mut p) = entropy_at(d, beta);
    for _ in 0..MAX_ITER {
        let diff = entropy - target;
        if diff.abs() < ENTROPY_TOL {
            break;
        }
        // Entropy falls as β grows: too flat a kernel needs a larger β.
        if diff > 0.0 {
            lo = beta;
            beta = if hi.is_finite() { (beta + hi) / 2.0 } else { beta * 2.0 };
        } else {
            hi = beta;
            beta = if lo.is_finite() { (beta + lo) / 2.0 } else { beta / 2.0 };
        }
        (entropy, p) = entropy_at(d, beta);
    }
    p
}

/// Shannon entropy (nats) and weights of the kernel `exp(−β·d)` normalised over `d`.
fn entropy_at(d: &[f64], beta: f64) -> (f64, Vec<f64>) {
    let d_min = d.iter().copied().fold(f64::INFINITY, f64::min);
    let mut p: Vec<f64> = d.iter().map(|&x| (-beta * (x - d_min)).exp()).collect();
    let sum: f64 = p.iter().sum();
    let mean_excess = d.iter().zip(&p).map(|(&x, &w)| (x - d_min) * w).sum::<f64>() / sum;
    p.iter_mut().for_each(|w| *w /= sum);
    (sum.ln() + beta * mean_excess, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` cells of `n_batches` batches (round-robin) on a line, `x_i = i`: neighbours at every
    /// distance come from the batches in turn. `separate` moves batch `b` to `10⁴·b` instead.
    fn cells(n: usize, n_batches: usize, separate: bool) -> PerturbData {
        let batch: Vec<u32> = (0..n).map(|i| (i % n_batches) as u32).collect();
        let x = (0..n).map(|i| i as f32 + if separate { 1e4 * batch[i] as f32 } else { 0.0 }).collect();
        PerturbData {
            n_obs: n,
            dim: 1,
            x,
            pert: vec![0; n],
            pert_names: vec!["ctrl".into()],
            batch,
            batch_names: (0..n_batches).map(|b| format!("b{b}")).collect(),
            control: 0,
        }
    }

    #[test]
    fn kernel_hits_the_target_perplexity() {
        let d: Vec<f64> = (1..=89).map(|i| (i as f64).sqrt()).collect();
        let p = kernel(&d, 30.0);
        let entropy: f64 = -p.iter().filter(|&&w| w > 0.0).map(|w| w * w.ln()).sum::<f64>();
        assert!((entropy - 30f64.ln()).abs() < 1e-5, "entropy {entropy}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p.windows(2).all(|w| w[0] >= w[1]), "nearer neighbours weigh more");
    }

    #[test]
    fn equal_distances_give_uniform_weights() {
        // Every weight is 1/n whatever β: the entropy is ln(n) and the search just stops.
        let p = kernel(&[2.0; 8], 3.0);
        assert!(p.iter().all(|&w| (w - 0.125).abs() < 1e-15), "{p:?}");
        // Two batches of four equidistant neighbours: Simpson ½, LISI 2.
        let simpson = 2.0 * (4.0 * 0.125f64).powi(2);
        assert_eq!(1.0 / simpson, 2.0);
    }

    #[test]
    fn far_apart_neighbours_do_not_underflow() {
        let p = kernel(&[1000.0, 1001.0, 1002.0, 5000.0], 2.0);
        assert!(p.iter().all(|w| w.is_finite()) && (p.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn separated_batches_score_zero() {
        let data = cells(300, 3, true);
        let scores = lisi(&data, &LisiConfig { perplexity: 10 });
        assert!(scores.iter().all(|&s| (s - 1.0).abs() < 1e-12), "every neighbour in the cell's own batch");
        assert!(ilisi(&data, &LisiConfig { perplexity: 10 }).abs() < 1e-12);
    }

    #[test]
    fn mixed_batches_score_near_one() {
        // The nearest two neighbours are always of the other batches, so the cell's own batch weighs
        // a little under a third and LISI sits a little under 3.
        let data = cells(1200, 3, false);
        let score = ilisi(&data, &LisiConfig::default());
        assert!(score > 0.95 && score <= 1.0, "ilisi {score}");
    }

    #[test]
    fn one_batch_has_no_mixing_to_measure() {
        assert!(ilisi(&cells(50, 1, false), &LisiConfig::default()).is_nan());
    }
}
