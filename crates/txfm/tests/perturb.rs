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
use txfm::eval::perturb::prepare::Baseline;
use txfm::eval::perturb::run::{PerturbConfig, run};
use txfm::eval::perturb::workflow::{bench_file, Additions, BenchSettings};
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

/// Writes `dir/guides.h5ad`: the Jurkat screen with its `target_gene` labels recast as a
/// cells × guides count matrix (`obsm['guide_counts']`, CSR; names in `uns['guide_names']`; two
/// guides per target `GENE_1`/`GENE_2`, controls `non-targeting_N`) and as an obsm dataframe
/// (`obsm['guide_frame']`), where every 10th cell has no guide and every 13th (of the others) a
/// second one; and `dir/kept.h5ad`: the cells with exactly one guide, labelled in `obs` as before.
/// Both carry the same `obsm['X_noise']` rows.
const GUIDE_FIXTURE: &str = r#"
import sys, anndata, numpy as np, pandas as pd, scipy.sparse as sp
a = anndata.read_h5ad(sys.argv[1]); out = sys.argv[2]
labels = a.obs["target_gene"].astype(str).to_numpy()
targets = sorted(set(labels) - {"control"})
names = [f"{t}_{k}" for t in targets for k in (1, 2)] + [f"non-targeting_{k}" for k in (1, 2, 3)]
col = {n: j for j, n in enumerate(names)}
rows, cols, vals, keep = [], [], [], []
for i, l in enumerate(labels):
    if i % 10 == 0:
        continue
    g = f"non-targeting_{1 + i % 3}" if l == "control" else f"{l}_{1 + i % 2}"
    rows.append(i); cols.append(col[g]); vals.append(3)
    if i % 13 == 0:
        rows.append(i); cols.append((col[g] + 2) % len(names)); vals.append(1)
    else:
        keep.append(i)
m = sp.csr_matrix((np.array(vals, np.int32), (rows, cols)), shape=(a.n_obs, len(names)))
a.obsm["guide_counts"] = m
a.obsm["guide_frame"] = pd.DataFrame(m.toarray(), index=a.obs_names, columns=names)
a.uns["guide_names"] = np.array(names, dtype=object)
a.obsm["X_noise"] = np.random.default_rng(0).standard_normal((a.n_obs, 16)).astype(np.float32)
a.write_h5ad(f"{out}/guides.h5ad")
b = a[keep].copy()
del b.obsm["guide_counts"], b.obsm["guide_frame"]
b.write_h5ad(f"{out}/kept.h5ad")
print(len(keep))
"#;

/// Labels from a guide-count matrix (issue 12): the cells with exactly one guide get its target,
/// and the benchmark of those cells equals the benchmark of the same cells labelled in `obs`;
/// a dataframe in obsm names its own guides; a plain matrix without names is refused.
#[test]
fn guide_count_matrix_gives_the_labels_of_obs() {
    use txfm::eval::perturb::guides::GuideConfig;
    let src = shared_data("perturbation/datlinger2017_cropseq_scperturb_testsubset.h5ad");
    let dbs = load_default(&shared_data("annotations/efaar")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kept: usize = txfm::testing::run_python(GUIDE_FIXTURE, &[src.to_str().unwrap(), dir.path().to_str().unwrap()]).trim().parse().unwrap();
    let base = InputConfig {
        obsm_keys: vec!["X_noise".into()],
        pert_key: "target_gene".into(),
        batch_key: "perturbation_2".into(),
        control: "control".into(),
        max_expression_genes: 100,
        ..InputConfig::default()
    };
    let guides = |key: &str, names: Option<&str>| InputConfig {
        guides: Some(GuideConfig { obsm_key: key.into(), names: names.map(String::from), min_count: 1.0, file: None }),
        ..base.clone()
    };
    let from_guides = load(&dir.path().join("guides.h5ad"), &guides("guide_counts", Some("uns/guide_names"))).unwrap();
    let from_obs = load(&dir.path().join("kept.h5ad"), &base).unwrap();
    let g = from_guides.guides.unwrap();
    assert_eq!((g.n_obs_input, g.kept, g.no_guide), (7_500, kept, 750));
    assert_eq!(g.kept + g.no_guide + g.several_guides, 7_500);
    assert_eq!(from_guides.labels().pert_names, from_obs.labels().pert_names);
    assert_eq!(from_guides.labels().pert, from_obs.labels().pert);
    assert_eq!(from_guides.labels().batch, from_obs.labels().batch);
    assert_eq!(from_guides.unexpressed, from_obs.unexpressed);

    let cfg = PerturbConfig { postprocess: vec![PostProcess::None], ..PerturbConfig::quick() };
    let a = run(&from_guides, &dbs, &cfg, &ProgressBar::hidden()).unwrap();
    let b = run(&from_obs, &dbs, &cfg, &ProgressBar::hidden()).unwrap();
    assert_eq!(serde_json::to_value(&a.rows).unwrap(), serde_json::to_value(&b.rows).unwrap());
    assert!(a.to_markdown().contains(&format!("kept {kept} of 7500 cells")), "{}", a.to_markdown());

    // With a baseline to add, the benchmark assigns the input's cells before it writes the copy
    // it benchmarks, and reuses that assignment on the copy (the matrix is read once): the
    // embedding already there scores as when loaded directly, and the report counts the same cells.
    let settings = BenchSettings { quick: true, seeds: 1, postprocess: vec![PostProcess::None], inv: false, device: "cpu".into(), ..BenchSettings::default() };
    let add = Additions { baselines: vec![Baseline::Libnorm], ..Additions::default() };
    let out = dir.path().join("bench");
    let with_libnorm = bench_file(
        &dir.path().join("guides.h5ad"),
        &guides("guide_counts", Some("uns/guide_names")),
        &add,
        &settings,
        &[shared_data("annotations/efaar")],
        &out,
        &mut |_| {},
        &ProgressBar::hidden(),
    )
    .unwrap();
    let report = with_libnorm.report;
    assert_eq!(report.guides.as_ref().map(|g| (g.kept, g.no_guide)), Some((kept, 750)));
    assert!(report.rows.iter().any(|r| r.embedding == "X_libnorm"));
    let direct = run(&from_guides, &dbs, &settings.config().unwrap(), &ProgressBar::hidden()).unwrap();
    let noise_row = |rows: &[txfm::eval::perturb::report::PerturbRow]| {
        let r = rows.iter().find(|r| r.embedding == "X_noise").unwrap();
        serde_json::to_value((&r.summary, &r.seeds, &r.bmdb)).unwrap()
    };
    assert_eq!(noise_row(&report.rows), noise_row(&direct.rows));

    let frame = load(&dir.path().join("guides.h5ad"), &guides("guide_frame", None)).unwrap();
    assert_eq!(frame.labels().pert, from_obs.labels().pert);
    let err = load(&dir.path().join("guides.h5ad"), &guides("guide_counts", None)).unwrap_err().to_string();
    assert!(err.contains("guides.h5ad") && err.contains("without column names") && err.contains("--guide-names"), "{err}");
    let err = load(&dir.path().join("guides.h5ad"), &guides("no_such", None)).unwrap_err().to_string();
    assert!(err.contains("no obsm['no_such']") && err.contains("guide_counts"), "{err}");
}
