//! The perturbation benchmark's deterministic metrics checked against independent Python on the
//! same small inputs: LISI per cell (scikit-learn's neighbours, the Harmony paper's kernel search
//! written in numpy), the weighted kNN vote (scikit-learn's brute-force neighbours), Spearman
//! (`scipy.stats.spearmanr`) and Structural Integrity (its definition in numpy).

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use txfm::eval::perturb::data::{PerturbData, Split};
use txfm::eval::perturb::ilisi::{LisiConfig, ilisi, lisi};
use txfm::eval::perturb::knn::{KnnConfig, KnnMetric, default_k, knn_votes, knn_with};
use txfm::eval::perturb::reconstruct::{mean_spearman, structural_integrity};
use txfm::testing::run_python;

const REL_TOL: f64 = 1e-6;

fn python_json(code: &str, args: &[&str]) -> Value {
    let out = run_python(code, args);
    serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("a JSON array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= REL_TOL * e.abs().max(1e-12), "{what}[{i}]: {a} vs Python {e}");
    }
}

/// Writes `values` one row of `width` a line, shortest round-trip text (read back as float32).
fn write_matrix(path: &Path, values: &[f32], width: usize) {
    let text: String = values
        .chunks(width)
        .map(|row| row.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

fn write_ints(path: &Path, values: impl IntoIterator<Item = usize>) {
    let text: String = values.into_iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// `n` cells in `dim` dimensions: `n_perts` perturbations around random centres (coordinates up
/// to `spread`) and `n_batches` batches shifted by up to `batch_shift` a coordinate, noise of
/// scale 1.
fn screen(n: usize, dim: usize, n_perts: usize, spread: f32, n_batches: usize, batch_shift: f32, seed: u64) -> PerturbData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |m: usize, scale: f32| -> Vec<f32> { (0..m).map(|_| scale * rng.random_range(-1.0f32..1.0)).collect() };
    let centres = draw(n_perts * dim, spread);
    let shifts = draw(n_batches * dim, batch_shift);
    let noise = draw(n * dim, 1.0);
    let pert: Vec<u32> = (0..n).map(|i| ((i * 7 + i / 3) % n_perts) as u32).collect();
    let batch: Vec<u32> = (0..n).map(|i| (i % n_batches) as u32).collect();
    let x = (0..n * dim)
        .map(|e| {
            let (i, a) = (e / dim, e % dim);
            centres[pert[i] as usize * dim + a] + shifts[batch[i] as usize * dim + a] + noise[e]
        })
        .collect();
    PerturbData {
        n_obs: n,
        dim,
        x,
        pert,
        pert_names: (0..n_perts).map(|p| format!("p{p}")).collect(),
        batch,
        batch_names: (0..n_batches).map(|b| format!("b{b}")).collect(),
        control: 0,
    }
}

#[test]
fn lisi_per_cell_matches_an_independent_numpy_implementation() {
    let data = screen(400, 5, 6, 3.0, 3, 0.7, 1);
    let cfg = LisiConfig { perplexity: 10 };
    let dir = tempfile::tempdir().unwrap();
    write_matrix(&dir.path().join("x.txt"), &data.x, data.dim);
    write_ints(&dir.path().join("batch.txt"), data.batch.iter().map(|&b| b as usize));
    let code = r#"
import json, sys
import numpy as np
from sklearn.neighbors import NearestNeighbors
d, perplexity = sys.argv[1], int(sys.argv[2])
X = np.loadtxt(d + "/x.txt", dtype=np.float32, ndmin=2).astype(np.float64)
batch = np.loadtxt(d + "/batch.txt", dtype=np.int64)
_, idx = NearestNeighbors(n_neighbors=3 * perplexity, algorithm="brute").fit(X).kneighbors(X)
assert (idx[:, 0] == np.arange(len(X))).all()
idx = idx[:, 1:]
dist = np.sqrt(((X[idx] - X[:, None, :]) ** 2).sum(-1))
target = np.log(perplexity)
out = []
for D, I in zip(dist, idx):
    def kernel(beta):
        P = np.exp(-D * beta)
        s = P.sum()
        return np.log(s) + beta * (D * P).sum() / s, P / s
    beta, lo, hi = 1.0, -np.inf, np.inf
    H, P = kernel(beta)
    for _ in range(50):
        if abs(H - target) < 1e-5:
            break
        if H > target:
            lo = beta
            beta = beta * 2 if hi == np.inf else (beta + hi) / 2
        else:
            hi = beta
            beta = beta / 2 if lo == -np.inf else (beta + lo) / 2
        H, P = kernel(beta)
    share = np.bincount(batch[I], weights=P, minlength=batch.max() + 1)
    out.append(1.0 / (share ** 2).sum())
print(json.dumps(out))
"#;
    let expected = floats(&python_json(code, &[dir.path().to_str().unwrap(), &cfg.perplexity.to_string()]));
    let actual = lisi(&data, &cfg);
    assert_close(&actual, &expected, "LISI");
    let mean = expected.iter().sum::<f64>() / expected.len() as f64;
    let score = ilisi(&data, &cfg);
    assert!((score - (mean - 1.0) / 2.0).abs() < 1e-9, "ilisi {score}");
    assert!(score > 0.05 && score < 0.95, "partly mixed batches: {score}");
}

#[test]
fn knn_votes_match_scikit_learn_neighbours() {
    let data = screen(600, 8, 12, 1.0, 2, 0.5, 2);
    let split = Split { train: (0..400).collect(), test1: (400..600).collect(), test2: Vec::new() };
    let k = default_k(split.train.len());
    assert_eq!(k, 21);
    let dir = tempfile::tempdir().unwrap();
    write_matrix(&dir.path().join("x.txt"), &data.x, data.dim);
    write_ints(&dir.path().join("pert.txt"), data.pert.iter().map(|&p| p as usize));
    let code = r#"
import json, sys
import numpy as np
from sklearn.neighbors import NearestNeighbors
d, k, n_train, n_classes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
X = np.loadtxt(d + "/x.txt", dtype=np.float32, ndmin=2).astype(np.float64)
pert = np.loadtxt(d + "/pert.txt", dtype=np.int64)
R, Q, labels = X[:n_train], X[n_train:], pert[:n_train]
out = {}
for metric in ["cosine", "euclidean"]:
    _, idx = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(R).kneighbors(Q)
    if metric == "cosine":
        unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)
        w = np.exp((unit(Q)[:, None, :] * unit(R)[idx]).sum(-1) / 0.07)
    else:
        w = 1.0 / (np.sqrt(((R[idx] - Q[:, None, :]) ** 2).sum(-1)) + 1e-5)
    votes = np.zeros((len(Q), n_classes))
    for q in range(len(Q)):
        np.add.at(votes[q], labels[idx[q]], w[q])
    truth = pert[n_train:]
    ranked = np.argsort(-votes, axis=1, kind="stable")
    hit = ranked == truth[:, None]
    voted = np.take_along_axis(votes, ranked, 1) > 0
    out[metric] = {
        "votes": votes.ravel().tolist(),
        "top1": 100.0 * (hit[:, 0] & voted[:, 0]).mean(),
        "top5": 100.0 * (hit[:, :5] & voted[:, :5]).any(1).mean(),
    }
print(json.dumps(out))
"#;
    let expected = python_json(code, &[dir.path().to_str().unwrap(), &k.to_string(), "400", &data.n_perts().to_string()]);
    for (name, metric) in [
        ("cosine", KnnMetric::Cosine { temperature: 0.07 }),
        ("euclidean", KnnMetric::Euclidean { epsilon: 1e-5 }),
    ] {
        let votes = knn_votes(&data, &split.train, &split.test1, k, metric);
        assert_close(&votes, &floats(&expected[name]["votes"]), &format!("{name} votes"));
        let acc = knn_with(&data, &split, &KnnConfig { k: None, metric });
        assert_close(&[acc.top1, acc.top5], &[expected[name]["top1"].as_f64().unwrap(), expected[name]["top5"].as_f64().unwrap()], name);
        assert!(acc.top1 > 20.0 && acc.top1 < 100.0, "{name}: overlapping clusters, {acc:?}");
    }
}

#[test]
fn spearman_and_structural_integrity_match_scipy_and_numpy() {
    let (n, n_vars) = (300, 40);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Truth like log1p-normalised counts: many exact zeros (ties), the prediction a noisy copy.
    let target: Vec<f32> = (0..n * n_vars)
        .map(|_| if rng.random_bool(0.4) { 0.0 } else { (1.0 + rng.random_range(0.0f32..20.0)).ln() })
        .collect();
    let pred: Vec<f32> = target.iter().map(|&t| 0.8 * t + rng.random_range(-0.7f32..0.7)).collect();
    let batch: Vec<u32> = (0..n).map(|i| (i % 4) as u32).collect();
    // Batch 3 has no controls: left uncentred.
    let control: Vec<bool> = (0..n).map(|i| i % 4 != 3 && i % 10 < 3).collect();

    let dir = tempfile::tempdir().unwrap();
    write_matrix(&dir.path().join("pred.txt"), &pred, n_vars);
    write_matrix(&dir.path().join("target.txt"), &target, n_vars);
    write_ints(&dir.path().join("batch.txt"), batch.iter().map(|&b| b as usize));
    write_ints(&dir.path().join("control.txt"), control.iter().map(|&c| usize::from(c)));
    let code = r#"
import json, sys
import numpy as np
from scipy.stats import spearmanr
d = sys.argv[1]
load = lambda name: np.loadtxt(d + "/" + name, dtype=np.float32, ndmin=2).astype(np.float64)
P, T = load("pred.txt"), load("target.txt")
batch = np.loadtxt(d + "/batch.txt", dtype=np.int64)
control = np.loadtxt(d + "/control.txt", dtype=np.int64) == 1
rho = np.mean([spearmanr(P[:, g], T[:, g]).statistic for g in range(P.shape[1])])
dist, top = [], []
for b in np.unique(batch):
    rows = batch == b
    ctrl = rows & control
    shift_p = P[ctrl].mean(0) if ctrl.any() else 0.0
    shift_t = T[ctrl].mean(0) if ctrl.any() else 0.0
    Pb, Tb = P[rows] - shift_p, T[rows] - shift_t
    dist.append(np.linalg.norm(Pb - Tb) / rows.sum())
    top.append(np.linalg.norm(Tb) / rows.sum())
print(json.dumps({"spearman": rho, "integrity": 1 - np.mean(dist) / (2 * np.mean(top))}))
"#;
    let expected = python_json(code, &[dir.path().to_str().unwrap()]);
    let rho = mean_spearman(&pred, &target, n, n_vars);
    assert_close(&[rho], &[expected["spearman"].as_f64().unwrap()], "mean Spearman");
    assert!(rho > 0.5 && rho < 0.99, "{rho}");
    let si = structural_integrity(&pred, &target, n_vars, &batch, &control);
    assert_close(&[si], &[expected["integrity"].as_f64().unwrap()], "structural integrity");
}
