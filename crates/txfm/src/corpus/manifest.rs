//! `corpus.toml`: which datasets make a corpus, how to read each, and the QC filters.
//!
//! ```toml
//! [filters]                 # optional; defaults suit small data, `preset = "paper"` gives 1000/2000
//! min_cells_per_gene = 3
//! min_genes_per_cell = 200
//!
//! [[dataset]]
//! name = "jurkat_cropseq"
//! path = "data/cropseq.h5ad"   # relative to the manifest
//! gene_ids = "symbol"          # auto | symbol | ensembl | raw
//! obs_columns = ["target_gene", "sample"]
//! max_samples = 5000
//! obs_filter = [{ column = "perturbation_2", values = ["stimulated"] }]
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::genes::GeneIdKind;
use crate::data::{SourceFormat, SourceOptions};
use crate::{Error, Result};

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub filters: Filters,
    /// Rows per Parquet shard file.
    #[serde(default = "default_shard_rows")]
    pub shard_rows: usize,
    /// Seed for the random choice of samples under `max_samples`.
    #[serde(default)]
    pub seed: u64,
    #[serde(rename = "dataset")]
    pub datasets: Vec<DatasetSpec>,
}

fn default_shard_rows() -> usize {
    65_536
}

/// QC filters, applied as in the paper: cells (samples) with at least `min_genes_per_cell`
/// detected genes are kept, then genes detected in at least `min_cells_per_gene` kept samples
/// (summed over all datasets) form the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    pub min_cells_per_gene: u64,
    pub min_genes_per_cell: u32,
}

impl Default for Filters {
    /// scanpy's tutorial thresholds: safe for a few hundred cells or a handful of bulk samples.
    fn default() -> Self {
        Filters { min_cells_per_gene: 3, min_genes_per_cell: 200 }
    }
}

impl Filters {
    /// The paper's corpus filters (genes in ≥ 1000 cells, cells with ≥ 2000 genes).
    pub fn paper() -> Self {
        Filters { min_cells_per_gene: 1000, min_genes_per_cell: 2000 }
    }
    /// No filtering at all (every sample and every harmonised gene is kept).
    pub fn none() -> Self {
        Filters { min_cells_per_gene: 0, min_genes_per_cell: 0 }
    }
}

/// Single-cell or bulk, as in the paper's corpus table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetMode {
    #[default]
    Sc,
    Bulk,
}

impl std::fmt::Display for DatasetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DatasetMode::Sc => "sc",
            DatasetMode::Bulk => "bulk",
        })
    }
}

/// Keep samples whose `obs[column]` is (or, with `exclude`, is not) one of `values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObsFilter {
    pub column: String,
    pub values: Vec<String>,
    #[serde(default)]
    pub exclude: bool,
}

/// One input dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Unique short name; also the `dataset` label in `obs.parquet`.
    pub name: String,
    /// `.h5ad` file, 10x MTX folder or bulk table; relative paths are relative to the manifest.
    pub path: PathBuf,
    #[serde(default)]
    pub mode: DatasetMode,
    #[serde(default)]
    pub gene_ids: GeneIdKind,
    #[serde(default)]
    pub format: Option<SourceFormat>,
    /// h5ad: `X`, `raw` or a layer name.
    #[serde(default)]
    pub layer: Option<String>,
    /// h5ad: the `var` column holding gene IDs (default: the var index).
    #[serde(default)]
    pub var_column: Option<String>,
    /// Tables: genes are columns, samples rows.
    #[serde(default)]
    pub genes_as_columns: bool,
    /// Accept non-count values (already-normalised bulk).
    #[serde(default)]
    pub allow_non_counts: bool,
    /// obs columns copied into `obs.parquet`.
    #[serde(default)]
    pub obs_columns: Vec<String>,
    #[serde(default)]
    pub obs_filter: Vec<ObsFilter>,
    /// Keep at most this many samples (a seeded random subset of those passing `obs_filter`,
    /// drawn before the QC filter).
    #[serde(default)]
    pub max_samples: Option<usize>,
}

impl DatasetSpec {
    /// A dataset read with default options.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>, gene_ids: GeneIdKind) -> Self {
        DatasetSpec {
            name: name.into(),
            path: path.into(),
            mode: DatasetMode::Sc,
            gene_ids,
            format: None,
            layer: None,
            var_column: None,
            genes_as_columns: false,
            allow_non_counts: false,
            obs_columns: Vec::new(),
            obs_filter: Vec::new(),
            max_samples: None,
        }
    }

    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            format: self.format,
            layer: self.layer.clone(),
            var_column: self.var_column.clone(),
            genes_as_columns: self.genes_as_columns,
            allow_non_counts: self.allow_non_counts,
        }
    }
}

impl Manifest {
    pub fn new(datasets: Vec<DatasetSpec>, filters: Filters) -> Self {
        Manifest { filters, shard_rows: default_shard_rows(), seed: 0, datasets }
    }

    /// Reads a TOML manifest; relative dataset paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut m: Manifest = toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for d in &mut m.datasets {
            d.path = crate::data::source::resolve_path(base, &d.path);
        }
        m.validate(&path.display().to_string())?;
        Ok(m)
    }

    pub fn validate(&self, origin: &str) -> Result<()> {
        if self.datasets.is_empty() {
            return Err(Error::config(origin, "dataset", "no [[dataset]] entries"));
        }
        if self.shard_rows == 0 {
            return Err(Error::config(origin, "shard_rows", "must be positive"));
        }
        if self.datasets.len() > u16::MAX as usize {
            return Err(Error::config(origin, "dataset", "more than 65535 datasets"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, d) in self.datasets.iter().enumerate() {
            let field = format!("dataset[{i}]");
            if d.name.is_empty() || !seen.insert(d.name.as_str()) {
                return Err(Error::config(origin, format!("{field}.name"), format!("'{}' is empty or repeated", d.name)));
            }
            if d.max_samples == Some(0) {
                return Err(Error::config(origin, format!("{field}.max_samples"), "must be positive"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_manifest_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("corpus.toml");
        std::fs::write(
            &p,
            r#"
[filters]
min_cells_per_gene = 10
[[dataset]]
name = "a"
path = "x.h5ad"
gene_ids = "symbol"
obs_columns = ["sample"]
obs_filter = [{ column = "cond", values = ["ctrl"], exclude = true }]
max_samples = 100
[[dataset]]
name = "b"
path = "/abs/bulk.tsv"
mode = "bulk"
"#,
        )
        .unwrap();
        let m = Manifest::load(&p).unwrap();
        assert_eq!(m.filters, Filters { min_cells_per_gene: 10, min_genes_per_cell: 200 });
        assert_eq!(m.datasets[0].path, dir.path().join("x.h5ad"));
        assert_eq!(m.datasets[1].path, PathBuf::from("/abs/bulk.tsv"));
        assert_eq!(m.datasets[1].mode, DatasetMode::Bulk);
        assert!(m.datasets[0].obs_filter[0].exclude);
    }

    #[test]
    fn rejects_bad_manifests_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[[dataset]]\nname='a'\npath='x'\n[[dataset]]\nname='a'\npath='y'\n").unwrap();
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(e.contains("c.toml: dataset[1].name: 'a' is empty or repeated"), "{e}");
        std::fs::write(&p, "[[dataset]]\nname='a'\npath='x'\ncolour='red'\n").unwrap();
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("colour"), "{e}");
    }
}
