//! `txfm simulate`: Perturb-seq-like counts with known truth.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use txfm::simulate::{simulate_to_h5ad, SimConfig};

/// Simulate a Perturb-seq screen (gene programs, complex-like modules, knockdowns, batches,
/// negative-binomial counts) into an .h5ad, with the true gene pairs as an EFAAR-style CSV.
#[derive(clap::Args)]
pub struct Args {
    /// Output .h5ad (`<out>.pairs.csv` and `<out>.truth.json` are written beside it).
    #[arg(long)]
    out: PathBuf,
    /// Preset: tiny, quickstart or large (10^6 cells × 20,000 genes).
    #[arg(long, default_value = "quickstart")]
    preset: String,
    /// A TOML file of SimConfig fields (missing fields take the quickstart values).
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Override the number of cells.
    #[arg(long)]
    cells: Option<usize>,
    /// Override the number of genes.
    #[arg(long)]
    genes: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str::<SimConfig>(&text).with_context(|| format!("{}: invalid simulation config", p.display()))?
        }
        None => SimConfig::preset(&a.preset)?,
    };
    if let Some(n) = a.cells { cfg.n_cells = n; }
    if let Some(n) = a.genes { cfg.n_genes = n; }
    if let Some(s) = a.seed { cfg.seed = s; }
    cfg.validate()?;
    let bar = if std::io::stderr().is_terminal() { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    let s = simulate_to_h5ad(&cfg, &a.out, &bar)?;
    println!(
        "{}: {} cells × {} genes, {:.1}% non-zero, {} controls, {} perturbations, {:.0} cells/s\npairs: {}\ntruth: {}",
        s.h5ad.display(), s.n_cells, s.n_genes, 100.0 * s.density(), s.n_controls, s.n_perturbations,
        s.cells_per_second(), s.pairs_csv.display(), s.truth_json.display()
    );
    Ok(())
}
