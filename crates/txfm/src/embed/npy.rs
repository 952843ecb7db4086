//! Embeddings as NumPy `.npy` (format 1.0: float32 little-endian, C order, `[n_obs, d]`), for
//! `numpy.load`, plus `<stem>.obs.tsv` beside it: `obs_name` and the obs columns, one row per
//! embedding row (`pandas.read_csv(path, sep="\t", index_col=0)`). Rows are streamed in; the
//! header's shape is known up front from the input's `n_obs`.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::output::EmbeddingSink;
use crate::atomic::{temp_file_beside, write_atomic};
use crate::data::{CsrChunk, ObsFrame};
use crate::{Error, Result};

/// The obs sidecar of an `.npy` output: `emb.npy` → `emb.obs.tsv`.
pub fn obs_sidecar_path(npy: &Path) -> PathBuf {
    npy.with_extension("obs.tsv")
}

/// Streams rows into an `.npy`.
pub struct NpyWriter {
    path: PathBuf,
    out: BufWriter<NamedTempFile>,
    obs_tsv: String,
    n_obs: usize,
    d: usize,
    rows: usize,
}

/// The `.npy` 1.0 header for a float32 C-order `[n, d]` array, padded so the data starts at a
/// multiple of 64 bytes.
fn header(n: usize, d: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    let unpadded = 6 + 2 + 2 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// obs as TSV: `obs_name` then the columns; tabs and line breaks inside values become spaces,
/// missing values are empty.
fn obs_tsv(obs: &ObsFrame) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let mut out = String::from("obs_name");
    for (k, _) in &obs.columns {
        let _ = write!(out, "\t{}", clean(k));
    }
    out.push('\n');
    for (i, name) in obs.names.iter().enumerate() {
        out.push_str(&clean(name));
        for (_, col) in &obs.columns {
            let _ = write!(out, "\t{}", col.get_str(i).map(|v| clean(&v)).unwrap_or_default());
        }
        out.push('\n');
    }
    out
}

impl NpyWriter {
    pub fn create(path: &Path, n_obs: usize, d: usize, obs: &ObsFrame) -> Result<Self> {
        let mut out = BufWriter::new(temp_file_beside(path)?);
        out.write_all(&header(n_obs, d)).map_err(|e| Error::io(path, e))?;
        Ok(NpyWriter { path: path.to_path_buf(), out, obs_tsv: obs_tsv(obs), n_obs, d, rows: 0 })
    }
}

impl EmbeddingSink for NpyWriter {
    fn write(&mut self, _chunk: &CsrChunk, embeddings: &[f32]) -> Result<()> {
        let n = embeddings.len() / self.d;
        if self.rows + n > self.n_obs || n * self.d != embeddings.len() {
            return Err(Error::format(&self.path, format!("{} values appended after {} of {} rows of {}", embeddings.len(), self.rows, self.n_obs, self.d)));
        }
        let bytes: Vec<u8> = embeddings.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.out.write_all(&bytes).map_err(|e| Error::io(&self.path, e))?;
        self.rows += n;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let NpyWriter { path, out, obs_tsv, n_obs, rows, .. } = *self;
        if rows != n_obs {
            return Err(Error::format(&path, format!("{rows} of {n_obs} rows written")));
        }
        let tmp = out.into_inner().map_err(|e| Error::io(&path, e.into_error()))?;
        let sidecar = obs_sidecar_path(&path);
        write_atomic(&sidecar, &obs_tsv)?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(vec![path, sidecar])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ObsColumn;

    #[test]
    fn header_is_npy_1_0_aligned_to_64_bytes() {
        let h = header(3, 2);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }") && text.ends_with(" \n"));
    }

    #[test]
    fn obs_sidecar_holds_names_and_columns() {
        let obs = ObsFrame {
            names: vec!["a".into(), "b\tc".into()],
            columns: vec![("kind".into(), ObsColumn::Categorical { codes: vec![0, -1], categories: vec!["x".into()] })],
        };
        assert_eq!(obs_tsv(&obs), "obs_name\tkind\na\tx\nb c\t\n");
        assert_eq!(obs_sidecar_path(Path::new("d/emb.npy")), Path::new("d/emb.obs.tsv"));
    }
}
