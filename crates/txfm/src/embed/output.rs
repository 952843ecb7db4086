//! Where embeddings go, chunk by chunk as they are produced: an `.h5ad` (the input's obs, var and X
//! plus `obsm[key]`), an `.npy` with an obs sidecar, or a Parquet table. Every output is written
//! under a temporary name and renamed into place by `finish`: an error leaves nothing behind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::npy::NpyWriter;
use super::parquet::ParquetWriter;
use crate::data::h5ad::obsm::H5adCopy;
use crate::data::h5ad::H5adWriter;
use crate::data::{CsrChunk, ObsFrame, SourceFormat};
use crate::{Error, Result};

/// Output formats of `txfm embed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// AnnData: a copy of the input with the embeddings in `obsm[key]` (float32, n_obs × d).
    H5ad,
    /// NumPy `.npy` (float32, C order, n_obs × d) plus `<stem>.obs.tsv` with obs_names and obs.
    Npy,
    /// Parquet: `obs_name`, the obs columns, then float32 columns `<key>_0` … `<key>_{d-1}`.
    Parquet,
}

impl OutputFormat {
    /// The format named by the output's extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("h5ad") => Ok(OutputFormat::H5ad),
            Some("npy") => Ok(OutputFormat::Npy),
            Some("parquet" | "pq") => Ok(OutputFormat::Parquet),
            _ => Err(Error::format(path, "cannot tell the output format from the extension; use .h5ad, .npy or .parquet, or set --format")),
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
            .map_err(|_| Error::Invalid(format!("format '{s}': expected h5ad, npy or parquet")))
    }
}

/// What an output needs to know about the input.
pub struct InputInfo<'a> {
    pub path: &'a Path,
    pub format: SourceFormat,
    pub n_obs: usize,
    pub obs: &'a ObsFrame,
    pub var_names: &'a [String],
}

/// Receives embeddings in row order.
pub trait EmbeddingSink {
    /// The next rows: `chunk` as read from the input (columns = input vars) and their embeddings
    /// `[chunk.n_rows(), d]`.
    fn write(&mut self, chunk: &CsrChunk, embeddings: &[f32]) -> Result<()>;
    /// Completes the output and renames it into place; returns the files written.
    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>>;
    /// What the output leaves out of the input, one line each.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Opens the output `path` in `format` for `d`-wide embeddings under `key`.
pub fn create_sink(format: OutputFormat, path: &Path, input: &InputInfo, key: &str, d: usize) -> Result<Box<dyn EmbeddingSink>> {
    if key.is_empty() || key.contains('/') {
        return Err(Error::Invalid(format!("key '{key}' must be non-empty and contain no '/'")));
    }
    Ok(match format {
        OutputFormat::H5ad if input.format == SourceFormat::H5ad => Box::new(H5adCopySink { copy: H5adCopy::create(input.path, path, &[key])?, key: key.to_string(), d }),
        OutputFormat::H5ad => {
            let var = ObsFrame { names: input.var_names.to_vec(), columns: Vec::new() };
            Box::new(NewH5adSink { writer: H5adWriter::create(path, &var)?, obs: input.obs.clone(), key: key.to_string(), d })
        }
        OutputFormat::Npy => Box::new(NpyWriter::create(path, input.n_obs, d, input.obs)?),
        OutputFormat::Parquet => Box::new(ParquetWriter::create(path, input.obs, key, d)?),
    })
}

/// An `.h5ad` input: its copy, with `obsm[key]` added.
struct H5adCopySink {
    copy: H5adCopy,
    key: String,
    d: usize,
}

impl EmbeddingSink for H5adCopySink {
    fn write(&mut self, chunk: &CsrChunk, embeddings: &[f32]) -> Result<()> {
        self.copy.append(chunk.n_rows(), &[(&self.key, self.d, embeddings)])
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let path = self.copy.output().to_path_buf();
        self.copy.finish()?;
        Ok(vec![path])
    }

    fn warnings(&self) -> Vec<String> {
        self.copy.warnings().to_vec()
    }
}

/// Another input (10x MTX, table): a new `.h5ad` of its counts, obs and var names, with `obsm[key]`.
struct NewH5adSink {
    writer: H5adWriter,
    obs: ObsFrame,
    key: String,
    d: usize,
}

impl EmbeddingSink for NewH5adSink {
    fn write(&mut self, chunk: &CsrChunk, embeddings: &[f32]) -> Result<()> {
        self.writer.append_x(chunk)?;
        self.writer.append_obsm(&self.key, self.d, embeddings)
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let path = self.writer.path().to_path_buf();
        self.writer.finish(&self.obs)?;
        Ok(vec![path])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extensions_and_names() {
        assert_eq!(OutputFormat::from_path(Path::new("a/b.H5AD")).unwrap(), OutputFormat::H5ad);
        assert_eq!(OutputFormat::from_path(Path::new("b.npy")).unwrap(), OutputFormat::Npy);
        assert_eq!(OutputFormat::from_path(Path::new("b.parquet")).unwrap(), OutputFormat::Parquet);
        assert!(OutputFormat::from_path(Path::new("b.csv")).unwrap_err().to_string().starts_with("b.csv: "));
        assert_eq!("npy".parse::<OutputFormat>().unwrap(), OutputFormat::Npy);
        assert!("zarr".parse::<OutputFormat>().is_err());
    }
}
