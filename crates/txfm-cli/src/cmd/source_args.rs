//! The flags that say how to read an input file, shared by every subcommand that reads one.

use txfm::data::genes::GeneIdKind;
use txfm::data::SourceOptions;

#[derive(clap::Args)]
pub struct SourceArgs {
    /// h5ad matrix: X, raw, or a layer name.
    #[arg(long)]
    pub layer: Option<String>,
    /// h5ad var column holding gene IDs (default: var_names).
    #[arg(long)]
    pub var_column: Option<String>,
    /// Kind of gene IDs: auto, symbol, ensembl or raw.
    #[arg(long, default_value = "auto")]
    pub gene_ids: String,
    /// Tables: genes are columns.
    #[arg(long)]
    pub genes_as_columns: bool,
    /// Accept non-count values (already-normalised bulk data).
    #[arg(long)]
    pub allow_non_counts: bool,
}

impl SourceArgs {
    pub fn options(&self) -> SourceOptions {
        SourceOptions {
            format: None,
            layer: self.layer.clone(),
            var_column: self.var_column.clone(),
            genes_as_columns: self.genes_as_columns,
            allow_non_counts: self.allow_non_counts,
        }
    }

    pub fn gene_id_kind(&self) -> anyhow::Result<GeneIdKind> {
        serde_json::from_value(serde_json::Value::String(self.gene_ids.clone()))
            .map_err(|_| anyhow::anyhow!("--gene-ids '{}': expected auto, symbol, ensembl or raw", self.gene_ids))
    }
}
