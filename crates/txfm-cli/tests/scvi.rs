//! `txfm baseline scvi` end to end on a simulated screen: obsm['X_scvi'] that anndata reads, a
//! held-out ELBO that improves with training, the same embedding for the same seed, a model folder
//! that `bench genes --scvi` and `bench perturb --baseline scvi` use, and clear errors (nothing
//! written) for a batch key the file lacks and for values that are not counts.

mod common;

use std::path::Path;

use txfm::simulate::SimConfig;
use txfm::testing::{run_python, sim_corpus, write_dense_h5ad};
use common::{text, txfm};

fn scvi(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["baseline", "scvi"];
    all.extend_from_slice(args);
    let o = txfm(&all, dir);
    assert!(o.status.success(), "txfm {}: {}", all.join(" "), text(&o));
    text(&o)
}

fn history(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("history.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn scvi_embeds_learns_reloads_and_feeds_the_benchmarks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sim_corpus(d, "sim", "corpus", &SimConfig { n_cells: 600, n_genes: 300, ..SimConfig::tiny() }, 3);
    let log = scvi(d, &["sim.h5ad", "--out", "a.h5ad", "--batch-key", "batch", "--max-epochs", "12"]);
    assert!(log.contains("obsm['X_scvi'] of 600 cells × 10 latent dims") && log.contains("2 batch(es)") && log.contains("60 held-out cells"), "{log}");
    // The same seed again: the same embedding, bit for bit.
    scvi(d, &["sim.h5ad", "--out", "b.h5ad", "--batch-key", "batch", "--max-epochs", "12", "--embedding-only"]);
    let out = run_python(
        r#"
import os, sys, anndata as ad, numpy as np
os.chdir(sys.argv[1])
a, b, sim = ad.read_h5ad("a.h5ad"), ad.read_h5ad("b.h5ad"), ad.read_h5ad("sim.h5ad")
za, zb = a.obsm["X_scvi"], b.obsm["X_scvi"]
assert za.shape == (600, 10) and za.dtype == np.float32 and np.isfinite(za).all(), za.shape
assert np.array_equal(za, zb), "same seed, same embedding"
assert (a.obs_names == sim.obs_names).all() and (a.X != sim.X).nnz == 0, "a copy of the input plus X_scvi"
assert b.X is None and b.n_vars == 300
# The latent carries the simulated cell states: a cell's nearest neighbour shares its state far
# above chance.
from sklearn.neighbors import NearestNeighbors
s = sim.obs["cell_state"].astype(str).values
nn = NearestNeighbors(n_neighbors=2).fit(za).kneighbors(za, return_distance=False)[:, 1]
acc = (s[nn] == s).mean()
chance = max((s == v).mean() for v in set(s))
print(f"ok {acc:.3f} {chance:.3f}")
"#,
        &[d.to_str().unwrap()],
    );
    let v: Vec<f64> = out.trim().strip_prefix("ok ").unwrap_or_else(|| panic!("{out}")).split(' ').map(|x| x.parse().unwrap()).collect();
    assert!(v[0] > v[1] + 0.2, "kNN accuracy of the cell states {} vs chance {}", v[0], v[1]);

    // The held-out ELBO improves as it trains (epoch 0 vs the last), and the KL warms up.
    let h = history(&d.join("a.scvi"));
    assert_eq!(h.len(), 12);
    let (first, last) = (&h[0], &h[11]);
    assert!(last["elbo_validation"].as_f64().unwrap() < first["elbo_validation"].as_f64().unwrap() - 1.0, "{first} → {last}");
    assert_eq!(first["kl_weight"].as_f64(), Some(0.0));
    assert!((last["kl_weight"].as_f64().unwrap() - 11.0 / 400.0).abs() < 1e-12);

    // A whole corpus, streamed, as the input (obs, var and the embedding only).
    let corpus = scvi(d, &["corpus", "--out", "c.h5ad", "--max-epochs", "2"]);
    assert!(corpus.contains("obsm['X_scvi'] of 600 cells"), "{corpus}");

    // Its gene vectors, read as the paper reads scVI's.
    let genes = txfm(&["bench", "genes", "--scvi", "a.scvi", "--annotations", "sim.pairs.csv", "--out", "genes"], d);
    assert!(genes.status.success(), "{}", text(&genes));
    assert!(text(&genes).contains("scvi_encoder") && text(&genes).contains("scvi_decoder"), "{}", text(&genes));

    // The benchmark fits it on the screen itself.
    let bench = txfm(
        &["bench", "perturb", "--input", "sim.h5ad", "--baseline", "scvi", "--scvi-max-epochs", "3", "--annotations", "sim.pairs.csv", "--quick", "--no-inv", "--out", "bench"],
        d,
    );
    assert!(bench.status.success(), "{}", text(&bench));
    let report = std::fs::read_to_string(d.join("bench/report.json")).unwrap();
    assert!(report.contains("\"X_scvi\""), "{report}");
    assert!(d.join("bench/cells.scvi/weights.safetensors").is_file());
}

#[test]
fn scvi_refuses_a_missing_batch_key_and_non_counts_writing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sim_corpus(d, "sim", "corpus", &SimConfig { n_cells: 200, n_genes: 100, ..SimConfig::tiny() }, 3);
    let o = txfm(&["baseline", "scvi", "sim.h5ad", "--out", "x.h5ad", "--batch-key", "donor", "--max-epochs", "1"], d);
    assert!(!o.status.success());
    assert!(text(&o).contains("sim.h5ad") && text(&o).contains("no column `donor`"), "{}", text(&o));
    assert!(!d.join("x.h5ad").exists() && !d.join("x.scvi").exists());

    let genes: Vec<String> = (0..20).map(|j| format!("g{j}")).collect();
    write_dense_h5ad(&d.join("norm.h5ad"), &genes, 30, |i| (0..20).map(|j| ((i + j) % 7) as f32 * 0.37).collect());
    let o = txfm(&["baseline", "scvi", "norm.h5ad", "--out", "y.h5ad", "--max-epochs", "1"], d);
    assert!(!o.status.success());
    assert!(text(&o).contains("norm.h5ad") && text(&o).contains("raw counts"), "{}", text(&o));
    assert!(!d.join("y.h5ad").exists() && !d.join("y.scvi").exists());
}
