//! `txfm bench perturb` end to end: raw counts in, baselines computed on the fly, table, JSON and
//! plots out; bad requests fail naming what is wrong.

mod common;


use txfm::eval::perturb::report::PerturbReport;
use common::{text, txfm};

#[test]
fn baselines_on_the_fly_give_the_full_table_and_recover_the_true_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["simulate", "--preset", "tiny", "--cells", "1200", "--out", "s.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = txfm(
        &[
            "bench", "perturb", "--input", "s.h5ad", "--baseline", "pca", "--baseline", "libnorm", "--annotations",
            "s.pairs.csv", "--seeds", "2", "--quick", "--postprocess", "none,center", "--out", "b",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = dir.path().join("b");
    let report = PerturbReport::read_json(&out.join("report.json")).unwrap();
    assert_eq!(report.rows.len(), 4, "2 embeddings × 2 post-processings");
    assert_eq!(report.config.seeds, [0, 1]);
    for row in &report.rows {
        assert_eq!(row.seeds.len(), 2);
        let s = &row.summary;
        // Every metric is defined on this input except Tx-Evaluation's p.cst (no unexpressed targets).
        for m in [s.ilisi, s.lin, s.knn, s.pcst, s.bmdb, s.inv, s.average] {
            assert!(m.mean.is_some_and(f64::is_finite), "{row:?}");
        }
        let mean = |f: fn(&txfm::eval::perturb::report::SeedScores) -> f64| row.seeds.iter().map(f).sum::<f64>() / 2.0;
        let avg = (100.0 * mean(|x| x.ilisi) + mean(|x| x.lin) + mean(|x| x.knn) + mean(|x| x.pcst) + mean(|x| x.bmdb) + mean(|x| x.inv)) / 6.0;
        assert!((s.average.mean.unwrap() - avg).abs() < 1e-9, "the average is (100·ilisi + five metrics) / 6");
        // lin and knn are the means of their top-1 and top-5 accuracies, both in the JSON.
        for x in &row.seeds {
            let (l, k) = (x.lin_topk.unwrap(), x.knn_topk.unwrap());
            assert!(l.top1 <= l.top5 && k.top1 <= k.top5, "{x:?}");
            assert!((x.lin - (l.top1 + l.top5) / 2.0).abs() < 1e-12 && (x.knn - (k.top1 + k.top5) / 2.0).abs() < 1e-12, "{x:?}");
        }
    }
    // The simulated knockdowns shift whole modules: PCA puts the true pairs in the similarity
    // tails far above the 10% of chance.
    let pca = report.best_rows().into_iter().find(|r| r.embedding == "X_pca").unwrap();
    assert!(pca.summary.bmdb.mean.unwrap() > 30.0, "{:?}", pca.summary.bmdb);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| X_libnorm |") && md.contains("| X_pca |"), "{md}");
    for png in ["metrics.png", "bmdb_recall.png", "postprocess.png"] {
        assert_eq!(&std::fs::read(out.join(png)).unwrap()[..4], b"\x89PNG", "{png}");
    }
    // The prepared copy keeps the screen and both embeddings, for the next run to reuse.
    let py = txfm::testing::run_python(
        "import sys, anndata; a = anndata.read_h5ad(sys.argv[1]); print(a.n_obs, sorted(a.obsm.keys()), a.X.sum() > 0)",
        &[out.join("cells.h5ad").to_str().unwrap()],
    );
    assert_eq!(py.trim(), "1200 ['X_libnorm', 'X_pca'] True");
    // One copy with both keys: equal to what `txfm baseline pca` writes alone, X equal to the
    // input's, and no stage file left behind.
    let o = txfm(&["baseline", "pca", "s.h5ad", "--out", "alone.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let py = txfm::testing::run_python(
        "import sys, numpy as np, anndata\n\
         a, b, s = (anndata.read_h5ad(p) for p in sys.argv[1:4])\n\
         print(np.array_equal(a.obsm['X_pca'], b.obsm['X_pca']), (a.X != s.X).nnz == 0, a.obs.equals(s.obs))",
        &[out.join("cells.h5ad").to_str().unwrap(), dir.path().join("alone.h5ad").to_str().unwrap(), dir.path().join("s.h5ad").to_str().unwrap()],
    );
    assert_eq!(py.trim(), "True True True");
    let mut left: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|f| f.starts_with("cells.")).collect();
    left.sort();
    let expected = ["cells.h5ad", "cells.libnorm.genes.tsv", "cells.pca.pca.json", "cells.pca.pcs.tsv"];
    assert_eq!(left, expected.map(String::from).to_vec(), "only the copy, LibNorm's genes and PCA's loadings and summary");
}

#[test]
fn bad_requests_fail_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["simulate", "--preset", "tiny", "--cells", "300", "--out", "s.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let run = |extra: &[&str]| {
        let mut args = vec!["bench", "perturb", "--input", "s.h5ad", "--annotations", "s.pairs.csv", "--out", "b"];
        args.extend_from_slice(extra);
        txfm(&args, dir.path())
    };
    let o = run(&["--obsm", "X_nothere"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("X_nothere") && text(&o).contains("s.h5ad"), "{}", text(&o));
    let o = run(&[]);
    assert!(!o.status.success() && text(&o).contains("nothing to evaluate"), "{}", text(&o));
    let o = run(&["--baseline", "pca", "--pert-key", "no_such_column"]);
    assert!(!o.status.success() && text(&o).contains("no_such_column"), "{}", text(&o));
    assert!(!dir.path().join("b/cells.h5ad").exists(), "labels are checked before any embedding is computed");
    let o = run(&["--baseline", "pca", "--layer", "counts"]);
    assert!(!o.status.success() && text(&o).contains("adata.X = adata.layers['counts']"), "{}", text(&o));
    let o = run(&["--baseline", "umap"]);
    assert!(!o.status.success() && text(&o).contains("expected pca, libnorm or scvi"), "{}", text(&o));
    assert!(!dir.path().join("b/report.json").exists());
}

/// `--seeds 0` would benchmark nothing and print a table of "—" with exit 0; it is refused.
#[test]
fn zero_seeds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["bench", "perturb", "--input", "x.h5ad", "--obsm", "X_pca", "--annotations", "p.csv", "--out", "b", "--seeds", "0"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("--seeds"), "{}", text(&o));
    assert!(!dir.path().join("b").exists());
}

/// An average over fewer than six metrics says so in the table itself, not only in a footnote.
#[test]
fn an_average_over_fewer_metrics_says_so_in_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["simulate", "--preset", "tiny", "--cells", "600", "--out", "s.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = txfm(
        &["bench", "perturb", "--input", "s.h5ad", "--baseline", "pca", "--annotations", "s.pairs.csv", "--seeds", "1", "--quick", "--no-inv", "--postprocess", "none", "--out", "b"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(dir.path().join("b/report.md")).unwrap();
    let row = md.lines().find(|l| l.starts_with("| X_pca | ")).expect("a PCA row");
    assert!(row.trim_end().ends_with("(5 of 6, without inv) |"), "{row}");
}

/// An embedding wider than its controls span loses dimensions under TVN; the report says so.
#[test]
fn tvn_says_when_it_drops_dimensions_the_controls_do_not_span() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["simulate", "--preset", "tiny", "--cells", "400", "--out", "s.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = txfm(
        &["bench", "perturb", "--input", "s.h5ad", "--baseline", "libnorm", "--annotations", "s.pairs.csv", "--seeds", "1", "--quick", "--no-inv", "--postprocess", "tvn", "--out", "b"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let report = PerturbReport::read_json(&dir.path().join("b/report.json")).unwrap();
    let row = &report.rows[0];
    assert!(row.dim < 500 && row.dim < report.n_controls, "{} dims, {} controls", row.dim, report.n_controls);
    let w = report.warnings.iter().find(|w| w.contains("TVN kept")).unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(w.starts_with(&format!("X_libnorm: TVN kept {} of its 500 dimensions", row.dim)), "{w}");
}
