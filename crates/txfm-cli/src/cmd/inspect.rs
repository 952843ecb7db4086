//! `txfm inspect`: what txfm reads from an input, before building anything from it.

use std::path::PathBuf;

use txfm::data::genes::{harmonise, GeneTable};
use txfm::data::open_source;

use super::source_args::SourceArgs;

/// Show shape, matrix, obs columns, gene-ID harmonisation and the raw-count check of an input
/// (.h5ad, 10x MTX folder or bulk table).
#[derive(clap::Args)]
pub struct Args {
    input: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let opts = a.source.options();
    let kind = a.source.gene_id_kind()?;
    let src = open_source(&a.input, &opts)?;
    println!("{}: {} ({} n_obs × {} n_vars)", a.input.display(), src.matrix_name(), src.n_obs(), src.n_vars());
    let shown: Vec<&str> = src.var_names().iter().take(5).map(String::as_str).collect();
    println!("var_names: {} ...", shown.join(", "));
    println!("obs columns: {}", src.obs().keys().join(", "));
    let mapping = harmonise(src.var_names(), kind, GeneTable::human());
    println!("genes: {}", mapping.report);
    println!("raw counts: first {} rows checked{}", txfm::data::counts_check::HEAD_ROWS.min(src.n_obs()),
        if opts.allow_non_counts { " (skipped: --allow-non-counts)" } else { ", ok" });
    Ok(())
}
