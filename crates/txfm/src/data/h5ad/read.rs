//! [`H5adSource`]: one matrix of an `.h5ad` file streamed in row chunks, with `obs` and
//! `var_names` read up front. Only the rows asked for are read: a CSR chunk is one hyperslab per
//! array (`indptr`, `indices`, `data`), a dense chunk a block of rows; CSC is transposed once
//! (see [`super::csc`]).

use std::ops::Range;
use std::path::Path;

use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5::{Dataset, File, LocationType};

use super::csc::{CscConfig, TransposedCsc, check_ptr};
use super::frame::read_frame;
use super::hdf::{self, At};
use crate::data::{CsrChunk, ExpressionSource, ObsColumn, ObsFrame, SourceMeta, SourceOptions};
use crate::{Error, Result};

/// HDF5's chunk cache is turned off: a cached chunk is copied twice (file to cache to buffer), which
/// costs uncompressed matrices (anndata's default) about a fifth of their read speed, while the
/// only chunks read twice without it are the two a chunk boundary splits between `read_rows` calls,
/// cheap at the tens-of-KiB chunks h5py picks for compressed arrays.
const CHUNK_CACHE_BYTES: usize = 0;
const CHUNK_CACHE_SLOTS: usize = 521;

/// Values per hyperslab when reading a dense matrix, so a chunk of many rows of a wide matrix is
/// never materialised dense at once (2^22 `f32` = 16 MiB).
const DENSE_BLOCK_VALUES: usize = 1 << 22;

/// How the selected matrix is stored, and so how rows are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixLayout {
    /// Compressed sparse rows (`csr_matrix`).
    Csr,
    /// A dense 2-D dataset; zeros are dropped as rows are read.
    Dense,
    /// Compressed sparse columns (`csc_matrix`), transposed once in memory.
    CscInMemory,
    /// Compressed sparse columns, transposed once into a temporary file (see [`CscConfig`]).
    CscSpilled,
}

/// The three arrays of a sparse matrix group.
pub(super) struct Sparse {
    pub(super) indptr: Dataset,
    pub(super) indices: Dataset,
    pub(super) data: Dataset,
}

enum Matrix {
    Csr(Sparse),
    Dense(Dataset),
    Csc(TransposedCsc),
}

/// The stored layout of a matrix element before anything is read from it.
enum Stored {
    Csr(Sparse),
    Csc(Sparse),
    Dense(Dataset),
}

/// An `.h5ad` matrix (`X`, `raw/X` or `layers/<name>`) as an [`ExpressionSource`].
///
/// The file is opened without HDF5's file lock: a lock taken by one process is inherited by every
/// child it spawns (HDF5 does not open files close-on-exec) and outlives its own close, so a
/// file just written could not be reopened while, say, a Python subprocess runs. [`H5adWriter`]
/// never writes at the final path, so there is no half-written file for the lock to guard.
///
/// [`H5adWriter`]: super::H5adWriter
pub struct H5adSource {
    meta: SourceMeta,
    matrix: Matrix,
    warnings: Vec<String>,
}

impl H5adSource {
    /// Opens `path`, selecting the matrix by `opts.layer` and gene IDs by `opts.var_column`.
    /// Reads `obs` and `var` whole; the matrix is read by [`ExpressionSource::read_rows`].
    pub fn open(path: &Path, opts: &SourceOptions) -> Result<Self> {
        Self::open_with(path, opts, &CscConfig::default())
    }

    /// [`H5adSource::open`] with control over how a CSC matrix is transposed.
    pub fn open_with(path: &Path, opts: &SourceOptions, csc: &CscConfig) -> Result<Self> {
        let file = File::with_options()
            .with_fapl(|p| p.file_locking(false).chunk_cache(CHUNK_CACHE_SLOTS, CHUNK_CACHE_BYTES, 1.0))
            .open(path)
            .map_err(|e| Error::format(path, format!("cannot open as HDF5 (an .h5ad file is HDF5): {e}")))?;
        let (matrix_name, var_frame) = select_matrix(&file, opts.layer.as_deref(), path)?;
        let (stored, n_obs, n_vars) = open_matrix(&file, &matrix_name, path)?;

        let (var, var_warnings) = read_frame(&file, &var_frame, path)?;
        let var_names = match &opts.var_column {
            None => var.names,
            Some(key) => names_from_column(&var, key, &var_frame, &var_warnings, path)?,
        };
        if var_names.len() != n_vars {
            return Err(Error::format(
                path,
                format!("{var_frame} has {} rows but {matrix_name} has {n_vars} columns", var_names.len()),
            ));
        }
        let (obs, warnings) = read_frame(&file, "obs", path)?;
        if obs.n_obs() != n_obs {
            return Err(Error::format(path, format!("obs has {} rows but {matrix_name} has {n_obs}", obs.n_obs())));
        }

        let matrix = match stored {
            Stored::Csr(m) => Matrix::Csr(m),
            Stored::Dense(d) => Matrix::Dense(d),
            Stored::Csc(m) => Matrix::Csc(TransposedCsc::build(&m, n_obs, csc, path, &matrix_name)?),
        };
        Ok(H5adSource { meta: SourceMeta { path: path.to_path_buf(), matrix_name, var_names, obs }, matrix, warnings })
    }

    pub fn layout(&self) -> MatrixLayout {
        match &self.matrix {
            Matrix::Csr(_) => MatrixLayout::Csr,
            Matrix::Dense(_) => MatrixLayout::Dense,
            Matrix::Csc(t) if t.is_spilled() => MatrixLayout::CscSpilled,
            Matrix::Csc(_) => MatrixLayout::CscInMemory,
        }
    }

    /// One line per `obs` column that was skipped, saying why (`obs/x: skipped: ...`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl ExpressionSource for H5adSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }

    fn read_range(&mut self, start: usize, end: usize) -> Result<CsrChunk> {
        let n_vars = self.meta.var_names.len();
        let (path, name) = (&self.meta.path, &self.meta.matrix_name);
        let (ptr, idx, val) = match &mut self.matrix {
            Matrix::Dense(ds) => {
                let mut chunk = CsrChunk::new(start, n_vars);
                read_dense(ds, &mut chunk, start, end, path, name)?;
                return Ok(chunk);
            }
            Matrix::Csc(t) => t.read_rows(start, end, path)?,
            Matrix::Csr(m) => read_csr(m, start, end, path, name)?,
        };
        into_chunk(start, n_vars, ptr, idx, val).map_err(|why| Error::format(path, format!("{name}: {why}")))
    }
}

/// Rows `start..end` of a CSR matrix: one hyperslab read per array, `indptr` rebased to 0.
fn read_csr(m: &Sparse, start: usize, end: usize, path: &Path, name: &str) -> Result<(Vec<u64>, Vec<u32>, Vec<f32>)> {
    let mut ptr = m
        .indptr
        .read_slice_1d::<u64, _>(start..end + 1)
        .at(path, &format!("{name}/indptr"))?
        .into_raw_vec_and_offset()
        .0;
    let (a, b) = (ptr[0], ptr[ptr.len() - 1]);
    if a > b || b > m.indices.size() as u64 || ptr.windows(2).any(|w| w[0] > w[1]) {
        return Err(Error::format(
            path,
            format!(
                "{name}/indptr[{start}..={end}] is not a valid pointer range (from {a} to {b} of {} stored values)",
                m.indices.size()
            ),
        ));
    }
    let range = a as usize..b as usize;
    let idx = read_indices(&m.indices, range.clone()).at(path, &format!("{name}/indices"))?;
    let val = read_values(&m.data, range).at(path, &format!("{name}/data"))?;
    ptr.iter_mut().for_each(|p| *p -= a);
    Ok((ptr, idx, val))
}

// The common stored types are read as stored and converted here: HDF5's own conversion passes
// through an extra buffer, which made reading a 30 M-value int32 CSR about 15% slower.

fn slice<T: hdf5::H5Type>(ds: &Dataset, range: Range<usize>) -> hdf5::Result<Vec<T>> {
    Ok(ds.read_slice_1d::<T, _>(range)?.into_raw_vec_and_offset().0)
}

/// `ds[range]` as column or row indices (an index beyond `u32` becomes `u32::MAX`, out of range).
pub(super) fn read_indices(ds: &Dataset, range: Range<usize>) -> hdf5::Result<Vec<u32>> {
    Ok(match hdf::descriptor(ds)? {
        TypeDescriptor::Integer(IntSize::U4) => {
            slice::<i32>(ds, range)?.into_iter().map(|j| u32::try_from(j).unwrap_or(u32::MAX)).collect()
        }
        TypeDescriptor::Integer(IntSize::U8) => {
            slice::<i64>(ds, range)?.into_iter().map(|j| u32::try_from(j).unwrap_or(u32::MAX)).collect()
        }
        _ => slice::<u32>(ds, range)?,
    })
}

/// `ds[range]` as `f32` values.
pub(super) fn read_values(ds: &Dataset, range: Range<usize>) -> hdf5::Result<Vec<f32>> {
    Ok(match hdf::descriptor(ds)? {
        TypeDescriptor::Integer(IntSize::U4) => slice::<i32>(ds, range)?.into_iter().map(|v| v as f32).collect(),
        TypeDescriptor::Integer(IntSize::U8) => slice::<i64>(ds, range)?.into_iter().map(|v| v as f32).collect(),
        TypeDescriptor::Float(FloatSize::U8) => slice::<f64>(ds, range)?.into_iter().map(|v| v as f32).collect(),
        _ => slice::<f32>(ds, range)?,
    })
}

/// Appends rows `start..end` of a dense matrix to `chunk`, reading blocks of at most
/// [`DENSE_BLOCK_VALUES`].
fn read_dense(ds: &Dataset, chunk: &mut CsrChunk, start: usize, end: usize, path: &Path, name: &str) -> Result<()> {
    let rows_per_block = (DENSE_BLOCK_VALUES / chunk.n_cols.max(1)).max(1);
    for a in (start..end).step_by(rows_per_block) {
        let b = (a + rows_per_block).min(end);
        let block = ds.read_slice_2d::<f32, _>((a..b, ..)).at(path, name)?;
        for row in block.rows() {
            chunk.push_row(row.iter().enumerate().map(|(j, &v)| (j as u32, v)));
        }
    }
    Ok(())
}

/// Rows read as CSR arrays (`ptr: [n_rows + 1]` from 0 indexing `idx`/`val`) as a chunk with
/// zeros dropped and each row's columns increasing; duplicate columns are summed, as scipy does.
/// Files written by anndata need none of that, so the arrays are then moved in without a copy.
fn into_chunk(
    row_start: usize,
    n_cols: usize,
    ptr: Vec<u64>,
    idx: Vec<u32>,
    val: Vec<f32>,
) -> Result<CsrChunk, String> {
    let mut clean = true;
    for (i, w) in ptr.windows(2).enumerate() {
        let row = &idx[w[0] as usize..w[1] as usize];
        if let Some(j) = row.iter().find(|&&j| j as usize >= n_cols) {
            return Err(format!("row {}: column index {j} out of range for {n_cols} columns", row_start + i));
        }
        clean &= row.windows(2).all(|p| p[0] < p[1]);
    }
    if clean && !val.contains(&0.0) {
        return Ok(CsrChunk { row_start, n_cols, indptr: ptr, indices: idx, data: val });
    }
    let mut chunk = CsrChunk::new(row_start, n_cols);
    let mut row = Vec::new();
    for w in ptr.windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        row.clear();
        row.extend(idx[a..b].iter().copied().zip(val[a..b].iter().copied()));
        row.sort_by_key(|&(j, _)| j);
        let mut merged: Vec<(u32, f32)> = Vec::with_capacity(row.len());
        for &(j, v) in &row {
            match merged.last_mut() {
                Some(last) if last.0 == j => last.1 += v,
                _ => merged.push((j, v)),
            }
        }
        chunk.push_row(merged);
    }
    Ok(chunk)
}

/// The matrix element for `layer` and the dataframe holding its `var`.
fn select_matrix(file: &File, layer: Option<&str>, path: &Path) -> Result<(String, String)> {
    let top = file.member_names().at(path, "/")?;
    if !["X", "obs", "var"].iter().any(|k| top.iter().any(|t| t == k)) {
        return Err(Error::format(
            path,
            format!("not an AnnData file: no X, obs or var at the top level (found: {})", top.join(", ")),
        ));
    }
    let missing = |what: &str| {
        Error::format(
            path,
            format!("no {what} in this file; available matrices: {}", available_matrices(file).join(", ")),
        )
    };
    match layer {
        None | Some("X") => match hdf::member_kind(file, "X") {
            Some(_) => Ok(("X".into(), "var".into())),
            None => Err(missing("X matrix")),
        },
        Some("raw") => {
            if hdf::exists(file, "raw/X") {
                Ok(("raw/X".into(), "raw/var".into()))
            } else if hdf::exists(file, "raw.X") {
                // anndata < 0.7 wrote `raw` as siblings `raw.X` / `raw.var`.
                Ok(("raw.X".into(), "raw.var".into()))
            } else {
                Err(missing("raw matrix (raw/X)"))
            }
        }
        Some(name) => {
            let element = format!("layers/{name}");
            if hdf::exists(file, &element) {
                Ok((element, "var".into()))
            } else {
                Err(missing(&format!("layer `{name}` ({element})")))
            }
        }
    }
}

/// What `SourceOptions.layer` may name in `file`: `X`, `raw`, then each layer.
fn available_matrices(file: &File) -> Vec<String> {
    let mut out = Vec::new();
    if hdf::exists(file, "X") {
        out.push("X".to_string());
    }
    if hdf::exists(file, "raw/X") || hdf::exists(file, "raw.X") {
        out.push("raw".to_string());
    }
    if let Ok(layers) = file.group("layers") {
        out.extend(layers.member_names().unwrap_or_default());
    }
    if out.is_empty() {
        out.push("none".to_string());
    }
    out
}

/// Opens the matrix element `name` and reads its shape `(n_obs, n_vars)`, checking the arrays
/// agree with it.
fn open_matrix(file: &File, name: &str, path: &Path) -> Result<(Stored, usize, usize)> {
    let bad = |msg: String| Error::format(path, format!("{name}: {msg}"));
    if file.loc_type_by_name(name).at(path, name)? == LocationType::Dataset {
        let ds = file.dataset(name).at(path, name)?;
        let shape = ds.shape();
        if shape.len() != 2 {
            return Err(bad(format!("a {}-dimensional dataset, not a matrix", shape.len())));
        }
        let ty = hdf::descriptor(&ds).at(path, name)?;
        if !hdf::is_numeric(&ty) {
            return Err(bad(format!("element type {ty} is not numeric")));
        }
        return Ok((Stored::Dense(ds), shape[0], shape[1]));
    }

    let group = file.group(name).at(path, name)?;
    let format = match hdf::encoding_type(&group) {
        Some(e) => e,
        // anndata < 0.7 and h5sparse mark sparse groups with `h5sparse_format` = csr/csc.
        None => match hdf::str_attr(&group, "h5sparse_format") {
            Some(f) => format!("{f}_matrix"),
            None => return Err(bad("a group without an anndata matrix encoding (encoding-type)".into())),
        },
    };
    let is_csr = match format.as_str() {
        "csr_matrix" => true,
        "csc_matrix" => false,
        other => {
            return Err(bad(format!(
                "encoding `{other}` is not a supported matrix (csr_matrix, csc_matrix or a dense array)"
            )));
        }
    };
    let shape = ["shape", "h5sparse_shape"]
        .iter()
        .find_map(|a| group.attr(a).ok()?.read_raw::<u64>().ok())
        .filter(|s| s.len() == 2)
        .ok_or_else(|| bad("sparse matrix without a 2-element `shape` attribute".into()))?;
    let (n_obs, n_vars) = (shape[0] as usize, shape[1] as usize);

    let part = |key: &str, want: fn(&TypeDescriptor) -> bool, kind: &str| -> Result<Dataset> {
        let what = format!("{name}/{key}");
        let ds = group.dataset(key).map_err(|_| bad(format!("sparse matrix without `{key}`")))?;
        let ty = hdf::descriptor(&ds).at(path, &what)?;
        if ds.ndim() != 1 || !want(&ty) {
            return Err(bad(format!("`{key}` must be a 1-D {kind} array, found {}-D {ty}", ds.ndim())));
        }
        Ok(ds)
    };
    let is_int = |t: &TypeDescriptor| matches!(t, TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_));
    let m = Sparse {
        indptr: part("indptr", is_int, "integer")?,
        indices: part("indices", is_int, "integer")?,
        data: part("data", hdf::is_numeric, "numeric")?,
    };
    let major = if is_csr { n_obs } else { n_vars };
    if m.indptr.size() != major + 1 {
        return Err(bad(format!(
            "indptr has {} entries, expected {} for shape {n_obs} × {n_vars}",
            m.indptr.size(),
            major + 1
        )));
    }
    if m.indices.size() != m.data.size() {
        return Err(bad(format!("indices has {} entries but data {}", m.indices.size(), m.data.size())));
    }
    if is_csr {
        // Only the ends here: the rest is checked chunk by chunk, never read whole.
        let ends = m
            .indptr
            .read_slice_1d::<u64, _>(0..1)
            .and_then(|first| Ok([first[0], m.indptr.read_slice_1d::<u64, _>(n_obs..n_obs + 1)?[0]]));
        check_ptr(&ends.at(path, &format!("{name}/indptr"))?, m.indices.size(), path, name)?;
        Ok((Stored::Csr(m), n_obs, n_vars))
    } else {
        Ok((Stored::Csc(m), n_obs, n_vars))
    }
}

/// Gene identifiers from the var column `key` (text or categorical).
fn names_from_column(var: &ObsFrame, key: &str, frame: &str, warnings: &[String], path: &Path) -> Result<Vec<String>> {
    let Some(col) = var.column(key) else {
        let prefix = format!("{frame}/{key}:");
        return Err(Error::format(
            path,
            match warnings.iter().find(|w| w.starts_with(&prefix)) {
                Some(why) => format!("var column `{key}` cannot be used: {why}"),
                None => format!("no var column `{key}` in {frame}; its columns: {}", var.keys().join(", ")),
            },
        ));
    };
    if !matches!(col, ObsColumn::Str(_) | ObsColumn::Categorical { .. }) {
        return Err(Error::format(path, format!("var column `{key}` holds numbers, not gene identifiers")));
    }
    (0..col.len())
        .map(|i| {
            col.get_str(i).ok_or_else(|| {
                Error::format(path, format!("var column `{key}` is missing for gene {i} ({})", var.names[i]))
            })
        })
        .collect()
}

/// A whole cells × columns matrix stored in `obsm/<key>` (a guide-count matrix, say): a dense
/// array, a csr/csc matrix, or a dataframe of numeric columns. Returns its rows and, for a
/// dataframe, its column names. Meant for small side matrices: it is read whole.
pub fn read_obsm_matrix(path: &Path, key: &str) -> Result<(CsrChunk, Option<Vec<String>>)> {
    let file = hdf::open_file(path)?;
    let name = format!("obsm/{key}");
    if !hdf::exists(&file, &name) {
        let keys = super::obsm::obsm_keys(path)?;
        return Err(Error::format(
            path,
            format!("no obsm['{key}'] (obsm holds: {})", if keys.is_empty() { "nothing".into() } else { keys.join(", ") }),
        ));
    }
    let is_frame = file.group(&name).ok().and_then(|g| hdf::encoding_type(&g)).is_some_and(|e| e == "dataframe");
    if is_frame {
        let (frame, _) = read_frame(&file, &name, path)?;
        let mut chunk = CsrChunk::new(0, frame.columns.len());
        let mut names = Vec::new();
        let mut columns: Vec<Vec<f64>> = Vec::new();
        for (col_name, col) in &frame.columns {
            let values = match col {
                ObsColumn::Float(v) => v.clone(),
                ObsColumn::Int(v) => v.iter().map(|&x| x as f64).collect(),
                ObsColumn::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
                _ => return Err(Error::format(path, format!("{name}/{col_name}: not a numeric column"))),
            };
            names.push(col_name.clone());
            columns.push(values);
        }
        for i in 0..frame.n_obs() {
            chunk.push_row(columns.iter().enumerate().map(|(j, c)| (j as u32, c[i] as f32)));
        }
        return Ok((chunk, Some(names)));
    }
    let (stored, n_obs, n_vars) = open_matrix(&file, &name, path)?;
    let (ptr, idx, val) = match stored {
        Stored::Dense(ds) => {
            let mut chunk = CsrChunk::new(0, n_vars);
            read_dense(&ds, &mut chunk, 0, n_obs, path, &name)?;
            return Ok((chunk, None));
        }
        Stored::Csr(m) => read_csr(&m, 0, n_obs, path, &name)?,
        Stored::Csc(m) => TransposedCsc::build(&m, n_obs, &CscConfig::default(), path, &name)?.read_rows(0, n_obs, path)?,
    };
    let chunk = into_chunk(0, n_vars, ptr, idx, val).map_err(|why| Error::format(path, format!("{name}: {why}")))?;
    Ok((chunk, None))
}

/// The string array `uns/<key>` (e.g. the guide names of an obsm guide-count matrix).
pub fn read_uns_strings(path: &Path, key: &str) -> Result<Vec<String>> {
    let file = hdf::open_file(path)?;
    let name = format!("uns/{key}");
    let ds = file.dataset(&name).map_err(|_| Error::format(path, format!("no string array {name}")))?;
    if !hdf::is_string(&hdf::descriptor(&ds).at(path, &name)?) || ds.ndim() != 1 {
        return Err(Error::format(path, format!("{name} is not a 1-D string array")));
    }
    hdf::read_strings(&ds).at(path, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_rows_are_moved_in_and_others_repaired() {
        let clean = into_chunk(4, 5, vec![0, 2, 2, 3], vec![1, 4, 0], vec![2.0, 1.0, 7.0]).unwrap();
        assert_eq!((clean.row_start, clean.n_rows()), (4, 3));
        assert_eq!(clean.to_dense(), [0., 2., 0., 0., 1., 0., 0., 0., 0., 0., 7., 0., 0., 0., 0.]);

        // Unsorted columns, a duplicate (summed) and explicit zeros, as scipy allows.
        let messy =
            into_chunk(0, 5, vec![0, 4, 6], vec![3, 1, 3, 2, 0, 4], vec![1.0, 5.0, 2.0, 0.0, 0.0, 9.0]).unwrap();
        assert_eq!(messy.row(0), (&[1u32, 3][..], &[5.0f32, 3.0][..]));
        assert_eq!(messy.row(1), (&[4u32][..], &[9.0f32][..]));

        let err = into_chunk(10, 3, vec![0, 1, 2], vec![0, 3], vec![1.0, 1.0]).unwrap_err();
        assert_eq!(err, "row 11: column index 3 out of range for 3 columns");
    }
}
