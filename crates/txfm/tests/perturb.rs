//! End-to-end perturbation benchmark: on a simulated screen, an embedding with signal recovers the
//! simulator's true module pairs far above chance and pure noise does not; the whole run (all
//! metrics, four post-processings) goes through on the simulated file and on the Jurkat CROP-seq
//! subset.

use std::path::Path;

use indicatif::ProgressBar;
use txfm::data::h5ad::obsm::write_h5ad_with_obsm;
use txfm::eval::annotations::{load_default, load_pairs};
use txfm::eval::perturb::bmdb::bmdb;
use txfm::eval::perturb::input::{InputConfig, PerturbInput, load, load_expression};
use txfm::eval::perturb::postprocess::{PostProcess, apply};
use txfm::eval::perturb::run::{PerturbConfig, run};
use txfm::simulate::{SimConfig, pairs_path, simulate_to_h5ad};
use txfm::testing::shared_data;

/// Gaussian noise, `[n, dim]`, from a fixed LCG.
fn noise(n: usize, dim: usize) -> Vec<f32> {
    let mut s = 7u64;
    (0..n * dim)
        .map(|_| {
            let mut u = [0.0f64; 2];
            for v in &mut u {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *v = ((s >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
            }
            ((-2.0 * u[0].ln()).sqrt() * (std::f64::consts::TAU * u[1]).cos()) as f32
        })
        .collect()
}

/// A copy of `src` with `obsm['X_lognorm']` (the log-normalised expression, the "(Lib+Log)Norm"
/// baseline) and `obsm['X_noise']`, loaded back for the benchmark.
fn with_embeddings(src: &Path, out: &Path, cfg: &InputConfig) -> PerturbInput {
    let expr = load_expression(src, cfg).unwrap();
    let noise = noise(expr.n_obs, 16);
    write_h5ad_with_obsm(src, out, &[("X_lognorm", expr.n_vars, &expr.values), ("X_noise", 16, &noise)]).unwrap();
    load(out, &InputConfig { obsm_keys: vec!["X_lognorm".into(), "X_noise".into()], ..cfg.clone() }).unwrap()
}

#[test]
fn simulated_screen_recovers_true_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.h5ad");
    let cfg = SimConfig { n_cells: 3_000, ..SimConfig::tiny() };
    simulate_to_h5ad(&cfg, &sim, &ProgressBar::hidden()).unwrap();
    let truth = load_pairs(&pairs_path(&sim)).unwrap();
    let input_cfg = InputConfig {
        pert_key: "perturbation".into(),
        batch_key: "batch".into(),
        control: "control".into(),
        // The 100 genes of highest variance: a small embedding and inv target keep the test fast.
        max_expression_genes: 100,
        ..InputConfig::default()
    };
    let input = with_embeddings(&sim, &dir.path().join("sim_emb.h5ad"), &input_cfg);

    // bmdb with the truth as the database: chance is 10% (two 5% tails).
    let score = |key: usize| {
        let d = apply(&input.embeddings[key].1, PostProcess::Center).unwrap();
        bmdb(&d, std::slice::from_ref(&truth), (0.05, 0.95))
    };
    let (signal, noise) = (score(0), score(1));
    eprintln!("true-pair recall: lognorm {:.1}%, noise {:.1}% ({} pairs)", signal.score, noise.score, signal.databases[0].n_pairs);
    assert!(signal.databases[0].n_pairs >= 30);
    assert!(signal.score > 50.0, "signal embedding recalls only {:.1}% of true pairs", signal.score);
    assert!(noise.score < 25.0, "noise recalls {:.1}% of true pairs", noise.score);

    // The whole run: 2 embeddings × 4 post-processings, every metric defined.
    let report = run(&input, &[truth], &PerturbConfig::quick(), &ProgressBar::hidden()).unwrap();
    eprintln!("{}", report.to_markdown());
    assert_eq!(report.rows.len(), 8);
    assert_eq!(report.best_rows().len(), 2);
    for r in &report.rows {
        assert!(r.missing.iter().all(|m| m == "ilisi" || m == "inv"), "{}/{}: missing {:?}", r.embedding, r.postprocess, r.missing);
        assert!(r.summary.average.mean.is_some());
    }
    let best = |k: &str| report.best_rows().into_iter().find(|r| r.embedding == k).unwrap().summary.average.mean.unwrap();
    assert!(best("X_lognorm") > best("X_noise") + 5.0);
    let json = dir.path().join("report.json");
    report.write_json(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 8);
}

#[test]
fn jurkat_cropseq_runs() {
    let src = shared_data("perturbation/datlinger2017_cropseq_scperturb_testsubset.h5ad");
    let dbs = load_default(&shared_data("annotations/efaar")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Batch: the stimulation condition (perturbation_2). The 367 wells in `sample` hold ~20 cells
    // each and only 48 of them any control, too few to post-process on.
    let input_cfg = InputConfig {
        pert_key: "target_gene".into(),
        batch_key: "perturbation_2".into(),
        control: "control".into(),
        max_expression_genes: 100,
        ..InputConfig::default()
    };
    let input = with_embeddings(&src, &dir.path().join("jurkat.h5ad"), &input_cfg);
    assert_eq!(input.labels().n_obs, 7_500);
    assert_eq!(input.labels().n_perts(), 21);
    let cfg = PerturbConfig { postprocess: vec![PostProcess::None, PostProcess::Tvn], inv: false, ..PerturbConfig::quick() };
    let report = run(&input, &dbs, &cfg, &ProgressBar::hidden()).unwrap();
    eprintln!("{}", report.to_markdown());
    assert_eq!(report.rows.len(), 4);
    let r = &report.rows[0];
    assert!(r.bmdb.databases.iter().any(|d| d.n_pairs > 0));
    assert!(r.summary.lin.mean.is_some() && r.summary.knn.mean.is_some() && r.summary.pcst.mean.is_some());
}
