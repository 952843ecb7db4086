//! p.cst, perturbation signal consistency: the share of perturbations whose cells point the same
//! way in the embedding more than chance allows. Two variants:
//!
//! - [`consistency_txeval`], Tx-Evaluation's (`main_eval.py`, `bmdb_precision`, after EFAAR's
//!   `pert_signal_consistency_benchmark`): a perturbation's statistic is the mean pairwise cosine
//!   similarity of its cells; the null is that statistic over the perturbations that target
//!   *unexpressed* genes (knocking down a gene that is not expressed should do nothing); the
//!   p-value is `1 - #{null < s} / #null` and a perturbation is consistent at p ≤ 0.05. Tested are
//!   all other non-control perturbations with ≥ 2 cells. Undefined (NaN) when no perturbation targets
//!   an unexpressed gene, which is common in small screens of expressed regulators.
//! - [`consistency_loo`], TxFM's: needs no unexpressed genes. For a perturbation with cells `P`
//!   (≥ 2), the statistic is the mean over its cells of the cosine between a cell and the mean
//!   direction of the *other* cells of `P` (leave-one-out, so a cell is never compared with itself),
//!   and the null is the cosine between each of 10,000 random cells not in `P` and the mean direction
//!   of `P`. The two samples (the `|P|` leave-one-out cosines and the null cosines) are compared by a
//!   one-sided Mann–Whitney U test (normal approximation with tie correction); a perturbation is
//!   consistent at p < 0.01. The paper gives no more detail than "leave-one-out cosine vs 10,000
//!   random cells"; this is our reading. A rank test of the two distributions, rather than the mean
//!   statistic against single-cell quantiles, keeps the power of all `|P|` cells and is not swamped
//!   by the random cells of related perturbations (which share the direction). Random cells are
//!   drawn once per seed from all cells (controls included), without replacement.
//!
//! Cosines follow sklearn's `cosine_similarity`: rows are scaled to unit length and a zero row
//! stays zero (cosine 0 with everything). Both scores are in percent.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::data::PerturbData;

/// Tx-Evaluation's significance level.
pub const TXEVAL_ALPHA: f64 = 0.05;
/// TxFM's significance level and number of random cells.
pub const LOO_ALPHA: f64 = 0.01;
pub const LOO_RANDOM_CELLS: usize = 10_000;

/// The outcome of one p.cst variant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    /// `100 · n_consistent / n_tested`; NaN when nothing could be tested.
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub score: f64,
    pub n_tested: usize,
    pub n_consistent: usize,
    /// Size of the null distribution (unexpressed-gene perturbations, or random cells).
    pub n_null: usize,
}

impl Consistency {
    fn new(n_tested: usize, n_consistent: usize, n_null: usize) -> Self {
        let score = if n_tested == 0 { f64::NAN } else { 100.0 * n_consistent as f64 / n_tested as f64 };
        Consistency { score, n_tested, n_consistent, n_null }
    }
}

/// The rows of each perturbation code. `[n_perts][cells]`
pub fn rows_by_pert(data: &PerturbData) -> Vec<Vec<usize>> {
    let mut rows = vec![Vec::new(); data.n_perts()];
    for (i, &p) in data.pert.iter().enumerate() {
        rows[p as usize].push(i);
    }
    rows
}

/// `row` scaled to unit length in f64 (zero stays zero).
fn unit(row: &[f32]) -> Vec<f64> {
    let norm = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
    let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    row.iter().map(|&v| v as f64 * s).collect()
}

/// Mean cosine similarity over the `m(m-1)/2` pairs of `rows`; NaN for fewer than two rows.
pub fn mean_pairwise_cosine(data: &PerturbData, rows: &[usize]) -> f64 {
    let m = rows.len();
    if m < 2 {
        return f64::NAN;
    }
    // Σ_{i≠j} u_i·u_j = |Σ u_i|² − Σ |u_i|², so the mean is linear in m, not quadratic.
    let mut sum = vec![0.0; data.dim];
    let mut self_dots = 0.0;
    for &r in rows {
        let u = unit(data.row(r));
        self_dots += u.iter().map(|v| v * v).sum::<f64>();
        sum.iter_mut().zip(&u).for_each(|(s, v)| *s += v);
    }
    let total = sum.iter().map(|v| v * v).sum::<f64>();
    ((total - self_dots) / (m * (m - 1)) as f64).clamp(-1.0, 1.0)
}

/// Tx-Evaluation's p.cst. `null_pert[p]` marks the perturbation codes whose target is unexpressed;
/// the control code is never tested nor part of the null.
pub fn consistency_txeval(data: &PerturbData, null_pert: &[bool], alpha: f64) -> Consistency {
    assert_eq!(null_pert.len(), data.n_perts(), "one flag per perturbation");
    let rows = rows_by_pert(data);
    let stat = |p: usize| mean_pairwise_cosine(data, &rows[p]);
    let is_candidate = |p: usize| p != data.control as usize && !rows[p].is_empty();
    let null = crate::eval::recall::sort_null(
        (0..data.n_perts()).filter(|&p| is_candidate(p) && null_pert[p]).map(stat).filter(|v| !v.is_nan()).collect(),
    );
    if null.is_empty() {
        return Consistency::new(0, 0, 0);
    }
    let (mut tested, mut consistent) = (0, 0);
    for p in (0..data.n_perts()).filter(|&p| is_candidate(p) && !null_pert[p]) {
        let s = stat(p);
        if s.is_nan() {
            continue;
        }
        tested += 1;
        let below = null.partition_point(|&v| v < s);
        if 1.0 - below as f64 / null.len() as f64 <= alpha {
            consistent += 1;
        }
    }
    Consistency::new(tested, consistent, null.len())
}

/// TxFM's leave-one-out p.cst against `n_random` random cells (see the module docs).
pub fn consistency_loo(data: &PerturbData, n_random: usize, alpha: f64, seed: u64) -> Consistency {
    let rows = rows_by_pert(data);
    let perts: Vec<usize> = (0..data.n_perts()).filter(|&p| p != data.control as usize && rows[p].len() >= 2).collect();
    if perts.is_empty() || data.dim == 0 {
        return Consistency::new(0, 0, 0);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let random: Vec<usize> = sample(&mut rng, data.n_obs, n_random.min(data.n_obs)).into_vec();

    // Leave-one-out cosines and unit mean direction of each tested perturbation.
    let mut loo = Vec::with_capacity(perts.len());
    let mut dirs = Vec::with_capacity(perts.len() * data.dim);
    for &p in &perts {
        let units: Vec<Vec<f64>> = rows[p].iter().map(|&r| unit(data.row(r))).collect();
        let mut sum = vec![0.0; data.dim];
        for u in &units {
            sum.iter_mut().zip(u).for_each(|(s, v)| *s += v);
        }
        loo.push(
            units
                .iter()
                .map(|u| {
                    let rest: Vec<f64> = sum.iter().zip(u).map(|(s, v)| s - v).collect();
                    let norm = rest.iter().map(|v| v * v).sum::<f64>().sqrt();
                    if norm > 0.0 { u.iter().zip(&rest).map(|(a, b)| a * b).sum::<f64>() / norm } else { 0.0 }
                })
                .collect::<Vec<f64>>(),
        );
        let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
        dirs.extend(sum.iter().map(|v| if norm > 0.0 { (v / norm) as f32 } else { 0.0 }));
    }
    // Cosines of every random cell with every direction, [n_random, n_tested], in one product.
    let rand_units: Vec<f32> = random.iter().flat_map(|&r| unit(data.row(r)).into_iter().map(|v| v as f32)).collect();
    let (d, k) = (data.dim as i64, perts.len() as i64);
    let cos = Tensor::from_slice(&rand_units)
        .view([random.len() as i64, d])
        .matmul(&Tensor::from_slice(&dirs).view([k, d]).tr());
    let cos = Vec::<f32>::try_from(cos.contiguous().view([-1])).expect("f32 tensor");

    let mut consistent = 0;
    for (j, &p) in perts.iter().enumerate() {
        let null: Vec<f64> = random
            .iter()
            .enumerate()
            .filter(|&(_, &r)| data.pert[r] as usize != p)
            .map(|(ri, _)| cos[ri * perts.len() + j] as f64)
            .collect();
        if mann_whitney_greater(&loo[j], &null) < alpha {
            consistent += 1;
        }
    }
    Consistency::new(perts.len(), consistent, random.len())
}

/// One-sided p-value that `a` tends to exceed `b` (Mann–Whitney U, normal approximation with tie
/// correction and continuity correction, as scipy's `mannwhitneyu(a, b, alternative="greater",
/// method="asymptotic")`). 1 when either sample is empty.
pub fn mann_whitney_greater(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return 1.0;
    }
    let mut all: Vec<(f64, bool)> = a.iter().map(|&v| (v, true)).chain(b.iter().map(|&v| (v, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len() as f64;
    let (mut rank_a, mut tie_term, mut i) = (0.0, 0.0, 0);
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_a += mid * all[i..=j].iter().filter(|x| x.1).count() as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let u = rank_a - n1 * (n1 + 1.0) / 2.0;
    let mu = n1 * n2 / 2.0;
    let sigma = (n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    if sigma == 0.0 {
        return 1.0;
    }
    let z = (u - mu - 0.5) / sigma;
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * (-z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
        .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(x: Vec<f32>, dim: usize, pert: Vec<u32>, n_perts: usize) -> PerturbData {
        let n = pert.len();
        PerturbData {
            n_obs: n,
            dim,
            x,
            pert,
            pert_names: (0..n_perts).map(|p| format!("p{p}")).collect(),
            batch: vec![0; n],
            batch_names: vec!["b".into()],
            control: 0,
        }
    }

    #[test]
    fn mean_pairwise_cosine_by_hand() {
        // (1,0), (0,1), (1,1): cosines 0, 1/√2, 1/√2 → mean √2/3. A zero row has cosine 0.
        let d = data(vec![1.0, 0.0, 0.0, 2.0, 3.0, 3.0, 0.0, 0.0], 2, vec![1, 1, 1, 2], 3);
        let want = 2f64.sqrt() / 3.0;
        assert!((mean_pairwise_cosine(&d, &[0, 1, 2]) - want).abs() < 1e-15);
        assert!((mean_pairwise_cosine(&d, &[0, 3]) - 0.0).abs() < 1e-15);
        assert!(mean_pairwise_cosine(&d, &[0]).is_nan());
    }

    #[test]
    fn txeval_counts_against_the_null() {
        // Perturbations 1–3 are "unexpressed" with mean cosines 0, 0 and 0.5 (null sorted
        // [0, 0, 0.5]); perturbation 4 has cosine 1 (p = 1 - 3/3 = 0 ≤ 0.05, consistent),
        // perturbation 5 has cosine 0.25 (p = 1 - 2/3, not consistent).
        let x = vec![
            1.0, 0.0, 0.0, 1.0, // p1: orthogonal
            1.0, 0.0, 0.0, -1.0, // p2: orthogonal
            1.0, 0.0, 1.0, 3f32.sqrt(), // p3: cosine 0.5
            2.0, 2.0, 1.0, 1.0, // p4: cosine 1
            1.0, 0.0, 0.25, 0.9375f32.sqrt(), // p5: cosine 0.25
            1.0, 1.0, // control, ignored
        ];
        let pert = vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 0];
        let d = data(x, 2, pert, 6);
        let null = [false, true, true, true, false, false];
        let c = consistency_txeval(&d, &null, TXEVAL_ALPHA);
        assert_eq!((c.n_tested, c.n_consistent, c.n_null), (2, 1, 3));
        assert_eq!(c.score, 50.0);
        // No unexpressed targets: undefined.
        assert!(consistency_txeval(&d, &[false; 6], TXEVAL_ALPHA).score.is_nan());
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        // scipy.stats.mannwhitneyu([3, 4, 5, 5, 6], [1, 2, 2, 3, 4, 4], alternative="greater",
        // method="asymptotic").pvalue = 0.0206229...
        let p = mann_whitney_greater(&[3.0, 4.0, 5.0, 5.0, 6.0], &[1.0, 2.0, 2.0, 3.0, 4.0, 4.0]);
        assert!((p - 0.020_622_94).abs() < 1e-6, "{p}");
        assert_eq!(mann_whitney_greater(&[], &[1.0]), 1.0);
    }

    #[test]
    fn loo_separates_tight_from_random() {
        // p1: 20 cells along +x with small noise; p2: 20 cells in random directions; controls: 200
        // random directions in 8 dimensions.
        let mut state = 9u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) as f32 - 0.5
        };
        let (mut x, mut pert) = (Vec::new(), Vec::new());
        for i in 0..240 {
            let p = if i < 20 { 1 } else if i < 40 { 2 } else { 0 };
            for j in 0..8 {
                x.push(if p == 1 && j == 0 { 3.0 + rnd() } else { rnd() });
            }
            pert.push(p);
        }
        let d = data(x, 8, pert, 3);
        let c = consistency_loo(&d, LOO_RANDOM_CELLS, LOO_ALPHA, 0);
        assert_eq!((c.n_tested, c.n_consistent, c.n_null), (2, 1, 240));
        assert_eq!(c.score, 50.0);
    }
}
