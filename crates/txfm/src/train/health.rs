//! Representation health: is the CLS embedding of held-out samples a many-dimensional description
//! of them, or has it collapsed onto a couple of directions (library size, the largest cell-state
//! axis)? A masked autoencoder can lower its loss a long way on those alone, so the loss curve
//! does not show a collapse; these numbers do, from the first evaluation on.
//!
//! On the validation split's CLS outputs `[n, d]`:
//! - **participation ratio** `(Σλ)² / Σλ²` of the covariance's eigenvalues λ: the effective
//!   number of dimensions the samples spread over (1 for a rank-1 cloud, `d` for an isotropic one);
//! - **top share** `λ₁ / Σλ`: the variance share of the first principal direction;
//! - **library R²**: the out-of-fold R² of a ridge map from the embedding to ln(library size),
//!   3 folds: how much of the embedding is sequencing depth;
//! - **label kNN**: when the corpus carries a label column (a perturbation, a cell type), the
//!   leave-one-out accuracy of a cosine k-nearest-neighbour vote on the centred embedding, beside
//!   the accuracy of always guessing the commonest label.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::{Error, Result};

/// Folds of the library-size ridge regression.
pub const RIDGE_FOLDS: usize = 3;
/// Ridge penalty on the standardised embedding coordinates: small against the `n` of a validation
/// split, enough to keep a near-singular (collapsed) embedding's solve stable.
pub const RIDGE_ALPHA: f64 = 1.0;
/// Neighbours voting in the label kNN.
pub const KNN_K: usize = 10;

/// The health of one evaluation's embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub n_samples: usize,
    pub participation_ratio: f64,
    pub top_share: f64,
    pub library_r2: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<LabelKnn>,
}

/// Leave-one-out kNN accuracy of one label column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelKnn {
    pub column: String,
    pub accuracy: f64,
    /// Accuracy of always predicting the commonest label.
    pub chance: f64,
    pub n_classes: usize,
}

impl Health {
    /// `cls: [n, d]` row-major, `library_size: [n]` (raw total counts), `labels`: the column's
    /// name and one code per sample (`None` where the sample has no label; those neither vote nor
    /// are scored).
    pub fn measure(cls: &[f32], d: usize, library_size: &[f64], labels: Option<(&str, &[Option<u32>])>) -> Result<Health> {
        let n = library_size.len();
        if n < 2 * RIDGE_FOLDS || cls.len() != n * d || d == 0 {
            return Err(Error::Invalid(format!(
                "representation health needs at least {} samples with an embedding each (got {n} samples, {} values for d = {d})",
                2 * RIDGE_FOLDS,
                cls.len()
            )));
        }
        if let Some(bad) = cls.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("representation health: the embedding of validation sample {} is not finite", bad / d)));
        }
        let x = Tensor::from_slice(cls).to_kind(Kind::Double).view([n as i64, d as i64]);
        let (participation_ratio, top_share) = spectrum(&x);
        let log_lib: Vec<f64> = library_size.iter().map(|&l| l.max(1.0).ln()).collect();
        let library_r2 = ridge_r2(&x, &log_lib, RIDGE_FOLDS, RIDGE_ALPHA);
        let label = labels.and_then(|(column, codes)| {
            knn_accuracy(&x, codes, KNN_K).map(|(accuracy, chance, n_classes)| LabelKnn { column: column.to_string(), accuracy, chance, n_classes })
        });
        Ok(Health { n_samples: n, participation_ratio, top_share, library_r2, label })
    }

    /// One line for the progress bar: `PR 3.2 · top 41% · lib R² 0.35 · perturbation kNN 12% (chance 9%)`.
    pub fn summary(&self) -> String {
        let mut s = format!("PR {:.1} · top {:.0}% · lib R² {:.2}", self.participation_ratio, 100.0 * self.top_share, self.library_r2);
        if let Some(l) = &self.label {
            s.push_str(&format!(" · {} kNN {:.0}% (chance {:.0}%)", l.column, 100.0 * l.accuracy, 100.0 * l.chance));
        }
        s
    }
}

/// `(participation ratio, top share)` of the covariance spectrum of `x: [n, d]` (f64).
/// An embedding with no variance at all has neither: both are reported as 0.
pub fn spectrum(x: &Tensor) -> (f64, f64) {
    let n = x.size()[0];
    let centred = x - x.mean_dim(0, true, Kind::Double);
    let cov = centred.transpose(0, 1).matmul(&centred) / (n - 1).max(1) as f64;
    let eig: Vec<f64> = Vec::try_from(cov.linalg_eigvalsh("L").clamp_min(0.0)).expect("f64 eigenvalues");
    let total: f64 = eig.iter().sum();
    let squares: f64 = eig.iter().map(|l| l * l).sum();
    if total <= 0.0 || squares <= 0.0 {
        return (0.0, 0.0);
    }
    let top = eig.iter().cloned().fold(0.0, f64::max);
    (total * total / squares, top / total)
}

/// Out-of-fold R² of a ridge regression of `y` on `x: [n, d]` (f64): sample `i` is in fold
/// `i mod folds`; each fold is predicted from the others, with the coordinates standardised and
/// `y` centred on the training folds' statistics. R² = 1 − SSE / SST over all out-of-fold
/// predictions (SST about the overall mean), so a useless map scores ≤ 0.
pub fn ridge_r2(x: &Tensor, y: &[f64], folds: usize, alpha: f64) -> f64 {
    let n = y.len();
    let d = x.size()[1];
    let y_all = Tensor::from_slice(y);
    let fold_of = Tensor::from_slice(&(0..n).map(|i| (i % folds) as i64).collect::<Vec<_>>());
    let mut sse = 0.0;
    for f in 0..folds as i64 {
        let test = fold_of.eq(f);
        let train = test.logical_not();
        let (xt, yt) = (x.index_select(0, &train.nonzero().squeeze_dim(1)), y_all.masked_select(&train));
        let (xv, yv) = (x.index_select(0, &test.nonzero().squeeze_dim(1)), y_all.masked_select(&test));
        let mean = xt.mean_dim(0, true, Kind::Double);
        // Constant coordinates (std 0) stay 0 after centring whatever they are divided by.
        let std = xt.std_dim(0, false, true).clamp_min(1e-12);
        let (xt, xv) = ((&xt - &mean) / &std, (&xv - &mean) / &std);
        let y_mean = yt.mean(Kind::Double);
        let gram = xt.transpose(0, 1).matmul(&xt) + Tensor::eye(d, (Kind::Double, Device::Cpu)) * alpha;
        let w = Tensor::linalg_solve(&gram, &xt.transpose(0, 1).matmul(&(&yt - &y_mean).unsqueeze(1)), true);
        let pred = xv.matmul(&w).squeeze_dim(1) + &y_mean;
        sse += (pred - yv).square().sum(Kind::Double).double_value(&[]);
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    let sst: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if sst <= 0.0 { 0.0 } else { 1.0 - sse / sst }
}

/// Leave-one-out accuracy of a `k`-nearest-neighbour majority vote by cosine similarity on the
/// centred `x: [n, d]` (f64), over the samples with a label; ties go to the nearer neighbour's
/// label. Returns `(accuracy, chance, classes)`, or `None` with fewer than two labelled samples
/// or a single class (nothing to tell apart).
pub fn knn_accuracy(x: &Tensor, labels: &[Option<u32>], k: usize) -> Option<(f64, f64, usize)> {
    let rows: Vec<i64> = labels.iter().enumerate().filter(|(_, l)| l.is_some()).map(|(i, _)| i as i64).collect();
    let codes: Vec<u32> = labels.iter().flatten().copied().collect();
    let mut counts = std::collections::BTreeMap::new();
    for &c in &codes {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    if rows.len() < 2 || counts.len() < 2 {
        return None;
    }
    let x = x.index_select(0, &Tensor::from_slice(&rows));
    let centred = &x - x.mean_dim(0, true, Kind::Double);
    let unit = &centred / centred.norm_scalaropt_dim(2.0, [1i64].as_slice(), true).clamp_min(1e-12);
    let n = rows.len() as i64;
    let k = k.min(rows.len() - 1) as i64;
    // The sample itself is excluded by giving its own similarity -inf.
    let sim = unit.matmul(&unit.transpose(0, 1)).fill_diagonal_(f64::NEG_INFINITY, false);
    let (_, nearest) = sim.topk(k, 1, true, true);
    let nearest: Vec<i64> = Vec::try_from(nearest.reshape([-1])).expect("i64 indices");
    let mut correct = 0usize;
    for i in 0..n as usize {
        let neighbours = &nearest[i * k as usize..(i + 1) * k as usize];
        let mut votes: Vec<(u32, usize, usize)> = Vec::new(); // (label, votes, rank of its nearest)
        for (rank, &j) in neighbours.iter().enumerate() {
            let c = codes[j as usize];
            match votes.iter_mut().find(|v| v.0 == c) {
                Some(v) => v.1 += 1,
                None => votes.push((c, 1, rank)),
            }
        }
        let best = votes.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2))).expect("k ≥ 1");
        correct += (best.0 == codes[i]) as usize;
    }
    let commonest = *counts.values().max().expect("non-empty");
    Some((correct as f64 / n as f64, commonest as f64 / n as f64, counts.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        rng.sample::<f64, _>(StandardNormal)
    }

    fn tensor(values: &[f64], d: usize) -> Tensor {
        Tensor::from_slice(values).view([-1, d as i64])
    }

    #[test]
    fn participation_ratio_is_one_for_rank_one_and_about_d_for_isotropic_clouds() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (n, d) = (4000, 16);
        let direction: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
        let rank1: Vec<f64> = (0..n).flat_map(|_| {
            let t = normal(&mut rng);
            direction.iter().map(move |v| 3.0 + t * v).collect::<Vec<_>>()
        }).collect();
        let (pr, top) = spectrum(&tensor(&rank1, d));
        assert!((pr - 1.0).abs() < 1e-6 && (top - 1.0).abs() < 1e-6, "rank 1: PR {pr}, top {top}");
        let iso: Vec<f64> = (0..n * d).map(|_| normal(&mut rng)).collect();
        let (pr, top) = spectrum(&tensor(&iso, d));
        // Sampling noise of 4,000 draws spreads the eigenvalues a little: PR ≈ d / (1 + d/n).
        assert!(pr > 0.95 * d as f64 && pr <= d as f64, "isotropic: PR {pr}");
        assert!(top < 1.5 / d as f64, "isotropic: top {top}");
        // Two directions with variances 4 and 1: PR = 25 / 17, top = 0.8.
        let two: Vec<f64> = (0..n).flat_map(|i| {
            let (a, b) = if i % 2 == 0 { (2.0, 1.0) } else { (-2.0, -1.0) };
            let sign = if (i / 2) % 2 == 0 { 1.0 } else { -1.0 };
            vec![a, b * sign]
        }).collect();
        let (pr, top) = spectrum(&tensor(&two, 2));
        assert!((pr - 25.0 / 17.0).abs() < 1e-3 && (top - 0.8).abs() < 1e-3, "PR {pr}, top {top}");
        assert_eq!(spectrum(&tensor(&vec![2.0; 20], 2)), (0.0, 0.0));
    }

    #[test]
    fn ridge_r2_finds_a_linear_signal_and_not_noise() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (n, d) = (600, 8);
        let x: Vec<f64> = (0..n * d).map(|_| normal(&mut rng)).collect();
        // y = 2·x₀ − x₃ + noise of variance 0.25: R² = 5 / 5.25.
        let y: Vec<f64> = (0..n).map(|i| 2.0 * x[i * d] - x[i * d + 3] + 0.5 * normal(&mut rng)).collect();
        let r2 = ridge_r2(&tensor(&x, d), &y, 3, 1.0);
        assert!((r2 - 5.0 / 5.25).abs() < 0.02, "R² {r2}");
        let noise: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let r2 = ridge_r2(&tensor(&x, d), &noise, 3, 1.0);
        assert!(r2 < 0.02, "R² of noise {r2}");
    }

    #[test]
    fn knn_accuracy_separates_clustered_labels_from_shuffled_ones() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (classes, per, d) = (5u32, 40, 6);
        let centres: Vec<Vec<f64>> = (0..classes).map(|_| (0..d).map(|_| 3.0 * normal(&mut rng)).collect()).collect();
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for c in 0..classes {
            for _ in 0..per {
                x.extend(centres[c as usize].iter().map(|m| m + 0.3 * normal(&mut rng)));
                labels.push(Some(c));
            }
        }
        let x = tensor(&x, d);
        let (acc, chance, n_classes) = knn_accuracy(&x, &labels, 10).unwrap();
        assert_eq!(n_classes, 5);
        assert!((chance - 0.2).abs() < 1e-12);
        assert!(acc > 0.95, "clustered: {acc}");
        // Labels unrelated to the embedding score near chance.
        let shuffled: Vec<Option<u32>> = (0..labels.len()).map(|i| Some(((i * 7 + i / 3) % 5) as u32)).collect();
        let (acc, _, _) = knn_accuracy(&x, &shuffled, 10).unwrap();
        assert!(acc < 0.4, "unrelated labels: {acc}");
        // Unlabelled samples are left out; one class has nothing to tell apart.
        let mut partial = labels.clone();
        partial[..per].iter_mut().for_each(|l| *l = None);
        assert_eq!(knn_accuracy(&x, &partial, 10).unwrap().2, 4);
        assert!(knn_accuracy(&x, &vec![Some(1); labels.len()], 10).is_none());
    }

    #[test]
    fn measure_reports_every_number_and_refuses_non_finite_embeddings() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (n, d) = (300, 4);
        let lib: Vec<f64> = (0..n).map(|_| (6.0 + normal(&mut rng)).exp()).collect();
        // Coordinate 0 is ln(library size); the others are noise.
        let cls: Vec<f32> = (0..n).flat_map(|i| {
            let mut row = vec![lib[i].ln() as f32];
            row.extend((1..d).map(|_| normal(&mut rng) as f32));
            row
        }).collect();
        let labels: Vec<Option<u32>> = (0..n).map(|i| Some((i % 3) as u32)).collect();
        let h = Health::measure(&cls, d, &lib, Some(("perturbation", &labels))).unwrap();
        assert_eq!(h.n_samples, n);
        assert!(h.library_r2 > 0.99, "{h:?}");
        assert!(h.participation_ratio > 3.0 && h.participation_ratio < 4.0, "{h:?}");
        assert_eq!(h.label.as_ref().unwrap().n_classes, 3);
        assert!(h.summary().contains("perturbation kNN"), "{}", h.summary());
        let mut bad = cls.clone();
        bad[5] = f32::NAN;
        let err = Health::measure(&bad, d, &lib, None).unwrap_err().to_string();
        assert!(err.contains("sample 1"), "{err}");
        assert!(Health::measure(&cls[..8], d, &lib[..2], None).is_err());
    }
}
