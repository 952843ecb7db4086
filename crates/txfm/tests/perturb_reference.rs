//! The perturbation benchmark's post-processing, p.cst (Tx-Evaluation variant), bmdb and recall
//! against the reference Python implementation (`efaar_benchmarking` 1.0, and Tx-Evaluation's
//! `center_embeddings` written out in numpy), run on the same small input written from here.
//! Agreement is required to 1e-6 relative.

use std::fmt::Write as _;
use std::path::Path;

use txfm::eval::annotations::PairDatabase;
use txfm::eval::perturb::bmdb::bmdb;
use txfm::eval::perturb::consistency::{TXEVAL_ALPHA, consistency_txeval};
use txfm::eval::perturb::data::PerturbData;
use txfm::eval::perturb::postprocess::{Controls, PostProcess, apply_f64};
use txfm::eval::recall::{recall, sort_null};
use txfm::testing::run_python;

/// A small deterministic generator, so the input is the same on every run.
struct Lcg(u64);
impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

const DIM: usize = 6;
const N_BATCHES: u32 = 3;
/// Gene names of the perturbations; the last three are "unexpressed" (no effect).
const GENES: [&str; 12] = ["A1", "A2", "A3", "B1", "B2", "B3", "C1", "C2", "D1", "U1", "U2", "U3"];

/// Cells: per batch 30 controls and 8 cells of each perturbation; perturbations of the same letter
/// share an effect direction, batches shift and scale features. f32-representable values.
fn screen() -> PerturbData {
    let mut rng = Lcg(42);
    let effects: Vec<Vec<f64>> = (0..4).map(|_| (0..DIM).map(|_| 2.0 * rng.normal()).collect()).collect();
    let batch_shift: Vec<Vec<f64>> = (0..N_BATCHES).map(|_| (0..DIM).map(|_| rng.normal()).collect()).collect();
    let (mut x, mut pert, mut batch) = (Vec::new(), Vec::new(), Vec::new());
    for b in 0..N_BATCHES {
        for p in 0..=GENES.len() {
            let n = if p == 0 { 30 } else { 8 };
            for _ in 0..n {
                for j in 0..DIM {
                    let effect = match p {
                        0 => 0.0,
                        // C1, C2 and D1 are weak, so p.cst is neither 0 nor 100%.
                        p if p <= 9 => {
                            let weak = if p >= 7 { 0.05 } else { 1.0 };
                            weak * effects[(GENES[p - 1].as_bytes()[0] - b'A') as usize][j]
                        }
                        _ => 0.0,
                    };
                    let scale = 1.0 + 0.5 * b as f64 + 0.2 * j as f64;
                    x.push(((effect + rng.normal()) * scale + batch_shift[b as usize][j]) as f32);
                }
                pert.push(p as u32);
                batch.push(b);
            }
        }
    }
    let mut pert_names = vec!["ctrl".to_string()];
    pert_names.extend(GENES.iter().map(|g| g.to_string()));
    PerturbData {
        n_obs: pert.len(),
        dim: DIM,
        x,
        pert,
        pert_names,
        batch,
        batch_names: (0..N_BATCHES).map(|b| format!("batch{b}")).collect(),
        control: 0,
    }
}

fn databases() -> Vec<PairDatabase> {
    vec![
        PairDatabase::from_pairs("DB1", [("A1", "A2"), ("A2", "A3"), ("B1", "B2"), ("C1", "C2"), ("A1", "D1"), ("A3", "A1")]),
        PairDatabase::from_pairs("DB2", [("B3", "B1"), ("C2", "D1"), ("U1", "A1"), ("A1", "NOT_PERTURBED")]),
    ]
}

fn write_inputs(dir: &Path, d: &PerturbData) {
    let mut x = String::new();
    let mut meta = String::from("pert,batch\n");
    for i in 0..d.n_obs {
        let row: Vec<String> = d.row(i).iter().map(|&v| format!("{}", v as f64)).collect();
        let _ = writeln!(x, "{}", row.join(","));
        let _ = writeln!(meta, "{},{}", d.pert_names[d.pert[i] as usize], d.batch_names[d.batch[i] as usize]);
    }
    std::fs::write(dir.join("x.csv"), x).unwrap();
    std::fs::write(dir.join("meta.csv"), meta).unwrap();
    for db in databases() {
        let mut s = String::from("entity1,entity2\n");
        for (a, b) in &db.pairs {
            let _ = writeln!(s, "{a},{b}");
        }
        // The reference must see the pairs in either order and its own filtering.
        let _ = writeln!(s, "{},{}", db.pairs[0].1, db.pairs[0].0);
        std::fs::write(dir.join(format!("{}.txt", db.name)), s).unwrap();
    }
}

const REFERENCE: &str = r#"
import sys, types, json
import numpy as np, pandas as pd
# efaar_benchmarking imports scvi and geomloss at top level; neither is used here.
scvi = types.ModuleType("scvi"); scvi.model = types.ModuleType("scvi.model"); scvi.model.SCVI = None
geomloss = types.ModuleType("geomloss"); geomloss.SamplesLoss = None
sys.modules.update({"scvi": scvi, "scvi.model": scvi.model, "geomloss": geomloss})
from efaar_benchmarking import efaar, benchmarking

d = sys.argv[1]
X = np.loadtxt(d + "/x.csv", delimiter=",")
meta = pd.read_csv(d + "/meta.csv", dtype=str)
out = {}
# Tx-Evaluation's center_embeddings (post_process.py), per batch on its controls.
c = X.copy()
for b in meta.batch.unique():
    bi = (meta.batch == b).values
    c[bi] -= X[bi & (meta.pert == "ctrl").values].mean(axis=0)
out["center"] = c.ravel().tolist()
out["scale"] = efaar.centerscale_on_controls(X, meta, "pert", "ctrl", "batch").ravel().tolist()
out["tvn"] = efaar.tvn_on_controls(X, meta, "pert", "ctrl", "batch").ravel().tolist()

unexpr = ["U1", "U2", "U3"]
cons = benchmarking.pert_signal_consistency_benchmark(X, meta, "pert", unexpr, keys_to_drop=["ctrl"], n_jobs=1)
out["pcst"] = float(sum(cons.pval <= 0.05) / sum(~pd.isna(cons.pval)) * 100)
out["pcst_tested"] = int(sum(~pd.isna(cons.pval)))

keep = (meta.pert != "ctrl").values
m = efaar.aggregate(X[keep], meta[keep], "pert")
res = benchmarking.known_relationship_benchmark(m, "pert", benchmark_sources=["DB1", "DB2"],
    recall_thr_pairs=[(0.05, 0.95)], benchmark_data_dir=d)
out["bmdb"] = {r.source: [float(r["recall_0.05_0.95"]), int(r.query_distribution_size)] for _, r in res.iterrows()}

rng = np.random.default_rng(0)
null = np.round(rng.normal(size=500), 2)
query = np.concatenate([np.round(rng.normal(size=200) * 1.5, 2), null[:20]])
np.savetxt(d + "/null.csv", null); np.savetxt(d + "/query.csv", query)
out["recall"] = {f"{lo}_{hi}": benchmarking.compute_recall(null, query, [(lo, hi)])[f"recall_{lo}_{hi}"]
                 for lo, hi in [(0.05, 0.95), (0.1, 0.9), (0.0, 1.0)]}
print(json.dumps(out))
"#;

fn assert_close(what: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths differ");
    let scale = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs() / scale).fold(0.0, f64::max);
    eprintln!("{what}: max |ours - reference| / max|reference| = {worst:.2e}");
    assert!(worst <= 1e-6, "{what}: relative difference {worst:e}");
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn matches_efaar_benchmarking() {
    let dir = tempfile::tempdir().unwrap();
    let d = screen();
    write_inputs(dir.path(), &d);
    let out = run_python(REFERENCE, &[dir.path().to_str().unwrap()]);
    let r: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();

    // Post-processing, in f64 on the same values.
    let x: Vec<f64> = d.x.iter().map(|&v| v as f64).collect();
    let is_control: Vec<bool> = (0..d.n_obs).map(|i| d.is_control(i)).collect();
    let ctl = Controls { batch: &d.batch, n_batches: d.n_batches(), is_control: &is_control };
    for pp in [PostProcess::Center, PostProcess::Scale, PostProcess::Tvn] {
        let (dim, y) = apply_f64(&x, DIM, &ctl, pp).unwrap();
        assert_eq!(dim, DIM);
        assert_close(pp.name(), &y, &numbers(&r[pp.name()]));
    }

    // p.cst, Tx-Evaluation variant: U1–U3 are the unexpressed targets.
    let unexpressed: Vec<bool> = d.pert_names.iter().map(|n| n.starts_with('U')).collect();
    let c = consistency_txeval(&d, &unexpressed, TXEVAL_ALPHA);
    eprintln!("p.cst: ours {} ({} tested), reference {}", c.score, c.n_tested, r["pcst"]);
    assert_eq!(c.n_tested as u64, r["pcst_tested"].as_u64().unwrap());
    assert_close("p.cst", &[c.score], &[r["pcst"].as_f64().unwrap()]);

    // bmdb per database.
    let b = bmdb(&d, &databases(), (0.05, 0.95));
    for db in &b.databases {
        let theirs = &r["bmdb"][&db.database];
        eprintln!("bmdb {}: ours {} on {} pairs, reference {theirs}", db.database, db.recall, db.n_pairs);
        assert_eq!(db.n_pairs as u64, theirs[1].as_u64().unwrap());
        assert_close(&format!("bmdb {}", db.database), &[db.recall], &[theirs[0].as_f64().unwrap()]);
    }

    // Recall on a null and queries with many ties (values rounded to 0.01).
    let read = |name: &str| -> Vec<f64> {
        std::fs::read_to_string(dir.path().join(name)).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect()
    };
    let null = sort_null(read("null.csv"));
    let query = read("query.csv");
    for (lo, hi) in [(0.05, 0.95), (0.1, 0.9), (0.0, 1.0)] {
        let ours = recall(&null, &query, lo, hi);
        let theirs = r["recall"][format!("{lo:?}_{hi:?}")].as_f64().unwrap();
        eprintln!("recall ({lo}, {hi}): ours {ours}, reference {theirs}");
        assert_eq!(ours, theirs);
    }
}
