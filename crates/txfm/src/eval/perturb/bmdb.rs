//! bmdb, known-relationship recall (EFAAR's `known_relationship_benchmark`, as Tx-Evaluation runs
//! it): average the cells of each non-control perturbation into one profile, take the cosine
//! similarity of every pair of profiles as the null, and count which known pairs of a database fall
//! in the null's tails (below the 5th or above the 95th percentile; [`crate::eval::recall`]). The
//! score is the mean recall over the databases that have at least one pair among the perturbations,
//! in percent (Tx-Evaluation reports each database; the paper averages them).
//!
//! Perturbation labels are matched to database entities as exact strings (gene symbols for the
//! EFAAR databases; the simulator's `SIMG…` symbols for its truth file). A database with no pair
//! among the perturbations is reported with recall NaN and left out of the mean, as EFAAR drops it.
//! The null holds `n(n-1)/2` f64 values for `n` perturbations (≈ 400 MB at 10,000).

use serde::{Deserialize, Serialize};

use super::data::PerturbData;
use crate::eval::annotations::PairDatabase;
use crate::eval::recall::{recall, sort_null};

/// Recall on one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseRecall {
    pub database: String,
    /// Known pairs with both genes perturbed (the query size).
    pub n_pairs: usize,
    /// Share of those pairs in the null's tails, in [0, 1]; NaN when `n_pairs` is 0.
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub recall: f64,
}

/// bmdb over several databases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bmdb {
    /// `100 ×` the mean recall over databases with pairs; NaN if none has any.
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub score: f64,
    /// Perturbations in the map.
    pub n_perts: usize,
    /// All pairs of perturbations, the null.
    pub n_null: usize,
    pub databases: Vec<DatabaseRecall>,
}

/// Mean embedding of each non-control perturbation that has cells, with its name.
/// Returns `(names, means)` with `means: [names.len(), dim]` row-major, in code order.
pub fn pert_means(data: &PerturbData) -> (Vec<String>, Vec<f64>) {
    let mut sums = vec![0.0f64; data.n_perts() * data.dim];
    let mut counts = vec![0usize; data.n_perts()];
    for i in 0..data.n_obs {
        let p = data.pert[i] as usize;
        counts[p] += 1;
        for (s, &v) in sums[p * data.dim..(p + 1) * data.dim].iter_mut().zip(data.row(i)) {
            *s += v as f64;
        }
    }
    let (mut names, mut means) = (Vec::new(), Vec::new());
    for p in (0..data.n_perts()).filter(|&p| p != data.control as usize && counts[p] > 0) {
        names.push(data.pert_names[p].clone());
        means.extend(sums[p * data.dim..(p + 1) * data.dim].iter().map(|s| s / counts[p] as f64));
    }
    (names, means)
}

/// bmdb of an embedding: [`pert_means`] then [`bmdb_on_map`].
pub fn bmdb(data: &PerturbData, dbs: &[PairDatabase], thresholds: (f64, f64)) -> Bmdb {
    let (names, means) = pert_means(data);
    bmdb_on_map(&names, &means, data.dim, dbs, thresholds)
}

/// bmdb of a map of perturbation profiles `features: [names.len(), dim]` (names unique).
pub fn bmdb_on_map(names: &[String], features: &[f64], dim: usize, dbs: &[PairDatabase], thresholds: (f64, f64)) -> Bmdb {
    let n = names.len();
    let cos = cosine_matrix(features, n, dim);
    let mut null = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        null.extend_from_slice(&cos[i * n + i + 1..(i + 1) * n]);
    }
    let null = sort_null(null);
    let databases: Vec<DatabaseRecall> = dbs
        .iter()
        .map(|db| {
            let query: Vec<f64> = db.pairs_among(names).into_iter().map(|(a, b)| cos[a * n + b]).collect();
            let r = if query.is_empty() { f64::NAN } else { recall(&null, &query, thresholds.0, thresholds.1) };
            DatabaseRecall { database: db.name.clone(), n_pairs: query.len(), recall: r }
        })
        .collect();
    let used: Vec<f64> = databases.iter().filter(|d| d.n_pairs > 0).map(|d| d.recall).collect();
    let score = if used.is_empty() { f64::NAN } else { 100.0 * used.iter().sum::<f64>() / used.len() as f64 };
    Bmdb { score, n_perts: n, n_null: null.len(), databases }
}

/// Cosine similarities of all rows of `x: [n, dim]` (sklearn's: a zero row has cosine 0, values
/// clipped to [-1, 1]). `[n, n]`
fn cosine_matrix(x: &[f64], n: usize, dim: usize) -> Vec<f64> {
    let units: Vec<f64> = (0..n)
        .flat_map(|i| {
            let row = &x[i * dim..(i + 1) * dim];
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            row.iter().map(move |v| v * s)
        })
        .collect();
    let u = tch::Tensor::from_slice(&units).view([n as i64, dim as i64]);
    let c = u.matmul(&u.tr()).clamp(-1.0, 1.0);
    Vec::<f64>::try_from(c.contiguous().view([-1])).expect("f64 tensor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_on_a_hand_made_map() {
        // 21 perturbations on the unit circle at angles 0°, 1°, ..., 20° — but A and B point the
        // same way (cosine 1, the top of the null) and C is opposite to A (cosine -1, the bottom).
        let mut names: Vec<String> = (0..18).map(|i| format!("G{i}")).collect();
        let mut feats: Vec<f64> = (0..18).flat_map(|i| {
            let a = (10.0 + i as f64).to_radians();
            [a.cos(), a.sin()]
        }).collect();
        names.extend(["A", "B", "C"].map(String::from));
        feats.extend([1.0, 0.0, 2.0, 0.0, -1.0, 0.0]);
        let db = PairDatabase::from_pairs("db", [("A", "B"), ("A", "C"), ("G3", "G4"), ("A", "missing")]);
        let empty = PairDatabase::from_pairs("empty", [("X", "Y")]);
        let b = bmdb_on_map(&names, &feats, 2, &[db, empty], (0.05, 0.95));
        assert_eq!(b.n_null, 21 * 20 / 2);
        // A–B (cos 1) and A–C (cos -1) lie in the tails; G3–G4 (cos(1°)) does not.
        assert_eq!(b.databases[0].n_pairs, 3);
        assert!((b.databases[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(b.databases[1].n_pairs, 0);
        assert!(b.databases[1].recall.is_nan());
        assert!((b.score - 200.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn means_skip_the_control() {
        let d = PerturbData {
            n_obs: 4,
            dim: 1,
            x: vec![1.0, 3.0, 10.0, 5.0],
            pert: vec![1, 1, 0, 2],
            pert_names: vec!["ctrl".into(), "A".into(), "B".into()],
            batch: vec![0; 4],
            batch_names: vec!["b".into()],
            control: 0,
        };
        assert_eq!(pert_means(&d), (vec!["A".to_string(), "B".to_string()], vec![2.0, 5.0]));
    }
}
