//! What every end-to-end test of the binary needs: running `txfm` and reading what it printed.
// Each test binary compiles its own copy and may use only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the built `txfm` with `args` in `cwd`.
pub fn txfm(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_txfm")).args(args).current_dir(cwd).output().expect("txfm runs")
}

/// stdout then stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
