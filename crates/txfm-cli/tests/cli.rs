//! End-to-end: the real `txfm` binary on files in a temp dir.

mod common;

use common::{text, txfm};

#[test]
fn quickstart_runs_the_pipeline_and_writes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["quickstart", "--preset", "tiny", "--run-preset", "tiny", "--out", "qs"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let qs = dir.path().join("qs");
    let report = std::fs::read_to_string(qs.join("report.md")).unwrap();
    assert!(report.contains("2000 cells × 500 genes"), "{report}");
    assert!(report.contains("| sim "), "{report}");
    for f in ["sim.h5ad", "sim.pairs.csv", "sim.truth.json", "corpus.toml", "corpus/corpus.json", "cells.pca.pcs.tsv"] {
        assert!(qs.join(f).exists(), "{f} missing");
    }
    // Stages 4-6: the screen with four embeddings, benchmarked against the true pairs. Both TxFM
    // read-outs are in the principal axes the run fitted on its training cells (95% of the cells
    // the corpus kept, those with >= 50 detected genes): over the kept cells, their leading
    // columns are centred and nearly uncorrelated. (The few cells QC dropped are outliers that
    // the fit never saw, so the check leaves them out as the corpus did.)
    let py = txfm::testing::run_python(
        "import sys, anndata, numpy as np; a = anndata.read_h5ad(sys.argv[1]); m = a.obsm['X_txfm_cls_mean']\n\
         kept = np.asarray((a.X > 0).sum(1)).ravel() >= 50\n\
         def axes(x):\n    x = x[kept, :16].astype(np.float64); c = np.corrcoef(x.T); np.fill_diagonal(c, 0)\n    \
         return bool(np.abs(c).max() < 0.1 and np.abs(x.mean(0)).max() < 0.1 * x.std(0).max() and x[:, 0].var() > x[:, 15].var())\n\
         print(a.n_obs, sorted(a.obsm.keys()), a.obsm['X_txfm'].shape[1], m.shape[1], a.obsm['X_pca'].shape[1], \
         axes(a.obsm['X_txfm']), axes(m))",
        &[qs.join("cells.h5ad").to_str().unwrap()],
    );
    assert_eq!(py.trim(), "2000 ['X_libnorm', 'X_pca', 'X_txfm', 'X_txfm_cls_mean'] 64 128 50 True True");
    assert!(report.contains("principal axes, fitted on"), "{report}");
    let bench = txfm::eval::perturb::report::PerturbReport::read_json(&qs.join("bench/report.json")).unwrap();
    let best: Vec<&str> = bench.best_rows().iter().map(|r| r.embedding.as_str()).collect();
    assert_eq!(best, ["X_txfm", "X_txfm_cls_mean", "X_pca", "X_libnorm"]);
    // The simulated knockdowns move whole modules, so PCA's perturbation means put the true pairs
    // in the 5%/95% tails far more often than the 10% of chance.
    let pca_bmdb = bench.best_rows()[2].summary.bmdb.mean.unwrap();
    assert!(pca_bmdb > 30.0, "PCA bmdb {pca_bmdb}");
    assert!(report.contains("## 6. Perturbation benchmark") && report.contains("| X_pca |"), "{report}");
    for png in ["metrics.png", "bmdb_recall.png", "postprocess.png"] {
        let bytes = std::fs::read(qs.join("bench").join(png)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
    }
    // The corpus it built is readable by the stats command, and a re-run replaces it cleanly.
    let s = txfm(&["corpus", "stats", "qs/corpus"], dir.path());
    assert!(s.status.success() && text(&s).contains("union"), "{}", text(&s));
    let again = txfm(&["quickstart", "--preset", "tiny", "--run-preset", "tiny", "--out", "qs"], dir.path());
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
fn simulate_writes_an_h5ad_that_anndata_reads() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["simulate", "--preset", "tiny", "--cells", "300", "--out", "s.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let py = txfm::testing::run_python(
        "import sys, anndata; a = anndata.read_h5ad(sys.argv[1]); \
         print(a.n_obs, a.n_vars, sorted(a.obs['perturbation'].cat.categories)[:1], 'gene_ids' in a.var)",
        &[dir.path().join("s.h5ad").to_str().unwrap()],
    );
    let py = py.trim();
    assert!(py.starts_with("300 500 [") && py.ends_with("] True"), "{py}");
}

#[test]
fn bad_inputs_fail_with_the_file_named_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    // A manifest pointing at a missing file.
    std::fs::write(dir.path().join("m.toml"), "[[dataset]]\nname = 'x'\npath = 'missing.h5ad'\n").unwrap();
    let o = txfm(&["corpus", "build", "--manifest", "m.toml", "--out", "c"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("missing.h5ad") && text(&o).contains("no such file"), "{}", text(&o));
    assert!(!dir.path().join("c").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the manifest remains: {leftovers:?}");

    // A z-scored matrix is refused by name.
    let z = txfm::testing::shared_data("expression/10x_pbmc68k_reduced.h5ad");
    let o = txfm(&["inspect", z.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("10x_pbmc68k_reduced.h5ad: X does not hold raw counts"), "{}", text(&o));

    // A file that is not HDF5 at all.
    std::fs::write(dir.path().join("fake.h5ad"), "not hdf5").unwrap();
    let o = txfm(&["inspect", "fake.h5ad"], dir.path());
    assert!(!o.status.success() && text(&o).contains("fake.h5ad"), "{}", text(&o));
}

/// `txfm inspect s.h5ad | head -0`: the reader is gone before txfm prints. txfm ends quietly at
/// the write (SIGPIPE, as Unix tools do) instead of panicking with exit code 101.
#[test]
fn a_closed_stdout_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["simulate", "--preset", "tiny", "--cells", "300", "--out", "s.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_txfm"))
        .args(["inspect", "s.h5ad"])
        .current_dir(dir.path())
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(o.status.signal(), Some(13), "expected the default SIGPIPE ending, got {:?}: {stderr}", o.status);
}

/// An OS error is said once: the error chain used to print it again as its own cause
/// ("…: No such file or directory (os error 2): No such file or directory (os error 2)").
#[test]
fn an_os_error_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["corpus", "stats", "nowhere"][..], &["inspect", "nowhere.h5ad"][..]] {
        let o = txfm(args, dir.path());
        let msg = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success() && msg.starts_with("error: ") && msg.contains("nowhere"), "{msg}");
        let tail = msg.trim_end().rsplit(": ").next().unwrap().to_string();
        assert_eq!(msg.matches(&tail).count(), 1, "said twice: {msg}");
    }
}
