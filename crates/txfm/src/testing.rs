//! Helpers shared by the unit and integration tests: where the shared real data lives and which
//! Python (with `anndata`) serves as the reference implementation.

use std::path::PathBuf;

/// `../shared/data/<rel>` relative to the repository root (override the folder with
/// `TXFM_SHARED_DATA`). Panics with a message saying what is missing, so a test never passes
/// silently without its data.
pub fn shared_data(rel: &str) -> PathBuf {
    let root = std::env::var_os("TXFM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let p = root.join(rel);
    assert!(
        p.exists(),
        "shared test data missing: {} not found. The tests read real data from ../shared/data beside \
         the repository (or TXFM_SHARED_DATA); check it out there.",
        p.display()
    );
    p
}

/// The Python interpreter of the set-up venv (`TXFM_PYTHON`, set by ./txfm.sh, or the default
/// cache location), which has `anndata`, `scipy` and `pyarrow` for reference checks.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TXFM_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let p = home.join(".cache/txfm/venv-torch-2.11.0/bin/python");
    assert!(p.exists(), "reference Python not found at {}; run `bash scripts/setup.sh`", p.display());
    p
}

/// Runs a Python snippet with the reference interpreter and returns its stdout; panics with its
/// stderr on failure.
pub fn run_python(code: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("failed to start the reference Python");
    assert!(
        out.status.success(),
        "reference Python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("Python printed non-UTF-8")
}

/// Simulates `sim` into `dir/<name>.h5ad` and builds a corpus of it (dataset `name`, raw gene IDs)
/// in `dir/<corpus>`, keeping every cell and the genes detected in at least
/// `min_cells_per_gene` of them. Returns the h5ad's path. The fixture most pipeline tests start
/// from.
pub fn sim_corpus(dir: &std::path::Path, name: &str, corpus: &str, sim: &crate::simulate::SimConfig, min_cells_per_gene: u64) -> PathBuf {
    use crate::corpus::{build_corpus, BuildOptions, DatasetSpec, Filters, Manifest};
    let h5ad = dir.join(format!("{name}.h5ad"));
    crate::simulate::simulate_to_h5ad(sim, &h5ad, &indicatif::ProgressBar::hidden()).expect("simulating the fixture");
    let spec = DatasetSpec::new(name, &h5ad, crate::data::genes::GeneIdKind::Raw);
    let manifest = Manifest::new(vec![spec], Filters { min_cells_per_gene, min_genes_per_cell: 0 });
    build_corpus(&manifest, &dir.join(corpus), &BuildOptions::default()).expect("building the fixture corpus");
    h5ad
}

/// Writes a small h5ad of `n_obs` cells (named `c0`, `c1`, …) over `var_names`, cell `i`'s
/// values being `row(i)` (dense, `[var_names.len()]`): the hand-made inputs of the tests that
/// plant a bad value or a gene-naming case where the simulator has none.
pub fn write_dense_h5ad(path: &std::path::Path, var_names: &[String], n_obs: usize, row: impl Fn(usize) -> Vec<f32>) {
    use crate::data::{h5ad::H5adWriter, CsrChunk, ObsFrame};
    let mut w = H5adWriter::create(path, &ObsFrame { names: var_names.to_vec(), columns: vec![] }).expect("creating the test h5ad");
    let mut x = CsrChunk::new(0, var_names.len());
    for i in 0..n_obs {
        x.push_dense_row(&row(i));
    }
    w.append_x(&x).expect("writing the test h5ad's X");
    w.finish(&ObsFrame { names: (0..n_obs).map(|i| format!("c{i}")).collect(), columns: vec![] }).expect("finishing the test h5ad");
}
