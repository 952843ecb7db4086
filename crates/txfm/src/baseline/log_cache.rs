//! The matrix PCA's randomized SVD works on — log1p(LibNorm) values of the genes used, `[n_obs, p]`
//! in row blocks stored by column ([`CscBlock`]: u32 rows, f32 values) — built in one pass over
//! the input and then read by every SVD pass. Without it each of the `n_iter + 1` passes would
//! re-read and re-decode the whole input, every gene of it, although the SVD uses only the
//! selected ones.
//!
//! Blocks stay in memory while their total size is within a budget. Past it, every block goes to
//! an anonymous temporary file (unlinked as it is created, so nothing is left behind however the
//! run ends) that each pass streams back, so memory stays bounded for any number of samples.
//!
//! Blocks are [`BLOCK_ROWS`] rows, so that the SVD's `[rows, l]` slice of Y stays in a core's
//! cache while a block is multiplied. File layout, native endian, block after block: `rows: u64`,
//! `nnz: u64`, `colptr: [n_cols] u64` (column ends), `rows: [nnz] u32`, `data: [nnz] f32`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::randomized_svd::{CscBlock, RowBlocks};
use crate::data::CsrChunk;
use crate::{Error, Result};

/// Default budget for holding the matrix in memory: 2 GiB, about 270 M non-zeros.
pub const DEFAULT_CACHE_BUDGET_BYTES: u64 = 2 << 30;

/// Rows per block: Y_b is `BLOCK_ROWS × l` f32, 280 KiB for 70 basis vectors.
pub const BLOCK_ROWS: usize = 1024;

/// Large sequential reads and writes: the file is only ever streamed start to end.
const IO_BUFFER_BYTES: usize = 8 << 20;

/// Bytes a block occupies, in memory or on disk.
fn block_bytes(b: &CscBlock) -> u64 {
    16 + 8 * b.n_cols() as u64 + 8 * b.nnz() as u64
}

/// Collects blocks in row order; [`LogCacheBuilder::finish`] makes the cache.
pub struct LogCacheBuilder {
    n_cols: usize,
    budget: u64,
    dir: PathBuf,
    n_rows: usize,
    blocks: Vec<CscBlock>,
    /// Bytes of the blocks in `blocks`, and of all blocks.
    held: u64,
    total: u64,
    file: Option<BufWriter<File>>,
    bytes: Vec<u8>,
}

impl LogCacheBuilder {
    /// A cache of `n_cols` columns that spills to an anonymous file in `spill_dir` once its blocks
    /// take more than `budget_bytes` (0: always on disk).
    pub fn new(n_cols: usize, budget_bytes: u64, spill_dir: &Path) -> Self {
        LogCacheBuilder {
            n_cols,
            budget: budget_bytes,
            dir: spill_dir.to_path_buf(),
            n_rows: 0,
            blocks: Vec::new(),
            held: 0,
            total: 0,
            file: None,
            bytes: Vec::new(),
        }
    }

    /// Appends the next rows. `rows: [rows, n_cols]`.
    pub fn push(&mut self, rows: &CsrChunk) -> Result<()> {
        if rows.n_cols != self.n_cols {
            return Err(Error::Invalid(format!("rows of {} columns for a cache of {}", rows.n_cols, self.n_cols)));
        }
        for start in (0..rows.n_rows()).step_by(BLOCK_ROWS) {
            self.push_block(CscBlock::from_csr(rows, start..(start + BLOCK_ROWS).min(rows.n_rows())))?;
        }
        Ok(())
    }

    fn push_block(&mut self, block: CscBlock) -> Result<()> {
        self.n_rows += block.n_rows;
        self.total += block_bytes(&block);
        if self.file.is_none() {
            self.held += block_bytes(&block);
            self.blocks.push(block);
            if self.held <= self.budget {
                return Ok(());
            }
            let file = tempfile::tempfile_in(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            self.file = Some(BufWriter::with_capacity(IO_BUFFER_BYTES, file));
            for b in std::mem::take(&mut self.blocks) {
                self.write(&b)?;
            }
            self.held = 0;
            return Ok(());
        }
        self.write(&block)
    }

    fn write(&mut self, b: &CscBlock) -> Result<()> {
        let out = &mut self.bytes;
        out.clear();
        out.extend((b.n_rows as u64).to_ne_bytes());
        out.extend((b.nnz() as u64).to_ne_bytes());
        out.extend(b.colptr[1..].iter().flat_map(|v| v.to_ne_bytes()));
        out.extend(b.rows.iter().flat_map(|v| v.to_ne_bytes()));
        out.extend(b.data.iter().flat_map(|v| v.to_ne_bytes()));
        let file = self.file.as_mut().expect("spilling");
        file.write_all(out).map_err(|e| Error::io(&self.dir, e))
    }

    pub fn finish(self) -> Result<LogCache> {
        let store = match self.file {
            None => Store::Memory(self.blocks),
            Some(w) => {
                let file = w.into_inner().map_err(|e| Error::io(&self.dir, e.into_error()))?;
                Store::File { file, dir: self.dir }
            }
        };
        Ok(LogCache { n_rows: self.n_rows, n_cols: self.n_cols, bytes: self.total, store })
    }
}

/// The matrix, `[n_rows, n_cols]`, in memory or in its temporary file.
pub struct LogCache {
    n_rows: usize,
    n_cols: usize,
    bytes: u64,
    store: Store,
}

enum Store {
    Memory(Vec<CscBlock>),
    File { file: File, dir: PathBuf },
}

impl LogCache {
    /// Whether the blocks went to disk.
    pub fn is_spilled(&self) -> bool {
        matches!(self.store, Store::File { .. })
    }

    /// Size of the blocks, in memory or on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl RowBlocks for LogCache {
    fn n_rows(&self) -> usize {
        self.n_rows
    }
    fn n_cols(&self) -> usize {
        self.n_cols
    }
    fn for_each_block(&mut self, f: &mut dyn FnMut(&CscBlock) -> Result<()>) -> Result<()> {
        let (file, dir) = match &mut self.store {
            Store::Memory(blocks) => return blocks.iter().try_for_each(&mut *f),
            Store::File { file, dir } => (file, dir.as_path()),
        };
        let io = |e| Error::io(dir, e);
        file.rewind().map_err(io)?;
        let mut r = BufReader::with_capacity(IO_BUFFER_BYTES, &*file);
        let mut block = CscBlock { row_start: 0, n_rows: 0, colptr: vec![0], rows: Vec::new(), data: Vec::new() };
        let mut bytes = Vec::new();
        let mut row = 0;
        while row < self.n_rows {
            let mut head = [0u8; 16];
            r.read_exact(&mut head).map_err(io)?;
            let rows = u64::from_ne_bytes(head[..8].try_into().expect("8 bytes")) as usize;
            let nnz = u64::from_ne_bytes(head[8..].try_into().expect("8 bytes")) as usize;
            (block.row_start, block.n_rows) = (row, rows);
            read_into(&mut r, self.n_cols, 8, &mut bytes).map_err(io)?;
            block.colptr.truncate(1);
            block.colptr.extend(bytes.chunks_exact(8).map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes"))));
            read_into(&mut r, nnz, 4, &mut bytes).map_err(io)?;
            block.rows.clear();
            block.rows.extend(bytes.chunks_exact(4).map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes"))));
            read_into(&mut r, nnz, 4, &mut bytes).map_err(io)?;
            block.data.clear();
            block.data.extend(bytes.chunks_exact(4).map(|b| f32::from_ne_bytes(b.try_into().expect("4 bytes"))));
            f(&block)?;
            row += rows;
        }
        Ok(())
    }
}

/// Reads `n` items of `size` bytes into `buf`.
fn read_into(r: &mut impl Read, n: usize, size: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.resize(n * size, 0);
    r.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(row_start: usize, rows: &[&[(u32, f32)]]) -> CsrChunk {
        let mut b = CsrChunk::new(row_start, 5);
        for r in rows {
            b.push_row(r.iter().copied());
        }
        b
    }

    fn read_all(c: &mut LogCache) -> Vec<CscBlock> {
        let mut out = Vec::new();
        c.for_each_block(&mut |b| {
            out.push(b.clone());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn spilled_blocks_read_back_as_held_ones_and_leave_no_file() {
        let blocks = [block(0, &[&[(0, 1.0), (3, 2.5)], &[], &[(4, -1.0)]]), block(3, &[&[(1, 0.5), (2, 7.0)]])];
        let dir = tempfile::tempdir().unwrap();
        let build = |budget| {
            let mut b = LogCacheBuilder::new(5, budget, dir.path());
            for x in &blocks {
                b.push(x).unwrap();
            }
            b.finish().unwrap()
        };
        let mut held = build(u64::MAX);
        // The first block alone is over 60 bytes: it is held, then written out with the rest.
        let mut spilled = build(60);
        assert!(!held.is_spilled() && spilled.is_spilled());
        assert_eq!((spilled.n_rows(), spilled.n_cols()), (4, 5));
        let want = read_all(&mut held);
        assert_eq!(want.len(), 2);
        assert_eq!((want[1].row_start, want[1].n_rows, want[1].col(2)), (3, 1, (&[0u32][..], &[7.0f32][..])));
        assert_eq!(read_all(&mut spilled), want);
        // A second pass reads the file from the start again.
        assert_eq!(read_all(&mut spilled), want);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the spill file has no name");
        drop(spilled);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_unwritable_spill_dir_is_named() {
        let mut b = LogCacheBuilder::new(5, 0, Path::new("/nonexistent/spill"));
        let err = b.push(&block(0, &[&[(0, 1.0)]])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/spill"), "{err}");
    }
}
