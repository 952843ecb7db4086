//! What every end-to-end test of the binary needs: running `txfm` and reading what it printed.
// Each test binary compiles its own copy and may use only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use txfm::model::DecoderConfig;
use txfm::train::RunConfig;

/// Runs the built `txfm` with `args` in `cwd`.
pub fn txfm(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_txfm")).args(args).current_dir(cwd).output().expect("txfm runs")
}

/// stdout then stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The run most end-to-end tests train: `RunConfig::tiny()` at width 32 (its decoder too) with 32
/// visible genes, so a step takes milliseconds. Tests set their own steps and intervals.
pub fn test_run_config() -> RunConfig {
    let mut cfg = RunConfig::tiny();
    cfg.model.d_model = 32;
    cfg.model.decoder = DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 32 };
    (cfg.model.n_visible, cfg.loader.k) = (32, 32);
    cfg
}
