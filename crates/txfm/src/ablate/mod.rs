//! `txfm ablate`: the paper's ablation study as one resumable command. A study file
//! ([`study`]) names a base run config, the corpus, the evaluation screens, seeds, a budget and
//! rows (config diffs) grouped like the paper's tables. Each cell — a row's config at one seed —
//! trains, embeds every screen, runs the perturbation benchmark and gene-relationship recall
//! ([`cell`]); finished stages are cached under a hash of their config ([`cache`]), so a killed
//! study continues where it stopped and a changed row re-runs only that row. The table ([`table`])
//! marks rows that differ from the default with the paper's tests; [`report`] writes it as
//! Markdown, JSON and one self-contained HTML page.

pub mod study;
pub mod cache;
pub mod cell;
pub mod run;
pub mod table;
pub mod report;

use std::path::Path;
use std::time::Instant;

pub use cell::CellResult;
pub use run::{CellOutcome, Runner, RunnerOptions};
pub use study::{Budget, CellSpec, Study};
pub use table::StudyTable;

use crate::{Error, Result};

/// What a whole run of a study did.
pub struct StudyOutcome {
    pub table: StudyTable,
    /// Cells found finished in the cache, and computed by this run.
    pub cached: usize,
    pub computed: usize,
    /// Cells that failed, with their error.
    pub failed: Vec<(String, String)>,
    pub seconds: f64,
}

/// Runs every cell of `runner` in this process, one after another, then writes the outputs.
/// A failing cell is reported and the others still run; the outputs show it as missing.
pub fn run_all(runner: &Runner, bar: &indicatif::ProgressBar) -> Result<StudyOutcome> {
    let started = Instant::now();
    let n = runner.cells.len();
    let mut results: Vec<Option<CellResult>> = (0..n).map(|i| runner.cached(i)).collect::<Result<_>>()?;
    let cached = results.iter().filter(|r| r.is_some()).count();
    bar.set_length(n as u64);
    bar.set_position(cached as u64);
    bar.reset_eta();
    let (mut computed, mut failed) = (0, Vec::new());
    for (i, slot) in results.iter_mut().enumerate() {
        if slot.is_some() {
            continue;
        }
        let name = runner.cells[i].0.display();
        let stage = |s: &str| bar.set_message(format!("{name}: {s}"));
        let log = |line: String| bar.suspend(|| eprintln!("warning: {line}"));
        match runner.run_cell(i, &stage, &log) {
            Ok(CellOutcome::Done(r)) => {
                *slot = Some(*r);
                computed += 1;
            }
            Ok(CellOutcome::Busy) => bar.suspend(|| eprintln!("{name}: another process is computing it; left to it")),
            Err(e) => {
                bar.suspend(|| eprintln!("error: cell {name} ({}): {e}", runner.cell_id(i)));
                failed.push((runner.cell_id(i), e.to_string()));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let table = runner.finish(&results, seconds)?;
    Ok(StudyOutcome { table, cached, computed, failed, seconds })
}

/// Loads the study at `grid` and prepares it in `out`.
pub fn open(grid: &Path, out: &Path, opts: &RunnerOptions, stage: &dyn Fn(&str)) -> Result<Runner> {
    // A study writes many files into its folder: never into one holding something else.
    if out.is_dir() && !out.join("study.toml").exists() && out.read_dir().map_err(|e| Error::io(out, e))?.next().is_some() {
        return Err(Error::Invalid(format!("{}: not a study folder (no study.toml) and not empty; choose a new or empty folder", out.display())));
    }
    Runner::new(Study::load(grid)?, out, opts, stage)
}
