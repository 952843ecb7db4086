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

/// Reads rows back from a float32 C-order 2-D `.npy` (what [`NpyWriter`] writes, or numpy's
/// `np.save` of such an array), without loading the whole file.
#[derive(Debug)]
pub struct NpyRows {
    path: PathBuf,
    file: std::fs::File,
    /// Byte offset of the data.
    start: u64,
    pub n_obs: usize,
    pub d: usize,
}

impl NpyRows {
    pub fn open(path: &Path) -> Result<Self> {
        use std::io::Read;
        let bad = |what: &str| Error::format(path, format!("not a float32 C-order 2-D .npy: {what}"));
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut lead = [0u8; 12];
        file.read_exact(&mut lead[..10]).map_err(|e| Error::io(path, e))?;
        if &lead[..6] != b"\x93NUMPY" {
            return Err(bad("no NUMPY magic"));
        }
        // Versions 2 and 3 widen the header length to 4 bytes.
        let (len, at) = match lead[6] {
            1 => (u16::from_le_bytes([lead[8], lead[9]]) as usize, 10),
            2 | 3 => {
                file.read_exact(&mut lead[10..12]).map_err(|e| Error::io(path, e))?;
                (u32::from_le_bytes([lead[8], lead[9], lead[10], lead[11]]) as usize, 12)
            }
            v => return Err(bad(&format!("format version {v}"))),
        };
        let mut dict = vec![0u8; len];
        file.read_exact(&mut dict).map_err(|e| Error::io(path, e))?;
        let dict = String::from_utf8_lossy(&dict);
        if !dict.contains("'descr': '<f4'") {
            return Err(bad("dtype is not '<f4'"));
        }
        if !dict.contains("'fortran_order': False") {
            return Err(bad("Fortran order"));
        }
        let shape = dict.split("'shape': (").nth(1).and_then(|r| r.split(')').next()).ok_or_else(|| bad("no shape"))?;
        let dims: Vec<usize> = shape.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::parse).collect::<std::result::Result<_, _>>().map_err(|_| bad("shape"))?;
        let [n_obs, d] = dims[..] else { return Err(bad(&format!("shape ({shape}) is not 2-D"))) };
        let start = (at + len) as u64;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if size != start + (n_obs * d * 4) as u64 {
            return Err(bad(&format!("{size} bytes for a {n_obs} × {d} array")));
        }
        Ok(NpyRows { path: path.to_path_buf(), file, start, n_obs, d })
    }

    /// Rows `rows` as `[rows.len(), d]` values.
    pub fn read_rows(&self, rows: std::ops::Range<usize>) -> Result<Vec<f32>> {
        use std::os::unix::fs::FileExt;
        if rows.end > self.n_obs {
            return Err(Error::format(&self.path, format!("rows up to {} of {}", rows.end, self.n_obs)));
        }
        let mut bytes = vec![0u8; rows.len() * self.d * 4];
        self.file.read_exact_at(&mut bytes, self.start + (rows.start * self.d * 4) as u64).map_err(|e| Error::io(&self.path, e))?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
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
    fn rows_read_back_as_written_and_other_arrays_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        let obs = ObsFrame { names: (0..5).map(|i| format!("c{i}")).collect(), columns: vec![] };
        let values: Vec<f32> = (0..15).map(|i| i as f32 * 0.5 - 2.0).collect();
        let mut w: Box<dyn EmbeddingSink> = Box::new(NpyWriter::create(&path, 5, 3, &obs).unwrap());
        let chunk = CsrChunk::new(0, 0);
        w.write(&chunk, &values[..6]).unwrap();
        w.write(&chunk, &values[6..]).unwrap();
        w.finish().unwrap();
        let r = NpyRows::open(&path).unwrap();
        assert_eq!((r.n_obs, r.d), (5, 3));
        assert_eq!(r.read_rows(0..5).unwrap(), values);
        assert_eq!(r.read_rows(3..4).unwrap(), values[9..12]);
        assert!(r.read_rows(4..6).is_err());

        let f8 = dir.path().join("f8.npy");
        let mut bytes = header(1, 1);
        bytes.extend_from_slice(&1.0f32.to_le_bytes());
        let mut wide = bytes.clone();
        let at = wide.windows(3).position(|w| w == b"<f4").unwrap();
        wide[at + 2] = b'8';
        std::fs::write(&f8, &wide).unwrap();
        assert!(NpyRows::open(&f8).unwrap_err().to_string().contains("dtype"));
        bytes.pop();
        std::fs::write(&f8, &bytes).unwrap();
        assert!(NpyRows::open(&f8).unwrap_err().to_string().contains("bytes for a 1 × 1 array"));
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
