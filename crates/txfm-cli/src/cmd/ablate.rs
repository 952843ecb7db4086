//! `txfm ablate`: run an ablation study (a grid of config diffs × seeds), resumably, and write its
//! tables with the paper's significance tests. `--jobs N` runs N cells at once, each in a worker
//! process of this binary (`--cell`), one per GPU where there are several.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use txfm::ablate::{self, CellOutcome, CellResult, Runner, RunnerOptions, Study};

/// Run an ablation study: train, embed, benchmark and score gene recall for every row × seed of a
/// study file; finished cells are cached, so re-running continues where a run stopped.
#[derive(clap::Args)]
pub struct Args {
    /// The study file (TOML; see examples/ablation_small.toml).
    #[arg(long)]
    grid: PathBuf,
    /// Study folder: cells, cache, study.md, study.json, study.html.
    #[arg(long)]
    out: PathBuf,
    /// Cells run at once, each in its own process (with several GPUs, one per GPU).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// List the study's cells and exit.
    #[arg(long)]
    plan: bool,
    /// libtorch threads per process (default: the cores shared among the jobs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Run the cells on this device (cpu, cuda, cuda:N) instead of their configs'.
    #[arg(long)]
    device: Option<String>,
    /// Compute one cell (by its folder name) and exit: what each --jobs worker runs.
    #[arg(long, hide = true)]
    cell: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.plan {
        return plan(&a.grid);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = a.threads.map(|t| t as usize).or((a.jobs > 1).then(|| (cores / a.jobs as usize).max(1)));
    let opts = RunnerOptions { threads, device: a.device.clone() };
    let tty = std::io::stderr().is_terminal();
    let quiet = a.cell.is_some() || !tty;
    let stage = |s: &str| {
        if !quiet {
            eprintln!("ablate: {s}");
        }
    };
    let runner = ablate::open(&a.grid, &a.out, &opts, &stage)?;

    if let Some(id) = &a.cell {
        let i = runner.index_of(id).with_context(|| format!("{}: the study has no cell {id}", a.grid.display()))?;
        let log = |l: String| eprintln!("warning: {l}");
        let stage = |s: &str| eprintln!("{id}: {s}");
        return match runner.run_cell(i, &stage, &log)? {
            CellOutcome::Done(_) => Ok(()),
            CellOutcome::Busy => {
                eprintln!("{id}: another process is computing it");
                Ok(())
            }
        };
    }

    let bar = if tty { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} cells · ETA {eta} · {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let outcome = if a.jobs == 1 { ablate::run_all(&runner, &bar)? } else { run_workers(&runner, &a, threads.unwrap_or(1), &bar)? };
    println!("{}", outcome.table.markdown());
    println!(
        "{} cells: {} from the cache, {} computed, {} failed; {:.1} min",
        runner.cells.len(),
        outcome.cached,
        outcome.computed,
        outcome.failed.len(),
        outcome.seconds / 60.0
    );
    println!("study: {}", a.out.join("study.md").display());
    println!("page:  {}", a.out.join("study.html").display());
    if !outcome.failed.is_empty() {
        for (id, e) in &outcome.failed {
            eprintln!("failed: {id}: {e}");
        }
        bail!("{} of {} cells failed (re-run the same command to retry them)", outcome.failed.len(), runner.cells.len());
    }
    Ok(())
}

fn plan(grid: &Path) -> anyhow::Result<()> {
    let study = Study::load(grid)?;
    let cells = study.cells();
    println!("{}: {} groups, {} distinct configs × {} seeds = {} cells", study.name, study.groups.len(), cells.len() / study.seeds.len(), study.seeds.len(), cells.len());
    for c in &cells {
        let labels = if c.is_default { "default".to_string() } else { c.labels.join(", ") };
        println!("{}-s{}  {labels}  seed {}", c.config_key, c.seed, c.seed);
    }
    Ok(())
}

/// Runs the uncached cells in `--jobs` worker processes of `threads` libtorch threads each, then
/// writes the outputs.
fn run_workers(runner: &Runner, a: &Args, threads: usize, bar: &indicatif::ProgressBar) -> anyhow::Result<ablate::StudyOutcome> {
    let started = Instant::now();
    let n = runner.cells.len();
    let mut results: Vec<Option<CellResult>> = (0..n).map(|i| runner.cached(i)).collect::<Result<_, _>>()?;
    let cached = results.iter().filter(|r| r.is_some()).count();
    let mut pending: Vec<usize> = (0..n).filter(|&i| results[i].is_none()).collect();
    pending.reverse();
    bar.set_length(n as u64);
    bar.set_position(cached as u64);
    bar.reset_eta();
    let gpus = txfm::runtime::cuda_device_count();
    let on_gpu = a.device.as_deref().map_or(runner.study.base.config.device != "cpu", |d| d != "cpu") && gpus > 0;
    let exe = std::env::current_exe().context("locating this binary for the workers")?;
    let mut running: Vec<(usize, usize, Child, PathBuf)> = Vec::new();
    let (mut computed, mut failed) = (0, Vec::new());
    let mut free_slots: Vec<usize> = (0..a.jobs as usize).rev().collect();
    let cells_dir = a.out.join("cells");
    std::fs::create_dir_all(&cells_dir).with_context(|| format!("{}: creating the cells folder", cells_dir.display()))?;
    while !pending.is_empty() || !running.is_empty() {
        while let (Some(&slot), Some(&i)) = (free_slots.last(), pending.last()) {
            free_slots.pop();
            pending.pop();
            let id = runner.cell_id(i);
            let log = cells_dir.join(format!("{id}.log"));
            let file = std::fs::File::create(&log).with_context(|| format!("{}: creating the worker's log", log.display()))?;
            let mut cmd = Command::new(&exe);
            cmd.arg("ablate").arg("--grid").arg(&a.grid).arg("--out").arg(&a.out).arg("--cell").arg(&id);
            cmd.arg("--threads").arg(threads.to_string());
            match (&a.device, on_gpu) {
                (_, true) => {
                    cmd.arg("--device").arg(format!("cuda:{}", slot % gpus));
                }
                (Some(d), false) => {
                    cmd.arg("--device").arg(d);
                }
                (None, false) => {}
            }
            let child = cmd.stdout(Stdio::null()).stderr(file).spawn().with_context(|| format!("starting a worker for {id}"))?;
            running.push((i, slot, child, log));
        }
        let names: Vec<String> = running.iter().map(|(i, ..)| runner.cells[*i].0.display()).collect();
        bar.set_message(names.join(" | "));
        std::thread::sleep(Duration::from_millis(200));
        let mut k = 0;
        while k < running.len() {
            let status = running[k].2.try_wait().context("waiting for a worker")?;
            let Some(status) = status else {
                k += 1;
                continue;
            };
            let (i, slot, _, log) = running.swap_remove(k);
            free_slots.push(slot);
            bar.inc(1);
            match (status.success(), runner.cached(i)?) {
                (true, Some(r)) => {
                    results[i] = Some(r);
                    computed += 1;
                }
                (true, None) => bar.suspend(|| eprintln!("{}: left to another process computing it", runner.cell_id(i))),
                (false, _) => {
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    let last = tail.lines().rev().find(|l| l.starts_with("error")).unwrap_or("no error line").to_string();
                    bar.suspend(|| eprintln!("error: cell {} failed ({status}); log {}: {last}", runner.cells[i].0.display(), log.display()));
                    failed.push((runner.cell_id(i), format!("{last} (log: {})", log.display())));
                }
            }
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let table = runner.finish(&results, seconds)?;
    Ok(ablate::StudyOutcome { table, cached, computed, failed, seconds })
}
