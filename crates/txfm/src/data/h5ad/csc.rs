//! Rows of a CSC matrix (genes-major, as some tools write `X`) without ever holding it dense or
//! whole: it is transposed once into row order, in memory when small and in an anonymous
//! temporary file otherwise, and rows are then served from there like CSR.
//!
//! The transposition streams in three passes, none holding more than `block_nnz` entries:
//! 1. count each row's entries (reading `indices` only), giving the row-major `indptr`;
//! 2. read column blocks and append each entry to the region of its *row block* (consecutive rows
//!    with at most `block_nnz` entries between them), one contiguous write per block;
//! 3. sort each row block's region by row; the sort is stable and entries arrived in column order,
//!    so columns stay increasing within each row.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::hdf::At;
use super::read::{Sparse, read_indices, read_values};
use crate::{Error, Result};

/// Bytes per stored entry: row (`u32`), column (`u32`), value (`f32`), little-endian.
const RECORD: usize = 12;

/// How [`super::H5adSource`] serves a CSC matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct CscConfig {
    /// Transpose in memory up to this many stored values (12 bytes each, so the default 2^24 is
    /// about 200 MB); beyond it the transposed matrix goes to a temporary file.
    pub max_in_memory_nnz: usize,
    /// Entries read or sorted at once while transposing; bounds its memory (about 30 bytes each).
    pub block_nnz: usize,
    /// Folder for the temporary file; default: the system's (`TMPDIR`, else `/tmp`).
    pub spill_dir: Option<PathBuf>,
}

impl Default for CscConfig {
    fn default() -> Self {
        CscConfig { max_in_memory_nnz: 1 << 24, block_nnz: 1 << 22, spill_dir: None }
    }
}

trait Store: Read + Write + Seek + Send {}
impl<T: Read + Write + Seek + Send> Store for T {}

/// A CSC matrix laid out row-major in `store`: row `i` is records `indptr[i]..indptr[i + 1]`.
pub(super) struct TransposedCsc {
    /// `[n_obs + 1]`
    indptr: Vec<u64>,
    store: Box<dyn Store>,
    /// Where the store lives, for messages: the temporary folder, or `None` in memory.
    spill_dir: Option<PathBuf>,
}

impl TransposedCsc {
    /// Transposes `m` (`indptr: [n_vars + 1]` over columns, `indices` = row numbers).
    pub(super) fn build(m: &Sparse, n_obs: usize, cfg: &CscConfig, path: &Path, name: &str) -> Result<Self> {
        let col_ptr = m.indptr.read_raw::<u64>().at(path, &format!("{name}/indptr"))?;
        check_ptr(&col_ptr, m.indices.size(), path, name)?;
        let nnz = *col_ptr.last().unwrap_or(&0) as usize;
        let block = cfg.block_nnz.max(1) as u64;
        let col_blocks = blocks(&col_ptr, block);
        let read_rows = |a: u64, b: u64| {
            let rows = read_indices(&m.indices, a as usize..b as usize).at(path, &format!("{name}/indices"))?;
            match rows.iter().find(|&&r| r as usize >= n_obs) {
                Some(r) => Err(Error::format(path, format!("{name}: row index {r} out of range for {n_obs} rows"))),
                None => Ok(rows),
            }
        };

        // Pass 1: entries per row.
        let mut indptr = vec![0u64; n_obs + 1];
        for &(c0, c1) in &col_blocks {
            for r in read_rows(col_ptr[c0], col_ptr[c1])? {
                indptr[r as usize + 1] += 1;
            }
        }
        for i in 0..n_obs {
            indptr[i + 1] += indptr[i];
        }

        let spill_dir = (nnz > cfg.max_in_memory_nnz).then(|| cfg.spill_dir.clone().unwrap_or_else(std::env::temp_dir));
        let mut store: Box<dyn Store> = match &spill_dir {
            None => Box::new(Cursor::new(vec![0u8; nnz * RECORD])),
            Some(dir) => Box::new(tempfile::tempfile_in(dir).map_err(|e| Error::io(dir, e))?),
        };
        let io_err = |e: std::io::Error| match &spill_dir {
            Some(dir) => Error::io(dir, e),
            None => Error::format(path, format!("{name}: transposing in memory: {e}")),
        };

        // Pass 2: scatter column blocks into row-block regions.
        let row_blocks = blocks(&indptr, block);
        let starts: Vec<usize> = row_blocks.iter().map(|&(r0, _)| r0).collect();
        let mut fill: Vec<u64> = row_blocks.iter().map(|&(r0, _)| indptr[r0]).collect();
        let mut buf = Vec::new();
        for &(c0, c1) in &col_blocks {
            let (a, b) = (col_ptr[c0], col_ptr[c1]);
            let rows = read_rows(a, b)?;
            let vals = read_values(&m.data, a as usize..b as usize).at(path, &format!("{name}/data"))?;
            let dest: Vec<usize> = rows.iter().map(|&r| starts.partition_point(|&s| s <= r as usize) - 1).collect();
            let mut at = vec![0usize; row_blocks.len() + 1];
            for &d in &dest {
                at[d + 1] += 1;
            }
            for d in 0..row_blocks.len() {
                at[d + 1] += at[d];
            }
            let bounds = at.clone();
            buf.resize((b - a) as usize * RECORD, 0);
            for c in c0..c1 {
                for k in (col_ptr[c] - a) as usize..(col_ptr[c + 1] - a) as usize {
                    let slot = &mut buf[at[dest[k]] * RECORD..][..RECORD];
                    slot[0..4].copy_from_slice(&rows[k].to_le_bytes());
                    slot[4..8].copy_from_slice(&(c as u32).to_le_bytes());
                    slot[8..12].copy_from_slice(&vals[k].to_le_bytes());
                    at[dest[k]] += 1;
                }
            }
            for d in 0..row_blocks.len() {
                let (s, e) = (bounds[d], bounds[d + 1]);
                if e > s {
                    store.seek(SeekFrom::Start(fill[d] * RECORD as u64)).map_err(io_err)?;
                    store.write_all(&buf[s * RECORD..e * RECORD]).map_err(io_err)?;
                    fill[d] += (e - s) as u64;
                }
            }
        }

        // Pass 3: order each row block by row.
        for &(r0, r1) in &row_blocks {
            let a = indptr[r0];
            let region = ((indptr[r1] - a) as usize) * RECORD;
            buf.resize(region, 0);
            store.seek(SeekFrom::Start(a * RECORD as u64)).map_err(io_err)?;
            store.read_exact(&mut buf).map_err(io_err)?;
            let mut sorted = vec![0u8; region];
            let mut at: Vec<usize> = indptr[r0..r1].iter().map(|&p| (p - a) as usize).collect();
            for rec in buf.chunks_exact(RECORD) {
                let r = u32::from_le_bytes(rec[0..4].try_into().unwrap()) as usize;
                sorted[at[r - r0] * RECORD..][..RECORD].copy_from_slice(rec);
                at[r - r0] += 1;
            }
            store.seek(SeekFrom::Start(a * RECORD as u64)).map_err(io_err)?;
            store.write_all(&sorted).map_err(io_err)?;
        }
        Ok(TransposedCsc { indptr, store, spill_dir })
    }

    /// Whether the transposed matrix lives in a temporary file rather than in memory.
    pub(super) fn is_spilled(&self) -> bool {
        self.spill_dir.is_some()
    }

    /// Rows `start..end` as CSR slices: `(indptr [end - start + 1] from 0, indices, values)`.
    pub(super) fn read_rows(
        &mut self,
        start: usize,
        end: usize,
        path: &Path,
    ) -> Result<(Vec<u64>, Vec<u32>, Vec<f32>)> {
        let (a, b) = (self.indptr[start], self.indptr[end]);
        let mut buf = vec![0u8; (b - a) as usize * RECORD];
        let io = self.store.seek(SeekFrom::Start(a * RECORD as u64)).and_then(|_| self.store.read_exact(&mut buf));
        io.map_err(|e| match &self.spill_dir {
            Some(dir) => Error::io(dir, e),
            None => Error::format(path, format!("reading the transposed matrix: {e}")),
        })?;
        let ptr = self.indptr[start..=end].iter().map(|&p| p - a).collect();
        let recs = buf.chunks_exact(RECORD);
        let idx = recs.clone().map(|r| u32::from_le_bytes(r[4..8].try_into().unwrap())).collect();
        let val = recs.map(|r| f32::from_le_bytes(r[8..12].try_into().unwrap())).collect();
        Ok((ptr, idx, val))
    }
}

/// Checks a compressed pointer array: starts at 0, never decreases, ends at `nnz`.
pub(super) fn check_ptr(ptr: &[u64], nnz: usize, path: &Path, name: &str) -> Result<()> {
    let ok = ptr.first() == Some(&0) && ptr.last() == Some(&(nnz as u64)) && ptr.windows(2).all(|w| w[0] <= w[1]);
    if ok {
        Ok(())
    } else {
        Err(Error::format(
            path,
            format!("{name}/indptr is not a valid pointer array for {nnz} stored values (must rise from 0 to {nnz})"),
        ))
    }
}

/// Splits the items of a pointer array (`ptr: [n + 1]`) into consecutive runs `(first, end)` of
/// at most `max` entries each; an item larger than `max` gets a run of its own.
fn blocks(ptr: &[u64], max: u64) -> Vec<(usize, usize)> {
    let n = ptr.len().saturating_sub(1);
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && ptr[j + 1] - ptr[i] <= max {
            j += 1;
        }
        out.push((i, j));
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_respect_the_entry_budget() {
        // Items with 2, 0, 3, 5, 1 entries.
        let ptr = [0, 2, 2, 5, 10, 11];
        assert_eq!(blocks(&ptr, 5), vec![(0, 3), (3, 4), (4, 5)]);
        assert_eq!(blocks(&ptr, 100), vec![(0, 5)]);
        assert_eq!(blocks(&ptr, 1), vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]);
        assert!(blocks(&[0], 4).is_empty());
    }
}
