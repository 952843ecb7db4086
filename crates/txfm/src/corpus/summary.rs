//! `corpus.json`: what was built from what, with every count a person checks first.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::{DatasetMode, Filters};
use super::schema::SUMMARY_FILE;
use crate::data::genes::{GeneIdKind, MappingReport};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusSummary {
    pub format_version: u32,
    pub txfm_version: String,
    pub filters: Filters,
    /// Samples kept, over all datasets.
    pub n_samples: u64,
    /// Harmonised genes seen in any dataset (rows of `genes.parquet`).
    pub n_genes_seen: usize,
    /// Vocabulary size G: genes that passed `min_cells_per_gene`.
    pub n_vars: usize,
    /// Input obs columns copied into obs.parquet (see `schema::stored_obs_column` for their names there).
    pub obs_columns: Vec<String>,
    pub datasets: Vec<DatasetSummary>,
    pub shards: Vec<ShardSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub id: u16,
    pub name: String,
    pub path: PathBuf,
    pub mode: DatasetMode,
    pub gene_ids: GeneIdKind,
    /// The matrix read (`X`, `raw/X`, `layers/counts`, `matrix.mtx`, `table`).
    pub matrix: String,
    pub n_obs_input: usize,
    pub n_vars_input: usize,
    /// Samples left after `obs_filter`, then after `max_samples`.
    pub n_after_obs_filter: usize,
    pub n_after_cap: usize,
    /// Samples removed by `min_genes_per_cell`.
    pub n_failed_qc: usize,
    /// Samples written.
    pub n_samples: usize,
    pub n_genes_harmonised: usize,
    /// Vocabulary genes this dataset profiles.
    pub n_genes_profiled: usize,
    pub mapping: MappingReport,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSummary {
    pub file: String,
    pub n_rows: u64,
}

impl CorpusSummary {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(SUMMARY_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let s: CorpusSummary = serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))?;
        if s.format_version != super::schema::FORMAT_VERSION {
            return Err(Error::format(
                &path,
                format!("corpus format version {} (this txfm reads {})", s.format_version, super::schema::FORMAT_VERSION),
            ));
        }
        Ok(s)
    }
}
