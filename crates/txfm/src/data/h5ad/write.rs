//! [`H5adWriter`]: streams rows of `X` (CSR) and `obsm` embeddings into a new `.h5ad` in the
//! layout anndata 0.12 writes, then adds `obs` and renames the finished file into place, so
//! `path` never holds a half-written file.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, File, Group, H5Type};
use ndarray::ArrayView2;
use tempfile::TempPath;

use super::hdf::{At, set_encoding, set_str_attr};
use crate::data::{CsrChunk, ObsColumn, ObsFrame};
use crate::{Error, Result};

/// Chunk length of the growing `X` arrays (256 KiB of `f32`): long enough for fast appends, short
/// enough that a small file stays small (HDF5 allocates whole chunks).
const X_CHUNK: usize = 1 << 16;

/// Values per chunk of a growing `obsm` array.
const OBSM_CHUNK_VALUES: usize = 1 << 16;

/// Writes an `.h5ad`: `var` at [`H5adWriter::create`], rows of `X` and `obsm` as they come, `obs`
/// at [`H5adWriter::finish`]. Dropping it unfinished deletes the partial file.
pub struct H5adWriter {
    path: PathBuf,
    file: File,
    n_vars: usize,
    x: Option<XArrays>,
    obsm: Vec<Obsm>,
    /// The file being written, beside `path`; deleted on drop unless `finish` renamed it.
    tmp: TempPath,
}

/// The growing `X` group: `data: [nnz] f32`, `indices: [nnz] i32` (`i64` past 2^31 genes),
/// `indptr: [n_rows + 1] i64`.
struct XArrays {
    group: Group,
    data: Dataset,
    indices: Dataset,
    indptr: Dataset,
    n_rows: usize,
    nnz: usize,
}

/// A growing `obsm[key]`: `[n_rows, dim] f32`.
struct Obsm {
    key: String,
    ds: Dataset,
    dim: usize,
    n_rows: usize,
}

impl H5adWriter {
    /// Starts writing `path` (into a temporary file beside it, renamed by `finish`, so nothing
    /// half-written is ever left at `path`). `var.names` are var_names; `var.columns` become var
    /// columns.
    pub fn create(path: &Path, var: &ObsFrame) -> Result<Self> {
        let tmp = crate::atomic::temp_file_beside(path)?.into_temp_path();
        check_frame(var, "var", path)?;
        // No HDF5 file lock: see `H5adSource` for why one would outlive this writer.
        let file =
            File::with_options().with_fapl(|p| p.file_locking(false)).create(&tmp).at(path, "creating the file")?;
        write_frame(&file, "var", var).at(path, "var")?;
        dict_group(&file, "obsm").at(path, "obsm")?;
        Ok(H5adWriter { path: path.to_path_buf(), file, n_vars: var.n_obs(), x: None, obsm: Vec::new(), tmp })
    }

    /// The final path (the file appears there at `finish`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends rows to X (CSR, float32, indices int32 or int64 as anndata expects, indptr int64).
    /// Rows must arrive in order; chunk.n_cols must equal n_vars.
    pub fn append_x(&mut self, chunk: &CsrChunk) -> Result<()> {
        let path = &self.path;
        if chunk.n_cols != self.n_vars {
            return Err(Error::format(
                path,
                format!("X: chunk has {} columns but var has {} genes", chunk.n_cols, self.n_vars),
            ));
        }
        let x = match &mut self.x {
            Some(x) => x,
            None => self.x.insert(XArrays::create(&self.file, self.n_vars).at(path, "X")?),
        };
        if chunk.row_start != x.n_rows {
            return Err(Error::format(
                path,
                format!(
                    "X: rows must be appended in order: expected a chunk starting at row {}, got {}",
                    x.n_rows, chunk.row_start
                ),
            ));
        }
        if chunk.indptr.first() != Some(&0) || chunk.indptr.last() != Some(&(chunk.nnz() as u64)) {
            return Err(Error::format(path, "X: chunk indptr does not run from 0 to its number of values"));
        }
        if let Some(j) = chunk.indices.iter().find(|&&j| j as usize >= self.n_vars) {
            return Err(Error::format(path, format!("X: column index {j} out of range for {} genes", self.n_vars)));
        }
        x.append(chunk, self.n_vars).at(path, "X")
    }

    /// Appends `rows.len()/dim` rows to obsm[key] (float32 [n_obs, dim] dense dataset). Streams;
    /// may be called for several keys.
    pub fn append_obsm(&mut self, key: &str, dim: usize, rows: &[f32]) -> Result<()> {
        let path = &self.path;
        let what = format!("obsm/{key}");
        if key.is_empty() || key.contains('/') {
            return Err(Error::format(path, format!("obsm key `{key}` must be non-empty and contain no `/`")));
        }
        if dim == 0 || !rows.len().is_multiple_of(dim) {
            return Err(Error::format(path, format!("{what}: {} values are not rows of width {dim}", rows.len())));
        }
        let i = match self.obsm.iter().position(|o| o.key == key) {
            Some(i) => i,
            None => {
                let chunk_rows = (OBSM_CHUNK_VALUES / dim).max(1);
                let obsm = self.file.group("obsm").at(path, "obsm")?;
                let ds =
                    obsm.new_dataset::<f32>().chunk((chunk_rows, dim)).shape((0.., dim)).create(key).at(path, &what)?;
                set_encoding(&ds, "array", "0.2.0").at(path, &what)?;
                self.obsm.push(Obsm { key: key.to_string(), ds, dim, n_rows: 0 });
                self.obsm.len() - 1
            }
        };
        let o = &mut self.obsm[i];
        if o.dim != dim {
            return Err(Error::format(path, format!("{what}: rows of width {dim} appended to width {}", o.dim)));
        }
        let n = rows.len() / dim;
        let view = ArrayView2::from_shape((n, dim), rows).expect("length checked to be n * dim");
        o.ds.resize((o.n_rows + n, dim))
            .and_then(|()| o.ds.write_slice(view, (o.n_rows..o.n_rows + n, ..)))
            .at(path, &what)?;
        o.n_rows += n;
        Ok(())
    }

    /// Writes obs (names + columns), checks that X (if any rows were appended) and every obsm have
    /// `obs.n_obs()` rows, adds the root attributes and the empty `uns`, `layers`, `obsp`, `varm`
    /// and `varp` groups anndata writes, then renames the file into place. Without appended X rows
    /// the file has no `X`, which anndata reads as `X = None` with `var` intact. A file already at
    /// `path` is replaced.
    pub fn finish(self, obs: &ObsFrame) -> Result<()> {
        let path = &self.path;
        let n = obs.n_obs();
        check_frame(obs, "obs", path)?;
        if let Some(x) = &self.x {
            if x.n_rows != n {
                return Err(Error::format(path, format!("X has {} rows but obs has {n}", x.n_rows)));
            }
            x.group.new_attr_builder().with_data(&[n as i64, self.n_vars as i64]).create("shape").at(path, "X")?;
        }
        if let Some(o) = self.obsm.iter().find(|o| o.n_rows != n) {
            return Err(Error::format(path, format!("obsm/{} has {} rows but obs has {n}", o.key, o.n_rows)));
        }
        write_frame(&self.file, "obs", obs).at(path, "obs")?;
        for name in ["layers", "obsp", "uns", "varm", "varp"] {
            dict_group(&self.file, name).at(path, name)?;
        }
        set_encoding(&self.file, "anndata", "0.1.0").at(path, "/")?;

        // Every handle into the file must be closed before HDF5 really closes it.
        let H5adWriter { path, file, x, obsm, tmp, .. } = self;
        drop((x, obsm));
        file.close().at(&path, "closing the file")?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}

impl XArrays {
    fn create(file: &File, n_vars: usize) -> hdf5::Result<Self> {
        let group = file.create_group("X")?;
        set_encoding(&group, "csr_matrix", "0.1.0")?;
        let data = group.new_dataset::<f32>().chunk(X_CHUNK).shape(0..).create("data")?;
        let indices =
            if i32::try_from(n_vars).is_ok() { group.new_dataset::<i32>() } else { group.new_dataset::<i64>() };
        let indices = indices.chunk(X_CHUNK).shape(0..).create("indices")?;
        let indptr = group.new_dataset::<i64>().chunk(X_CHUNK).shape(1..).create("indptr")?;
        indptr.write_slice(&[0i64], 0..1)?;
        Ok(XArrays { group, data, indices, indptr, n_rows: 0, nnz: 0 })
    }

    fn append(&mut self, chunk: &CsrChunk, n_vars: usize) -> hdf5::Result<()> {
        let (nnz, k) = (self.nnz, chunk.nnz());
        self.data.resize(nnz + k)?;
        self.data.write_slice(&chunk.data, nnz..nnz + k)?;
        self.indices.resize(nnz + k)?;
        if i32::try_from(n_vars).is_ok() {
            let idx: Vec<i32> = chunk.indices.iter().map(|&j| j as i32).collect();
            self.indices.write_slice(&idx, nnz..nnz + k)?;
        } else {
            let idx: Vec<i64> = chunk.indices.iter().map(|&j| j as i64).collect();
            self.indices.write_slice(&idx, nnz..nnz + k)?;
        }
        let (rows, n) = (self.n_rows, chunk.n_rows());
        let ptr: Vec<i64> = chunk.indptr[1..].iter().map(|&p| (nnz as u64 + p) as i64).collect();
        self.indptr.resize(rows + 1 + n)?;
        self.indptr.write_slice(&ptr, rows + 1..rows + 1 + n)?;
        self.n_rows += n;
        self.nnz += k;
        Ok(())
    }
}

/// Every column has one value per name, and no column hides the index.
fn check_frame(frame: &ObsFrame, what: &str, path: &Path) -> Result<()> {
    for (i, (key, col)) in frame.columns.iter().enumerate() {
        if col.len() != frame.n_obs() {
            return Err(Error::format(path, format!("{what}/{key}: {} values for {} rows", col.len(), frame.n_obs())));
        }
        if key == "_index" || key.contains('/') || frame.columns[..i].iter().any(|(k, _)| k == key) {
            return Err(Error::format(
                path,
                format!("{what}: column name `{key}` is reserved, repeated or contains `/`"),
            ));
        }
    }
    Ok(())
}

/// An empty `dict` element (`uns`, `layers`...).
fn dict_group(parent: &Group, name: &str) -> hdf5::Result<Group> {
    let g = parent.create_group(name)?;
    set_encoding(&g, "dict", "0.1.0")?;
    Ok(g)
}

/// A `dataframe` element: the index in `_index`, columns in `column-order`.
fn write_frame(parent: &Group, name: &str, frame: &ObsFrame) -> hdf5::Result<()> {
    let g = parent.create_group(name)?;
    set_encoding(&g, "dataframe", "0.2.0")?;
    set_str_attr(&g, "_index", "_index")?;
    let keys = vlen(frame.columns.iter().map(|(k, _)| k.as_str()))?;
    if keys.is_empty() {
        // As h5py stores pandas' empty column list: a zero-length float array.
        g.new_attr::<f64>().shape(0).create("column-order")?;
    } else {
        g.new_attr_builder().with_data(&keys).create("column-order")?;
    }
    write_strings(&g, "_index", &frame.names)?;
    for (key, col) in &frame.columns {
        match col {
            ObsColumn::Str(v) => write_strings(&g, key, v)?,
            ObsColumn::Float(v) => write_array(&g, key, v)?,
            ObsColumn::Int(v) => write_array(&g, key, v)?,
            ObsColumn::Bool(v) => write_array(&g, key, v)?,
            ObsColumn::Categorical { codes, categories } => write_categorical(&g, key, codes, categories)?,
        }
    }
    Ok(())
}

/// A `categorical` element, codes in the narrowest integer type pandas would use.
fn write_categorical(parent: &Group, key: &str, codes: &[i32], categories: &[String]) -> hdf5::Result<()> {
    let g = parent.create_group(key)?;
    set_encoding(&g, "categorical", "0.2.0")?;
    g.new_attr::<bool>().create("ordered")?.write_scalar(&false)?;
    write_strings(&g, "categories", categories)?;
    if categories.len() < i8::MAX as usize {
        write_array(&g, "codes", &codes.iter().map(|&c| c as i8).collect::<Vec<_>>())
    } else if categories.len() < i16::MAX as usize {
        write_array(&g, "codes", &codes.iter().map(|&c| c as i16).collect::<Vec<_>>())
    } else {
        write_array(&g, "codes", codes)
    }
}

fn write_array<T: H5Type>(parent: &Group, name: &str, values: &[T]) -> hdf5::Result<()> {
    let ds = parent.new_dataset_builder().with_data(values).create(name)?;
    set_encoding(&ds, "array", "0.2.0")
}

/// A `string-array` element (variable-length UTF-8, as anndata writes text).
fn write_strings(parent: &Group, name: &str, values: &[String]) -> hdf5::Result<()> {
    let ds = parent.new_dataset_builder().with_data(&vlen(values.iter().map(String::as_str))?).create(name)?;
    set_encoding(&ds, "string-array", "0.2.0")
}

fn vlen<'a>(values: impl Iterator<Item = &'a str>) -> hdf5::Result<Vec<VarLenUnicode>> {
    values.map(|s| VarLenUnicode::from_str(s).map_err(|e| hdf5::Error::from(format!("text {s:?}: {e}")))).collect()
}
