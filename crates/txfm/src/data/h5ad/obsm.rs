//! `obsm` of an `.h5ad`: read embeddings that other tools (scanpy, txfm) stored there, and write
//! a copy of a file with new entries added, streamed row chunk by row chunk.
//!
//! How to call:
//! ```no_run
//! use std::path::Path;
//! use txfm::data::h5ad::obsm::{obsm_keys, read_obsm, write_h5ad_with_obsm, H5adCopy};
//! # fn main() -> txfm::Result<()> {
//! let keys = obsm_keys(Path::new("a.h5ad"))?;                     // ["X_pca", "X_umap"]
//! let (n_obs, dim, values) = read_obsm(Path::new("a.h5ad"), "X_pca")?; // row-major [n_obs, dim]
//! // A copy with obsm['X_new'] added (whole array in memory):
//! write_h5ad_with_obsm(Path::new("a.h5ad"), Path::new("b.h5ad"), &[("X_new", dim, &values)])?;
//! // The same, streamed: rows of the new entries arrive in order, in chunks of any size.
//! let mut copy = H5adCopy::create(Path::new("a.h5ad"), Path::new("c.h5ad"), &["X_new"])?;
//! for start in (0..n_obs).step_by(1000) {
//!     let end = (start + 1000).min(n_obs);
//!     copy.append(end - start, &[("X_new", dim, &values[start * dim..end * dim])])?;
//! }
//! copy.finish()?;
//! # Ok(()) }
//! ```
//!
//! Only dense numeric `obsm` arrays are read as embeddings (any integer or float type, converted
//! to `f32`); dataframes and sparse matrices in `obsm` are refused by [`read_obsm`] and left out
//! of copies with a warning ([`H5adCopy::warnings`]). Small side matrices of any of those kinds
//! (a guide-count matrix) are read whole by [`super::read_obsm_matrix`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::{Dataset, File, LocationType};

use super::frame::read_frame;
use super::hdf::{self, open_file, At};
use super::{H5adSource, H5adWriter};
use crate::data::{ExpressionSource, ObsFrame, SourceOptions};
use crate::{Error, Result};

/// Rows copied per read when a copy is made from whole arrays.
const COPY_CHUNK_ROWS: usize = 4096;

/// The keys of `obsm` in `path`, in file order (empty if the file has no `obsm`).
pub fn obsm_keys(path: &Path) -> Result<Vec<String>> {
    let file = open_file(path)?;
    if hdf::member_kind(&file, "obsm") != Some(LocationType::Group) {
        return Ok(Vec::new());
    }
    file.group("obsm").and_then(|g| g.member_names()).at(path, "obsm")
}

/// `obsm[key]` of `path` whole, as `(n_obs, dim, values)` with `values` row-major `[n_obs, dim]`.
/// Accepts a dense 2-D array of any numeric type (float32/float64 as scanpy writes them).
pub fn read_obsm(path: &Path, key: &str) -> Result<(usize, usize, Vec<f32>)> {
    let r = ObsmReader::open(path, key)?;
    let values = r.read_rows(0..r.n_obs())?;
    Ok((r.n_obs(), r.dim(), values))
}

/// One dense `obsm` array, read by row ranges.
pub struct ObsmReader {
    path: PathBuf,
    key: String,
    ds: Dataset,
    n_obs: usize,
    dim: usize,
}

impl ObsmReader {
    /// Opens `obsm[key]` of `path`; the error names the file, the key and the keys there are.
    pub fn open(path: &Path, key: &str) -> Result<Self> {
        let file = open_file(path)?;
        Self::open_in(&file, path, key)
    }

    fn open_in(file: &File, path: &Path, key: &str) -> Result<Self> {
        let what = format!("obsm/{key}");
        let found = hdf::member_kind(file, "obsm") == Some(LocationType::Group)
            && file.group("obsm").is_ok_and(|g| hdf::member_kind(&g, key).is_some());
        if !found {
            let keys = obsm_keys(path)?;
            let have = if keys.is_empty() { "none".to_string() } else { keys.join(", ") };
            return Err(Error::format(path, format!("no obsm['{key}'] in this file; obsm keys: {have}")));
        }
        let obsm = file.group("obsm").at(path, "obsm")?;
        if hdf::member_kind(&obsm, key) != Some(LocationType::Dataset) {
            let encoding = obsm.group(key).ok().and_then(|g| hdf::encoding_type(&g)).unwrap_or_else(|| "a group".into());
            return Err(Error::format(path, format!("{what} is {encoding}, not a dense array; only dense numeric obsm arrays are read")));
        }
        let ds = obsm.dataset(key).at(path, &what)?;
        let ty = hdf::descriptor(&ds).at(path, &what)?;
        if !hdf::is_numeric(&ty) {
            return Err(Error::format(path, format!("{what}: element type {ty} is not numeric")));
        }
        let shape = ds.shape();
        if shape.len() != 2 {
            return Err(Error::format(path, format!("{what}: a {}-D array; obsm entries are [n_obs, dim]", shape.len())));
        }
        Ok(ObsmReader { path: path.to_path_buf(), key: key.to_string(), ds, n_obs: shape[0], dim: shape[1] })
    }

    pub fn n_obs(&self) -> usize {
        self.n_obs
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows `rows` as `f32`, row-major `[rows.len(), dim]`.
    pub fn read_rows(&self, rows: Range<usize>) -> Result<Vec<f32>> {
        if rows.end > self.n_obs || rows.start > rows.end {
            return Err(Error::format(&self.path, format!("obsm/{}: rows {rows:?} out of 0..{}", self.key, self.n_obs)));
        }
        if rows.is_empty() || self.dim == 0 {
            return Ok(Vec::new());
        }
        let block = self.ds.read_slice_2d::<f32, _>((rows, ..)).at(&self.path, &format!("obsm/{}", self.key))?;
        Ok(block.as_standard_layout().iter().copied().collect())
    }
}

/// A copy of an `.h5ad` (obs, var, X, and its dense obsm arrays) with new obsm entries, written
/// row chunk by row chunk so memory does not grow with `n_obs`. X is copied as CSR float32;
/// `layers`, `raw`, `uns`, `obsp`, `varm` and non-dense obsm entries are not copied. An existing
/// entry with the name of a new one is replaced. The output appears at [`Self::finish`] only.
pub struct H5adCopy {
    input: PathBuf,
    writer: H5adWriter,
    x: Option<H5adSource>,
    old: Vec<ObsmReader>,
    new_keys: Vec<String>,
    obs: ObsFrame,
    done: usize,
    warnings: Vec<String>,
}

impl H5adCopy {
    /// Starts copying `input` to `output` (which may be `input` itself: it is replaced at
    /// `finish`), to receive the obsm entries `new_keys`.
    pub fn create(input: &Path, output: &Path, new_keys: &[&str]) -> Result<Self> {
        let file = open_file(input)?;
        let (obs, mut warnings) = read_frame(&file, "obs", input)?;
        let (var, var_warnings) = read_frame(&file, "var", input)?;
        warnings.extend(var_warnings);
        let x = match hdf::member_kind(&file, "X") {
            Some(_) => Some(H5adSource::open(input, &SourceOptions::default())?),
            None => None,
        };
        if let Some(x) = x.as_ref().filter(|x| x.n_vars() != var.n_obs() || x.n_obs() != obs.n_obs()) {
            return Err(Error::format(input, format!("X is {} × {} but obs × var is {} × {}", x.n_obs(), x.n_vars(), obs.n_obs(), var.n_obs())));
        }
        let mut old = Vec::new();
        for key in obsm_keys(input)? {
            if new_keys.contains(&key.as_str()) {
                continue;
            }
            match ObsmReader::open_in(&file, input, &key) {
                Ok(r) if r.n_obs() == obs.n_obs() => old.push(r),
                Ok(r) => warnings.push(format!("obsm/{key}: not copied: {} rows for {} obs", r.n_obs(), obs.n_obs())),
                Err(e) => warnings.push(format!("obsm/{key}: not copied: {e}")),
            }
        }
        let writer = H5adWriter::create(output, &var)?;
        Ok(H5adCopy {
            input: input.to_path_buf(),
            writer,
            x,
            old,
            new_keys: new_keys.iter().map(|k| k.to_string()).collect(),
            obs,
            done: 0,
            warnings,
        })
    }

    /// Rows of the input.
    pub fn n_obs(&self) -> usize {
        self.obs.n_obs()
    }

    /// The input's obs (copied to the output at `finish`).
    pub fn obs(&self) -> &ObsFrame {
        &self.obs
    }

    /// Where the copy appears at `finish`.
    pub fn output(&self) -> &Path {
        self.writer.path()
    }

    /// What was left out of the copy, one line each (`obsm/spatial: not copied: ...`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Copies the next `n_rows` rows of X and of the input's obsm arrays, and appends `entries`
    /// (`(key, dim, values [n_rows, dim])`, every key of `create`'s `new_keys`, each call).
    pub fn append(&mut self, n_rows: usize, entries: &[(&str, usize, &[f32])]) -> Result<()> {
        let rows = self.done..self.done + n_rows;
        if rows.end > self.n_obs() {
            return Err(Error::format(&self.input, format!("rows up to {} appended to a copy of {} obs", rows.end, self.n_obs())));
        }
        for key in &self.new_keys {
            if !entries.iter().any(|(k, _, _)| k == key) {
                return Err(Error::Invalid(format!("obsm['{key}'] missing from the rows appended")));
            }
        }
        for &(key, dim, values) in entries {
            if !self.new_keys.iter().any(|k| k == key) {
                return Err(Error::Invalid(format!("obsm['{key}'] was not announced to H5adCopy::create")));
            }
            if values.len() != n_rows * dim {
                return Err(Error::Invalid(format!("obsm['{key}']: {} values for {n_rows} rows of {dim}", values.len())));
            }
            self.writer.append_obsm(key, dim, values)?;
        }
        if let Some(x) = &mut self.x {
            let chunk = x.read_rows(rows.start, rows.end)?;
            self.writer.append_x(&chunk)?;
        }
        for r in &self.old {
            let values = r.read_rows(rows.clone())?;
            self.writer.append_obsm(&r.key, r.dim, &values)?;
        }
        self.done = rows.end;
        Ok(())
    }

    /// Writes obs and renames the finished copy into place; every row must have been appended.
    pub fn finish(self) -> Result<()> {
        if self.done != self.n_obs() {
            return Err(Error::format(&self.input, format!("copy finished after {} of {} rows", self.done, self.n_obs())));
        }
        let H5adCopy { writer, obs, x, old, .. } = self;
        drop((x, old));
        writer.finish(&obs)
    }
}

/// Writes a copy of `input` to `output` with `extra` obsm entries (`(key, dim, values)`,
/// `values` row-major `[n_obs, dim]`) added or replaced; see [`H5adCopy`] for what is copied.
/// Returns the copy's warnings.
pub fn write_h5ad_with_obsm(input: &Path, output: &Path, extra: &[(&str, usize, &[f32])]) -> Result<Vec<String>> {
    let keys: Vec<&str> = extra.iter().map(|(k, _, _)| *k).collect();
    let mut copy = H5adCopy::create(input, output, &keys)?;
    let n = copy.n_obs();
    for &(key, dim, values) in extra {
        if values.len() != n * dim {
            return Err(Error::Invalid(format!("obsm['{key}']: {} values are not {n} obs × {dim}", values.len())));
        }
    }
    let mut start = 0;
    while start < n {
        let end = (start + COPY_CHUNK_ROWS).min(n);
        let rows: Vec<(&str, usize, &[f32])> = extra.iter().map(|&(k, d, v)| (k, d, &v[start * d..end * d])).collect();
        copy.append(end - start, &rows)?;
        start = end;
    }
    let warnings = copy.warnings().to_vec();
    copy.finish()?;
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_python;

    /// An anndata file with a float64 X_pca, an int32 spatial array, a dataframe in obsm and a
    /// categorical obs column.
    fn anndata_file(path: &Path) {
        run_python(
            r#"
import sys, anndata as ad, numpy as np, pandas as pd, scipy.sparse as sp
n = 5
x = sp.csr_matrix(np.arange(n * 3, dtype=np.float32).reshape(n, 3) % 4)
a = ad.AnnData(X=x, obs=pd.DataFrame({"kind": pd.Categorical(list("ababa"))}, index=[f"c{i}" for i in range(n)]),
               var=pd.DataFrame(index=["g0", "g1", "g2"]))
a.obsm["X_pca"] = np.arange(n * 2, dtype=np.float64).reshape(n, 2) / 3
a.obsm["spatial"] = np.arange(n * 2, dtype=np.int32).reshape(n, 2)
a.obsm["meta"] = pd.DataFrame({"u": np.arange(n)}, index=a.obs_names)
a.write_h5ad(sys.argv[1])
"#,
            &[path.to_str().unwrap()],
        );
    }

    #[test]
    fn reads_dense_obsm_and_names_the_file_and_key_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.h5ad");
        anndata_file(&p);
        let mut keys = obsm_keys(&p).unwrap();
        keys.sort();
        assert_eq!(keys, ["X_pca", "meta", "spatial"]);
        let (n, d, v) = read_obsm(&p, "X_pca").unwrap();
        assert_eq!((n, d), (5, 2));
        let expected: Vec<f32> = (0..10).map(|i| (i as f64 / 3.0) as f32).collect();
        assert_eq!(v, expected);
        assert_eq!(read_obsm(&p, "spatial").unwrap().2, (0..10).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(ObsmReader::open(&p, "X_pca").unwrap().read_rows(3..5).unwrap(), expected[6..]);

        let missing = read_obsm(&p, "X_umap").unwrap_err().to_string();
        assert!(missing.contains("a.h5ad") && missing.contains("X_umap") && missing.contains("X_pca"), "{missing}");
        let frame = read_obsm(&p, "meta").unwrap_err().to_string();
        assert!(frame.contains("obsm/meta") && frame.contains("dataframe"), "{frame}");
    }

    #[test]
    fn a_copy_keeps_obs_var_x_and_dense_obsm_and_adds_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.h5ad"), dir.path().join("b.h5ad"));
        anndata_file(&a);
        let new: Vec<f32> = (0..15).map(|i| i as f32 * 0.5).collect();
        // X_pca replaced by a 3-wide array; spatial kept; the dataframe left out with a warning.
        let warnings = write_h5ad_with_obsm(&a, &b, &[("X_new", 3, &new), ("X_pca", 3, &new)]).unwrap();
        assert!(warnings.iter().any(|w| w.starts_with("obsm/meta: not copied")), "{warnings:?}");
        let out = run_python(
            r#"
import sys, anndata as ad, numpy as np
a, b = ad.read_h5ad(sys.argv[1]), ad.read_h5ad(sys.argv[2])
assert (a.obs_names == b.obs_names).all() and (a.var_names == b.var_names).all()
assert list(b.obs["kind"]) == list(a.obs["kind"])
assert (a.X.toarray() == b.X.toarray()).all()
assert (b.obsm["spatial"] == a.obsm["spatial"]).all()
assert b.obsm["X_new"].dtype == np.float32 and b.obsm["X_new"].shape == (5, 3)
assert (b.obsm["X_pca"] == b.obsm["X_new"]).all()
print(sorted(b.obsm.keys()), float(b.obsm["X_new"][4, 2]))
"#,
            &[a.to_str().unwrap(), b.to_str().unwrap()],
        );
        assert_eq!(out.trim(), "['X_new', 'X_pca', 'spatial'] 7.0");
        let wrong = write_h5ad_with_obsm(&a, &dir.path().join("c.h5ad"), &[("X_new", 2, &new)]);
        assert!(wrong.is_err());
        assert!(!dir.path().join("c.h5ad").exists(), "nothing half-written");
    }
}
