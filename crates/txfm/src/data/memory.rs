//! A samples × genes matrix already in memory (an AnnData's `X` in a notebook), read in row chunks
//! straight from its buffers: scipy CSR or CSC (`indptr`, `indices`, `data`) or a dense array of
//! any strides, with any of numpy's integer or float element types. Nothing is copied whole: each
//! chunk is gathered from the borrowed buffers as a file reader would read it from disk.

use std::path::PathBuf;

use super::source::{ExpressionSource, SourceMeta};
use super::{CsrChunk, ObsFrame};
use crate::{Error, Result};

/// A borrowed 1-D buffer of numbers, in the element type the caller holds.
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
}

macro_rules! each_values {
    ($v:expr, $s:ident => $e:expr) => {
        match $v {
            Values::F32($s) => $e,
            Values::F64($s) => $e,
            Values::I8($s) => $e,
            Values::I16($s) => $e,
            Values::I32($s) => $e,
            Values::I64($s) => $e,
            Values::U8($s) => $e,
            Values::U16($s) => $e,
            Values::U32($s) => $e,
            Values::U64($s) => $e,
        }
    };
}

impl Values<'_> {
    pub fn len(&self) -> usize {
        each_values!(self, s => s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f32 (the precision every reader hands on).
    #[inline]
    pub fn get_f32(&self, i: usize) -> f32 {
        each_values!(self, s => s[i] as f32)
    }

    /// Element `i` as an index; `None` if negative (a corrupt index buffer).
    #[inline]
    fn get_index(&self, i: usize) -> Option<usize> {
        match self {
            Values::F32(_) | Values::F64(_) => None,
            Values::I8(s) => usize::try_from(s[i]).ok(),
            Values::I16(s) => usize::try_from(s[i]).ok(),
            Values::I32(s) => usize::try_from(s[i]).ok(),
            Values::I64(s) => usize::try_from(s[i]).ok(),
            Values::U8(s) => Some(s[i] as usize),
            Values::U16(s) => Some(s[i] as usize),
            Values::U32(s) => Some(s[i] as usize),
            Values::U64(s) => usize::try_from(s[i]).ok(),
        }
    }

    fn is_integer(&self) -> bool {
        !matches!(self, Values::F32(_) | Values::F64(_))
    }
}

/// The layout of the matrix.
#[derive(Debug, Clone, Copy)]
pub enum MemoryMatrix<'a> {
    /// Compressed sparse rows: row `i`'s entries are `indptr[i]..indptr[i+1]`. `indptr: [n_obs + 1]`
    Csr { indptr: Values<'a>, indices: Values<'a>, data: Values<'a> },
    /// Compressed sparse columns (scipy's `csc_matrix`): column `j`'s entries are
    /// `indptr[j]..indptr[j+1]`. `indptr: [n_vars + 1]`
    Csc { indptr: Values<'a>, indices: Values<'a>, data: Values<'a> },
    /// Dense, element `(i, j)` at `values[offset + i * row_stride + j * col_stride]` (strides in
    /// elements, so C order, Fortran order and views all read in place).
    Dense { values: Values<'a>, row_stride: isize, col_stride: isize, offset: usize },
}

/// An in-memory matrix with its `obs` and `var_names`, streamed like a file.
pub struct MemorySource<'a> {
    meta: SourceMeta,
    /// CSC columns' row indices increase (checked at construction, scipy's `has_sorted_indices`),
    /// which lets a chunk find its rows in each column by bisection.
    matrix: MemoryMatrix<'a>,
}

impl<'a> MemorySource<'a> {
    /// Checks the buffers against the shape (`n_obs` = `obs.n_obs()`, `n_vars` = `var_names.len()`)
    /// once, so reads cannot index out of bounds. `name` stands for the path in messages (e.g.
    /// `AnnData (in memory)`), `matrix_name` for the matrix (`X`, `layers['counts']`).
    pub fn new(name: &str, matrix_name: &str, matrix: MemoryMatrix<'a>, obs: ObsFrame, var_names: Vec<String>) -> Result<Self> {
        let (n_obs, n_vars) = (obs.n_obs(), var_names.len());
        let path = PathBuf::from(name);
        let bad = |message: String| Error::format(&path, format!("{matrix_name}: {message}"));
        let mut sorted_columns = true;
        match matrix {
            MemoryMatrix::Csr { indptr, indices, data } | MemoryMatrix::Csc { indptr, indices, data } => {
                let csr = matches!(matrix, MemoryMatrix::Csr { .. });
                let (n_major, n_minor) = if csr { (n_obs, n_vars) } else { (n_vars, n_obs) };
                if !indptr.is_integer() || !indices.is_integer() {
                    return Err(bad("indptr and indices must be integer arrays".into()));
                }
                if indptr.len() != n_major + 1 {
                    return Err(bad(format!("indptr has {} entries; a {n_obs} × {n_vars} matrix needs {}", indptr.len(), n_major + 1)));
                }
                if indices.len() != data.len() {
                    return Err(bad(format!("indices ({}) and data ({}) differ in length", indices.len(), data.len())));
                }
                let mut prev = 0usize;
                for k in 0..=n_major {
                    let p = indptr.get_index(k).ok_or_else(|| bad(format!("indptr[{k}] is negative")))?;
                    if p < prev || p > indices.len() || (k == 0 && p != 0) {
                        return Err(bad(format!("indptr is not a valid pointer array at entry {k} ({p})")));
                    }
                    if k > 0 {
                        let mut last = None;
                        for e in prev..p {
                            let i = indices.get_index(e).filter(|&i| i < n_minor).ok_or_else(|| {
                                bad(format!("index {} at entry {e} is outside 0..{n_minor}", indices.get_f32(e)))
                            })?;
                            if last.is_some_and(|l| i <= l) {
                                if csr {
                                    // Rows must come out with increasing columns; an unsorted row
                                    // is rare (scipy sorts on most operations), so refuse it
                                    // rather than sort every row of every chunk.
                                    return Err(bad(format!(
                                        "row {} has unsorted or duplicate column indices (in Python: X.sort_indices(); X.sum_duplicates())",
                                        k - 1
                                    )));
                                }
                                sorted_columns = false;
                            }
                            last = Some(i);
                        }
                    }
                    prev = p;
                }
            }
            MemoryMatrix::Dense { values, row_stride, col_stride, offset } => {
                if n_obs > 0 && n_vars > 0 {
                    let far = |n: usize, s: isize| (n as isize - 1) * s;
                    let lo = offset as isize + far(n_obs, row_stride).min(0) + far(n_vars, col_stride).min(0);
                    let hi = offset as isize + far(n_obs, row_stride).max(0) + far(n_vars, col_stride).max(0);
                    if lo < 0 || hi >= values.len() as isize {
                        return Err(bad(format!("a dense buffer of {} elements cannot hold {n_obs} × {n_vars} at these strides", values.len())));
                    }
                }
            }
        }
        if matches!(matrix, MemoryMatrix::Csc { .. }) && !sorted_columns {
            return Err(bad("columns have unsorted or duplicate row indices (in Python: X.sort_indices(); X.sum_duplicates())".into()));
        }
        let meta = SourceMeta { path, matrix_name: matrix_name.to_string(), var_names, obs };
        Ok(MemorySource { meta, matrix })
    }
}

impl ExpressionSource for MemorySource<'_> {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }

    fn read_range(&mut self, start: usize, end: usize) -> Result<CsrChunk> {
        let n_vars = self.meta.var_names.len();
        let mut chunk = CsrChunk::new(start, n_vars);
        match self.matrix {
            MemoryMatrix::Csr { indptr, indices, data } => {
                for i in start..end {
                    let (a, b) = (indptr.get_index(i).unwrap_or(0), indptr.get_index(i + 1).unwrap_or(0));
                    chunk.push_row((a..b).map(|e| (indices.get_index(e).unwrap_or(0) as u32, data.get_f32(e))));
                }
            }
            MemoryMatrix::Csc { indptr, indices, data } => {
                // Each column's entries for rows start..end, found by bisection, bucketed by row;
                // visiting columns in order leaves every row's columns increasing.
                let mut per_row: Vec<Vec<(u32, f32)>> = vec![Vec::new(); end - start];
                for j in 0..n_vars {
                    let (a, b) = (indptr.get_index(j).unwrap_or(0), indptr.get_index(j + 1).unwrap_or(0));
                    let row_at = |e: usize| indices.get_index(e).unwrap_or(0);
                    let first = a + partition_point(b - a, |k| row_at(a + k) < start);
                    for e in first..b {
                        let i = row_at(e);
                        if i >= end {
                            break;
                        }
                        per_row[i - start].push((j as u32, data.get_f32(e)));
                    }
                }
                for row in per_row {
                    chunk.push_row(row);
                }
            }
            MemoryMatrix::Dense { values, row_stride, col_stride, offset } => {
                for i in start..end {
                    let base = offset as isize + i as isize * row_stride;
                    chunk.push_row((0..n_vars).map(|j| (j as u32, values.get_f32((base + j as isize * col_stride) as usize))));
                }
            }
        }
        Ok(chunk)
    }
}

/// The first `k` in `0..n` where `pred(k)` is false (`pred` true then false over `0..n`).
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) { lo = mid + 1 } else { hi = mid }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(n: usize) -> ObsFrame {
        ObsFrame { names: (0..n).map(|i| format!("c{i}")).collect(), columns: vec![] }
    }

    fn genes(n: usize) -> Vec<String> {
        (0..n).map(|j| format!("g{j}")).collect()
    }

    /// A 4 × 3 matrix with an empty row and an empty column.
    const DENSE: [f32; 12] = [0., 2., 0., 1., 0., 3., 0., 0., 0., 5., 0., 7.];

    #[test]
    fn csr_csc_and_dense_read_the_same_rows() {
        let csr_ptr = [0i64, 1, 3, 3, 5];
        let csr_idx = [1i32, 0, 2, 0, 2];
        let csr_val = [2.0f64, 1., 3., 5., 7.];
        let csc_ptr = [0u32, 2, 3, 5];
        let csc_idx = [1i64, 3, 0, 1, 3];
        let csc_val = [1i32, 5, 2, 3, 7];
        let fortran: Vec<f32> = (0..3).flat_map(|j| (0..4).map(move |i| DENSE[i * 3 + j])).collect();
        let sources = [
            MemoryMatrix::Csr { indptr: Values::I64(&csr_ptr), indices: Values::I32(&csr_idx), data: Values::F64(&csr_val) },
            MemoryMatrix::Csc { indptr: Values::U32(&csc_ptr), indices: Values::I64(&csc_idx), data: Values::I32(&csc_val) },
            MemoryMatrix::Dense { values: Values::F32(&DENSE), row_stride: 3, col_stride: 1, offset: 0 },
            MemoryMatrix::Dense { values: Values::F32(&fortran), row_stride: 1, col_stride: 4, offset: 0 },
        ];
        for m in sources {
            let mut src = MemorySource::new("mem", "X", m, obs(4), genes(3)).unwrap();
            let all = src.read_rows(0, 4).unwrap();
            assert_eq!(all.to_dense(), DENSE.to_vec(), "{m:?}");
            let part = src.read_rows(1, 3).unwrap();
            assert_eq!(part.row_start, 1);
            assert_eq!(part.to_dense(), DENSE[3..9].to_vec(), "{m:?}");
            assert_eq!(part.nnz(), 2);
        }
    }

    #[test]
    fn inconsistent_buffers_are_refused_naming_the_matrix() {
        let ptr = [0i32, 1, 2];
        let idx = [0i32, 5];
        let val = [1.0f32, 1.0];
        let m = MemoryMatrix::Csr { indptr: Values::I32(&ptr), indices: Values::I32(&idx), data: Values::F32(&val) };
        let e = MemorySource::new("AnnData (in memory)", "X", m, obs(2), genes(3)).err().unwrap().to_string();
        assert!(e.contains("AnnData (in memory): X: index 5"), "{e}");
        let m = MemoryMatrix::Csr { indptr: Values::I32(&ptr), indices: Values::I32(&idx), data: Values::F32(&val) };
        let e = MemorySource::new("mem", "X", m, obs(3), genes(9)).err().unwrap().to_string();
        assert!(e.contains("indptr has 3 entries"), "{e}");
        let unsorted = [1i32, 0];
        let ptr2 = [0i32, 2, 2];
        let m = MemoryMatrix::Csr { indptr: Values::I32(&ptr2), indices: Values::I32(&unsorted), data: Values::F32(&val) };
        let e = MemorySource::new("mem", "X", m, obs(2), genes(3)).err().unwrap().to_string();
        assert!(e.contains("sort_indices"), "{e}");
        let m = MemoryMatrix::Dense { values: Values::F32(&DENSE), row_stride: 3, col_stride: 1, offset: 1 };
        assert!(MemorySource::new("mem", "X", m, obs(4), genes(3)).is_err());
    }
}
