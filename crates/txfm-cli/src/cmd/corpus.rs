//! `txfm corpus build | stats`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use txfm::corpus::{build_corpus, stats::stats_table, BuildOptions, CorpusSummary, Manifest};

#[derive(Subcommand)]
pub enum Command {
    /// Build a corpus from the datasets listed in a TOML manifest.
    Build {
        /// The manifest (`[[dataset]]` entries, optional `[filters]`); see the README.
        #[arg(long)]
        manifest: PathBuf,
        /// Output folder (written to a temporary folder, renamed at the end).
        #[arg(long)]
        out: PathBuf,
        /// Replace `--out` if it is a txfm corpus folder (anything else is refused).
        #[arg(long)]
        overwrite: bool,
        /// Use the paper's QC filters (genes in ≥ 1000 cells, cells with ≥ 2000 genes) instead of the manifest's.
        #[arg(long)]
        paper_filters: bool,
    },
    /// Print the corpus table: dataset, mode, samples, genes, and the union.
    Stats {
        /// A corpus folder.
        dir: PathBuf,
        /// Print corpus.json instead of the table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Build { manifest, out, overwrite, paper_filters } => {
            let mut m = Manifest::load(&manifest)?;
            if paper_filters {
                m.filters = txfm::corpus::Filters::paper();
            }
            let opts = BuildOptions { overwrite, progress: std::io::stderr().is_terminal() };
            let start = std::time::Instant::now();
            let summary = build_corpus(&m, &out, &opts)
                .with_context(|| format!("building corpus {} from {}", out.display(), manifest.display()))?;
            for d in &summary.datasets {
                eprintln!("{}: genes: {}", d.name, d.mapping);
            }
            let secs = start.elapsed().as_secs_f64();
            let n_in: usize = summary.datasets.iter().map(|d| d.n_after_cap).sum();
            eprintln!("built {} in {secs:.1}s ({:.0} samples/s)", out.display(), n_in as f64 / secs.max(1e-9));
            println!("{}", stats_table(&summary));
        }
        Command::Stats { dir, json } => {
            let summary = CorpusSummary::load(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!("{}", stats_table(&summary));
            }
        }
    }
    Ok(())
}
