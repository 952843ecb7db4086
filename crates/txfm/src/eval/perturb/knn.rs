//! knn: weighted k-nearest-neighbour classification of perturbations, after Tx-Evaluation's
//! `WeightedKNNClassifier` (`biomodalities/eval/knn.py`), itself DINO's weighted kNN (Caron et al.
//! 2021). Each `test1` cell (unseen batches, seen perturbations) queries the `train` cells; its
//! `k` nearest neighbours vote for their perturbation with a weight that grows with similarity,
//! and the classes ranked by summed vote give top-1 and top-5 accuracy.
//!
//! Choices, against the reference:
//! - controls stay in, as queries and as neighbours: `main_eval.py` builds the kNN datasets with
//!   `control_key=None`, unlike the linear probe's;
//! - cosine similarity with weight `exp(s / T)`, `T = 0.07`, is the default (`knn.py` and
//!   `eval_args.py` defaults); Euclidean with weight `1 / (d + ε)` is [`KnnMetric::Euclidean`].
//!   The authors' `replogle_eval.yaml` switches to Euclidean on 32 PCA components with `k = 251`;
//!   PCA is the caller's business here (the embedding is used as given);
//! - `k = ⌊√n_train⌋`, made odd, unless given (`main_eval.py` makes a given `k` odd too; here a
//!   given `k` is used as is), at most `n_train`;
//! - a class counts towards top-5 only if it received a vote: `knn.py` sorts all classes, so
//!   when fewer than five receive votes its top-5 depends on how `torch.sort` orders the zero-vote
//!   ties. With `k ≈ √n` neighbours the two agree except on tiny inputs. Equal votes rank the lower
//!   class code first;
//! - no stratified down-sampling of `train` above 10⁵ cells (`data_utils.downsample_data`): the
//!   search below is exact and blocked, so the full set fits.
//!
//! The neighbour search is shared with [`super::ilisi`]: brute force, exact, in `f64` — libtorch
//! matrix products of blocks of queries against all reference rows (centred, so that
//! `‖q‖² + ‖r‖² − 2q·r` keeps its digits), then `topk`. `f64` costs about twice an `f32` product
//! but gives the neighbours, vote weights and LISI distances that SciPy/scikit-learn give, to
//! ~1e-12. Memory: the reference in `f64` plus one 128 MiB block. Time grows as
//! `n_queries · n_reference · dim`: 20,000 cells × 128 dims against themselves took 10–20 s on 2
//! busy cores.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::data::{PerturbData, Split, TopK};

/// How nearness is measured and turned into a vote weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnnMetric {
    /// Cosine similarity `s` of L2-normalised rows, weight `exp(s / temperature)`.
    Cosine { temperature: f64 },
    /// Euclidean distance `d`, weight `1 / (d + epsilon)`.
    Euclidean { epsilon: f64 },
}

impl Default for KnnMetric {
    fn default() -> Self {
        KnnMetric::Cosine { temperature: 0.07 }
    }
}

/// kNN settings: `k` (`None`: [`default_k`] of the training set) and the metric.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KnnConfig {
    pub k: Option<usize>,
    pub metric: KnnMetric,
}

/// Weighted-kNN top-1/top-5 accuracy (percent) of `split.test1` against `split.train`, cosine
/// metric; `k` as [`KnnConfig::k`].
pub fn knn(data: &PerturbData, split: &Split, k: Option<usize>) -> TopK {
    knn_with(data, split, &KnnConfig { k, ..KnnConfig::default() })
}

/// [`knn`] with any [`KnnConfig`].
///
/// Panics if `split.train` or `split.test1` is empty.
pub fn knn_with(data: &PerturbData, split: &Split, cfg: &KnnConfig) -> TopK {
    assert!(!split.train.is_empty() && !split.test1.is_empty(), "kNN needs training and test1 cells");
    let k = cfg.k.unwrap_or_else(|| default_k(split.train.len()));
    let votes = knn_votes(data, &split.train, &split.test1, k, cfg.metric);
    let targets: Vec<u32> = split.test1.iter().map(|&i| data.pert[i]).collect();
    vote_accuracy(&votes, data.n_perts(), &targets)
}

/// `⌊√n_train⌋`, made odd (Tx-Evaluation's `main_eval.py`): an odd `k` avoids even splits
/// between two classes.
pub fn default_k(n_train: usize) -> usize {
    let mut k = (n_train as f64).sqrt() as usize;
    while k * k > n_train {
        k -= 1;
    }
    while (k + 1) * (k + 1) <= n_train {
        k += 1;
    }
    k | 1
}

/// Summed vote weight of each perturbation for each query cell: rows `queries` of `data` search
/// their `k` nearest among rows `train` (at most `train.len()`). `[queries.len(), n_perts]`,
/// row-major.
pub fn knn_votes(data: &PerturbData, train: &[usize], queries: &[usize], k: usize, metric: KnnMetric) -> Vec<f64> {
    let reference = gather_rows(data, train);
    let query_rows = gather_rows(data, queries);
    let space = match metric {
        KnnMetric::Cosine { .. } => Space::Cosine,
        KnnMetric::Euclidean { .. } => Space::Euclidean,
    };
    let nb = nearest(&reference, Some(&query_rows), data.dim, k, space);
    let n_classes = data.n_perts();
    let mut votes = vec![0.0; queries.len() * n_classes];
    for q in 0..queries.len() {
        let row = &mut votes[q * n_classes..(q + 1) * n_classes];
        for (&j, &value) in nb.index_of(q).iter().zip(nb.value_of(q)) {
            let weight = match metric {
                KnnMetric::Cosine { temperature } => (value / temperature).exp(),
                KnnMetric::Euclidean { epsilon } => 1.0 / (value + epsilon),
            };
            row[data.pert[train[j]] as usize] += weight;
        }
    }
    votes
}

/// Top-1/top-5 accuracy (percent) of vote rows `[n, n_classes]` against `targets` `[n]`. Only
/// classes with a positive vote are predictions; ties rank the lower class code first.
fn vote_accuracy(votes: &[f64], n_classes: usize, targets: &[u32]) -> TopK {
    let (mut top1, mut top5) = (0usize, 0usize);
    for (row, &target) in votes.chunks(n_classes).zip(targets) {
        let mut ranked: Vec<usize> = (0..n_classes).filter(|&c| row[c] > 0.0).collect();
        ranked.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let rank = ranked.iter().position(|&c| c == target as usize);
        top1 += usize::from(rank == Some(0));
        top5 += usize::from(rank.is_some_and(|r| r < 5));
    }
    let n = targets.len() as f64;
    TopK { top1: 100.0 * top1 as f64 / n, top5: 100.0 * top5 as f64 / n }
}

/// Rows `idx` of the embedding, contiguous. `[idx.len(), dim]`
pub(super) fn gather_rows(data: &PerturbData, idx: &[usize]) -> Vec<f32> {
    idx.iter().flat_map(|&i| data.row(i).iter().copied()).collect()
}

/// How [`nearest`] measures nearness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Space {
    /// Euclidean distance, smaller is nearer.
    Euclidean,
    /// Cosine similarity (rows scaled by `1 / max(‖x‖, 1e-12)`, as `F.normalize`), larger is nearer.
    Cosine,
}

/// The `k` nearest reference rows of each query, nearest first (ties: lower index first).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Neighbours {
    pub k: usize,
    /// Reference row of each neighbour. `[n_queries, k]`
    pub index: Vec<usize>,
    /// Euclidean distance or cosine similarity of each neighbour, in `f64`. `[n_queries, k]`
    pub value: Vec<f64>,
}

impl Neighbours {
    pub fn index_of(&self, q: usize) -> &[usize] {
        &self.index[q * self.k..(q + 1) * self.k]
    }

    pub fn value_of(&self, q: usize) -> &[f64] {
        &self.value[q * self.k..(q + 1) * self.k]
    }
}

/// Elements of one block of query × reference scores (128 MiB of `f64`), which bounds the memory
/// of a search however many queries there are.
const BLOCK_ELEMENTS: usize = 1 << 24;

/// Exact kNN of `queries` (`[n_q, dim]`) among `reference` (`[n_ref, dim]`), both row-major. With
/// `queries = None` the reference rows query themselves and each excludes itself (not its
/// duplicates). `k` is capped at the number of candidates; which of several rows tied at the
/// `k`-th distance is kept is libtorch's choice.
pub(super) fn nearest(reference: &[f32], queries: Option<&[f32]>, dim: usize, k: usize, space: Space) -> Neighbours {
    let exclude_self = queries.is_none();
    let n_ref = reference.len() / dim;
    let n_q = queries.map_or(n_ref, |q| q.len() / dim);
    let available = n_ref.saturating_sub(usize::from(exclude_self));
    let k = k.min(available);
    if k == 0 || n_q == 0 {
        return Neighbours { k, index: Vec::new(), value: Vec::new() };
    }

    // Centring keeps ‖q‖² + ‖r‖² − 2q·r from cancelling away the distances when the cloud sits
    // far from the origin; cosine works on unit rows (`F.normalize`: `x / max(‖x‖, 1e-12)`).
    let shift = Tensor::from_slice(&column_means(reference, dim)).view([1, dim as i64]);
    let prepare = |rows: &[f32]| -> Tensor {
        let t = Tensor::from_slice(rows).view([(rows.len() / dim) as i64, dim as i64]).to_kind(Kind::Double);
        match space {
            Space::Euclidean => t - &shift,
            Space::Cosine => {
                let norms = t.square().sum_dim_intlist(1, true, Kind::Double).sqrt().clamp_min(1e-12);
                t / norms
            }
        }
    };
    let r = prepare(reference);
    let rt = r.tr();
    let r_sq = r.square().sum_dim_intlist(1, false, Kind::Double).unsqueeze(0);

    let mut index = Vec::with_capacity(n_q * k);
    let mut value = Vec::with_capacity(n_q * k);
    let block = (BLOCK_ELEMENTS / n_ref).clamp(1, n_q);
    let mut row: Vec<(f64, usize)> = Vec::with_capacity(k);
    for start in (0..n_q).step_by(block) {
        let b = block.min(n_q - start);
        let q = match queries {
            None => r.narrow(0, start as i64, b as i64),
            Some(rows) => prepare(&rows[start * dim..(start + b) * dim]),
        };
        // Larger is nearer: q·r for cosine, 2q·r − ‖r‖² (= ‖q‖² − ‖q − r‖²) for Euclidean.
        let scores = match space {
            Space::Cosine => q.matmul(&rt),
            Space::Euclidean => q.matmul(&rt) * 2.0 - &r_sq,
        };
        if exclude_self {
            let mut own = scores.narrow(1, start as i64, b as i64).diagonal(0, 0, 1);
            let _ = own.fill_(f64::NEG_INFINITY);
        }
        let (best, top) = scores.topk(k as i64, 1, true, true);
        let best = match space {
            Space::Cosine => best,
            Space::Euclidean => (q.square().sum_dim_intlist(1, true, Kind::Double) - best).clamp_min(0.0).sqrt(),
        };
        let top: Vec<i64> = Vec::try_from(top.reshape([-1])).expect("topk indices");
        let best: Vec<f64> = Vec::try_from(best.reshape([-1])).expect("topk values");
        for (idx, val) in top.chunks(k).zip(best.chunks(k)) {
            row.clear();
            row.extend(val.iter().zip(idx).map(|(&v, &j)| (v, j as usize)));
            row.sort_by(|a, b| match space {
                Space::Euclidean => a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
                Space::Cosine => b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)),
            });
            index.extend(row.iter().map(|&(_, j)| j));
            value.extend(row.iter().map(|&(v, _)| v));
        }
    }
    Neighbours { k, index, value }
}

/// Mean of each column of row-major `rows`. `[dim]`
fn column_means(rows: &[f32], dim: usize) -> Vec<f64> {
    let mut mean = vec![0.0; dim];
    let n = (rows.len() / dim).max(1) as f64;
    for row in rows.chunks(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    mean
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// `n_per` cells per perturbation around well-separated centres, half in batch 0 (train) and
    /// half in batch 1 (test1). Spread `spread` around each centre.
    fn clusters(n_perts: usize, n_per: usize, spread: f32, seed: u64) -> (PerturbData, Split) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dim = 8;
        let centres: Vec<Vec<f32>> = (0..n_perts).map(|_| (0..dim).map(|_| rng.random_range(-10.0..10.0)).collect()).collect();
        let (mut x, mut pert, mut batch) = (Vec::new(), Vec::new(), Vec::new());
        let mut split = Split::default();
        for (p, centre) in centres.iter().enumerate() {
            for c in 0..n_per {
                let i = pert.len();
                x.extend(centre.iter().map(|&m| m + spread * rng.random_range(-1.0f32..1.0)));
                pert.push(p as u32);
                batch.push((c % 2) as u32);
                if c % 2 == 0 { split.train.push(i) } else { split.test1.push(i) }
            }
        }
        let data = PerturbData {
            n_obs: pert.len(),
            dim,
            x,
            pert,
            pert_names: (0..n_perts).map(|p| format!("p{p}")).collect(),
            batch,
            batch_names: vec!["b0".into(), "b1".into()],
            control: 0,
        };
        (data, split)
    }

    #[test]
    fn default_k_is_the_odd_floor_of_the_square_root() {
        assert_eq!(default_k(100), 11);
        assert_eq!(default_k(99), 9);
        assert_eq!(default_k(81), 9);
        assert_eq!(default_k(1), 1);
        assert_eq!(default_k(63_001), 251);
    }

    #[test]
    fn nearest_is_exact_and_skips_self() {
        // Points on a line at 0, 1, 3, 7: neighbours by hand.
        let x = [0.0f32, 1.0, 3.0, 7.0];
        let nb = nearest(&x, None, 1, 2, Space::Euclidean);
        assert_eq!(nb.index, vec![1, 2, 0, 2, 1, 0, 2, 1]);
        assert_eq!(nb.value, vec![1.0, 3.0, 1.0, 2.0, 2.0, 3.0, 4.0, 6.0]);
        let q = [6.0f32, 6.0];
        let r = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, -1.0];
        let nb = nearest(&r, Some(&q), 2, 4, Space::Cosine);
        assert_eq!(nb.index, vec![2, 0, 1, 3]);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        for (v, e) in nb.value.iter().zip([1.0, h, h, -1.0]) {
            assert!((v - e).abs() < 1e-12, "{:?}", nb.value);
        }
    }

    #[test]
    fn votes_weigh_neighbours_by_temperature_scaled_similarity() {
        // One query at 45° between a class-0 cell at 0° and two class-1 cells at 90° and 180°.
        let data = PerturbData {
            n_obs: 4,
            dim: 2,
            x: vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 1.0, 1.0],
            pert: vec![0, 1, 1, 0],
            pert_names: vec!["a".into(), "b".into()],
            batch: vec![0; 4],
            batch_names: vec!["b".into()],
            control: 0,
        };
        let votes = knn_votes(&data, &[0, 1, 2], &[3], 3, KnnMetric::Cosine { temperature: 0.5 });
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let expected = [(h / 0.5).exp(), (h / 0.5).exp() + (-h / 0.5).exp()];
        assert!((votes[0] - expected[0]).abs() < 1e-12 && (votes[1] - expected[1]).abs() < 1e-12, "{votes:?}");
        let votes = knn_votes(&data, &[0, 1, 2], &[3], 2, KnnMetric::Euclidean { epsilon: 0.0 });
        assert!((votes[0] - 1.0).abs() < 1e-12 && (votes[1] - 1.0).abs() < 1e-12, "{votes:?}");
    }

    #[test]
    fn zero_vote_classes_are_never_predictions() {
        let votes = [3.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(vote_accuracy(&votes, 7, &[0]), TopK { top1: 100.0, top5: 100.0 });
        assert_eq!(vote_accuracy(&votes, 7, &[2]), TopK { top1: 0.0, top5: 100.0 });
        assert_eq!(vote_accuracy(&votes, 7, &[1]), TopK { top1: 0.0, top5: 0.0 });
    }

    #[test]
    fn separable_clusters_are_classified_perfectly() {
        let (data, split) = clusters(6, 40, 0.5, 1);
        assert_eq!(knn(&data, &split, None), TopK { top1: 100.0, top5: 100.0 });
        let euclid = KnnConfig { k: Some(5), metric: KnnMetric::Euclidean { epsilon: 1e-5 } };
        assert_eq!(knn_with(&data, &split, &euclid), TopK { top1: 100.0, top5: 100.0 });
    }

    #[test]
    fn random_labels_score_about_chance() {
        let (mut data, split) = clusters(1, 4000, 1.0, 2);
        let n_perts = 20;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        data.pert = (0..data.n_obs).map(|_| rng.random_range(0..n_perts)).collect();
        data.pert_names = (0..n_perts).map(|p| format!("p{p}")).collect();
        let acc = knn(&data, &split, None);
        assert!((acc.top1 - 5.0).abs() < 2.0, "top-1 {} vs chance 5%", acc.top1);
        assert!((acc.top5 - 25.0).abs() < 4.0, "top-5 {} vs chance 25%", acc.top5);
    }
}
