//! `txfm baseline pca|libnorm` end to end on a simulated h5ad: the outputs open in anndata.

mod common;

use std::process::Command;
use common::{text, txfm};

#[test]
fn pca_and_libnorm_write_embeddings_anndata_reads() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["simulate", "--preset", "tiny", "--cells", "500", "--out", "sim.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));

    let o = txfm(&["baseline", "pca", "sim.h5ad", "--out", "pca.h5ad", "--n-comps", "10", "--n-top-genes", "100"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("500 samples × 100 genes used (of 500), 10 components"), "{}", text(&o));
    let o = txfm(&["baseline", "libnorm", "sim.h5ad", "--out", "ln.h5ad", "--n-top-genes", "50", "--embedding-only"], dir.path());
    assert!(o.status.success(), "{}", text(&o));

    let check = r#"
import sys, json, anndata
a = anndata.read_h5ad("pca.h5ad"); b = anndata.read_h5ad("ln.h5ad")
s = json.load(open("pca.pca.json"))
print(a.X.shape, a.obsm["X_pca"].shape, "perturbation" in a.obs, b.X is None, b.obsm["X_libnorm"].shape,
      len(s["explained_variance_ratio"]), open("pca.pcs.tsv").readline().split("\t")[:3])
"#;
    let out = Command::new(txfm::testing::python()).arg("-c").arg(check).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "(500, 500) (500, 10) True True (500, 50) 10 ['gene_id', 'symbol', 'PC1']"
    );

    // A bad input fails naming the file, and leaves nothing behind.
    let o = txfm(&["baseline", "pca", "missing.h5ad", "--out", "x.h5ad"], dir.path());
    assert!(!o.status.success() && text(&o).contains("missing.h5ad"), "{}", text(&o));
    assert!(!dir.path().join("x.h5ad").exists());

    // Writing over the input (which would drop what the copy does not carry) is refused, and the
    // input is left byte for byte as it was.
    let before = std::fs::read(dir.path().join("sim.h5ad")).unwrap();
    for (cmd, out) in [("pca", "sim.h5ad"), ("libnorm", "sim.h5ad"), ("libnorm", "./sim.h5ad")] {
        let o = txfm(&["baseline", cmd, "sim.h5ad", "--out", out], dir.path());
        assert!(!o.status.success() && text(&o).contains("is the input"), "{cmd} --out {out}: {}", text(&o));
    }
    // The PCA's side files may not land on it either: `--out sim` would write sim.pcs.tsv and
    // sim.pca.json beside sim.h5ad; a loadings path that is the input is refused.
    std::fs::hard_link(dir.path().join("sim.h5ad"), dir.path().join("p.pcs.tsv")).unwrap();
    let o = txfm(&["baseline", "pca", "sim.h5ad", "--out", "p.h5ad"], dir.path());
    assert!(!o.status.success() && text(&o).contains("is the input"), "{}", text(&o));
    assert_eq!(std::fs::read(dir.path().join("sim.h5ad")).unwrap(), before, "the input changed");
}

/// A command's outputs appear together or not at all: with `p.pcs.tsv` taken by a folder, the
/// PCA fails before writing, naming it, and leaves no `p.h5ad` (it used to be left behind).
#[test]
fn pca_outputs_appear_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let o = txfm(&["simulate", "--preset", "tiny", "--cells", "300", "--out", "s.h5ad"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    std::fs::create_dir(dir.path().join("p.pcs.tsv")).unwrap();
    let o = txfm(&["baseline", "pca", "s.h5ad", "--out", "p.h5ad", "--n-comps", "5"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("p.pcs.tsv"), "{}", text(&o));
    let left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('p') || n.starts_with(".p")).collect();
    assert_eq!(left, vec!["p.pcs.tsv".to_string()], "only the folder that was there");
}
