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
