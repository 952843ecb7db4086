//! `txfm inspect`: what txfm reads from an input, before building anything from it.

use std::path::PathBuf;

use txfm::data::genes::{harmonise, GeneIdKind, GeneTable};
use txfm::data::{open_source, SourceOptions};

/// Show shape, matrix, obs columns, gene-ID harmonisation and the raw-count check of an input
/// (.h5ad, 10x MTX folder or bulk table).
#[derive(clap::Args)]
pub struct Args {
    input: PathBuf,
    /// h5ad matrix: X, raw, or a layer name.
    #[arg(long)]
    layer: Option<String>,
    /// h5ad var column holding gene IDs (default: var_names).
    #[arg(long)]
    var_column: Option<String>,
    /// Kind of gene IDs: auto, symbol, ensembl or raw.
    #[arg(long, default_value = "auto")]
    gene_ids: String,
    /// Tables: genes are columns.
    #[arg(long)]
    genes_as_columns: bool,
    /// Accept non-count values.
    #[arg(long)]
    allow_non_counts: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let opts = SourceOptions {
        format: None,
        layer: a.layer,
        var_column: a.var_column,
        genes_as_columns: a.genes_as_columns,
        allow_non_counts: a.allow_non_counts,
    };
    let kind: GeneIdKind = serde_json::from_value(serde_json::Value::String(a.gene_ids.clone()))
        .map_err(|_| anyhow::anyhow!("--gene-ids '{}': expected auto, symbol, ensembl or raw", a.gene_ids))?;
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
