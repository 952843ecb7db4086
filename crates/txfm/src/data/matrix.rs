//! A block of consecutive rows (samples) in compressed-sparse-row form: the unit every reader
//! streams, so no reader ever holds a dense cells × genes matrix of a whole file.

/// Rows `row_start .. row_start + n_rows()` of a samples × genes matrix.
///
/// `indptr: [n_rows + 1]`, `indices: [nnz]` (column = gene index in the source's `var_names`,
/// strictly increasing within a row), `data: [nnz]`. Explicit zeros are allowed but readers drop
/// them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CsrChunk {
    pub row_start: usize,
    pub n_cols: usize,
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl CsrChunk {
    /// An empty chunk starting at `row_start`, ready for [`CsrChunk::push_row`].
    pub fn new(row_start: usize, n_cols: usize) -> Self {
        CsrChunk { row_start, n_cols, indptr: vec![0], indices: Vec::new(), data: Vec::new() }
    }

    pub fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Column indices and values of local row `i`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Appends one row given as (column, value) pairs sorted by column; zeros are skipped.
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (u32, f32)>) {
        for (c, v) in entries {
            if v != 0.0 {
                self.indices.push(c);
                self.data.push(v);
            }
        }
        self.indptr.push(self.indices.len() as u64);
    }

    /// Appends one dense row of length `n_cols`, keeping its non-zeros.
    pub fn push_dense_row(&mut self, values: &[f32]) {
        debug_assert_eq!(values.len(), self.n_cols);
        self.push_row(values.iter().enumerate().map(|(j, &v)| (j as u32, v)));
    }

    /// Dense `[n_rows, n_cols]` row-major copy; for tests and small blocks only.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.n_rows() * self.n_cols];
        for i in 0..self.n_rows() {
            let (idx, val) = self.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                out[i * self.n_cols + j as usize] = v;
            }
        }
        out
    }

    /// Per-row sum of values (the library size for raw counts). `[n_rows]`
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.n_rows()).map(|i| self.row(i).1.iter().map(|&v| v as f64).sum()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_read_rows() {
        let mut c = CsrChunk::new(10, 4);
        c.push_dense_row(&[0.0, 2.0, 0.0, 1.0]);
        c.push_row([(0, 5.0), (2, 0.0), (3, 1.0)]);
        assert_eq!(c.n_rows(), 2);
        assert_eq!(c.nnz(), 4);
        assert_eq!(c.row(1), (&[0u32, 3][..], &[5.0f32, 1.0][..]));
        assert_eq!(c.to_dense(), vec![0.0, 2.0, 0.0, 1.0, 5.0, 0.0, 0.0, 1.0]);
        assert_eq!(c.row_sums(), vec![3.0, 6.0]);
    }
}
