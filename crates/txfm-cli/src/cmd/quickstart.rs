//! `txfm quickstart`: the whole pipeline on the embedded simulated default.

use std::io::IsTerminal;
use std::path::PathBuf;

use txfm::quickstart::{run as run_quickstart, QuickstartConfig};

/// Run the whole pipeline on a simulated Perturb-seq screen and write a report.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(long, default_value = "quickstart-out")]
    out: PathBuf,
    /// Simulation preset: tiny, quickstart or large.
    #[arg(long, default_value = "quickstart")]
    preset: String,
    /// Random seed of the simulation.
    #[arg(long)]
    seed: Option<u64>,
    /// Training run preset: auto (medium with a CUDA GPU, else small), medium (the GPU recipe,
    /// about a minute on one H200), small (the CPU recipe, a few minutes) or tiny (seconds, for
    /// tests).
    #[arg(long, default_value = "auto")]
    run_preset: String,
    /// Seed of the model's initialisation and of the loader (split, order, visible genes).
    #[arg(long)]
    train_seed: Option<u64>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = QuickstartConfig::new(&a.out);
    cfg.sim = txfm::simulate::SimConfig::preset(&a.preset)?;
    if let Some(s) = a.seed {
        cfg.sim.seed = s;
    }
    cfg.run = QuickstartConfig::run_config(&a.run_preset)?;
    if let Some(s) = a.train_seed {
        cfg.run.reseed(s);
    }
    cfg.progress = std::io::stderr().is_terminal();
    let out = run_quickstart(&cfg)?;
    println!("{}", std::fs::read_to_string(&out.report)?);
    println!("report: {}", out.report.display());
    Ok(())
}
