//! One interface over every input format: a samples × genes matrix read in row chunks, its
//! `var_names` and its `obs`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CsrChunk, ObsFrame};
use crate::{Error, Result};

/// What a source knows besides its matrix: read whole at open (O(n_obs + n_vars) names).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMeta {
    /// The file or folder read.
    pub path: PathBuf,
    /// The matrix read, for messages: `X`, `layers/counts`, `raw/X`, `matrix.mtx`, `table`.
    pub matrix_name: String,
    /// Gene identifiers as found in the file (before harmonisation). `[n_vars]`
    pub var_names: Vec<String>,
    /// Sample names and metadata. `n_obs` rows.
    pub obs: ObsFrame,
}

/// A samples × genes expression matrix on disk, streamed in row chunks.
pub trait ExpressionSource: Send {
    fn meta(&self) -> &SourceMeta;
    /// Rows `start..end`, with `start <= end <= n_obs`, as CSR with zeros dropped.
    fn read_range(&mut self, start: usize, end: usize) -> Result<CsrChunk>;

    fn path(&self) -> &Path {
        &self.meta().path
    }
    fn matrix_name(&self) -> &str {
        &self.meta().matrix_name
    }
    fn n_obs(&self) -> usize {
        self.meta().obs.n_obs()
    }
    fn n_vars(&self) -> usize {
        self.meta().var_names.len()
    }
    fn var_names(&self) -> &[String] {
        &self.meta().var_names
    }
    fn obs(&self) -> &ObsFrame {
        &self.meta().obs
    }
    /// Rows `start..end` (clamped to `n_obs`) as CSR with zeros dropped.
    fn read_rows(&mut self, start: usize, end: usize) -> Result<CsrChunk> {
        let end = end.min(self.n_obs());
        self.read_range(start.min(end), end)
    }
}

/// Input formats txfm reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// AnnData `.h5ad` (X as CSR, CSC or dense).
    H5ad,
    /// A 10x Cell Ranger MTX folder (matrix.mtx[.gz], features.tsv[.gz] or genes.tsv, barcodes.tsv[.gz]).
    Mtx,
    /// A dense TSV/CSV table (bulk RNA-seq), genes as rows unless told otherwise.
    Table,
}

impl SourceFormat {
    /// Guesses the format from the path: a folder is MTX, `.h5ad` is AnnData, text tables otherwise.
    pub fn detect(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Ok(SourceFormat::Mtx);
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".h5ad") {
            Ok(SourceFormat::H5ad)
        } else if name.ends_with(".mtx") {
            Ok(SourceFormat::Mtx)
        } else if [".tsv", ".csv", ".txt", ".tab"].iter().any(|s| name.ends_with(s)) {
            Ok(SourceFormat::Table)
        } else {
            Err(Error::format(path, "cannot tell the format from the name; expected a .h5ad file, \
                an MTX folder or a .tsv/.csv/.txt table (or set the format explicitly)"))
        }
    }
}

/// How to read an input. Defaults read `X` with `var_names` as gene IDs and refuse non-counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceOptions {
    /// Force a format instead of detecting it from the path.
    pub format: Option<SourceFormat>,
    /// h5ad matrix: `X` (default), `raw` (= `raw/X`) or the name of a `layers/` entry.
    pub layer: Option<String>,
    /// h5ad: take gene IDs from this `var` column instead of the `var` index; for `raw`, from `raw/var`.
    pub var_column: Option<String>,
    /// Tables: samples are rows and genes columns (default: genes are rows, as in bulk count tables).
    pub genes_as_columns: bool,
    /// Accept non-count values (already-normalised bulk data). Off by default.
    pub allow_non_counts: bool,
}

/// Opens any supported input, checking that it holds raw counts unless allowed otherwise.
pub fn open_source(path: &Path, opts: &SourceOptions) -> Result<Box<dyn ExpressionSource>> {
    if !path.exists() {
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")));
    }
    let format = match opts.format {
        Some(f) => f,
        None => SourceFormat::detect(path)?,
    };
    let mut src: Box<dyn ExpressionSource> = match format {
        SourceFormat::H5ad => Box::new(super::h5ad::H5adSource::open(path, opts)?),
        SourceFormat::Mtx => Box::new(super::mtx::MtxSource::open(path)?),
        SourceFormat::Table => Box::new(super::table::TableSource::open(path, opts.genes_as_columns)?),
    };
    if !opts.allow_non_counts {
        super::counts_check::check_head(src.as_mut())?;
    }
    Ok(src)
}

/// Resolves `path` relative to `base` unless it is absolute.
pub fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}
