//! Detects matrices that are not raw counts (negative values, fractions, z-scores) so the model is
//! never trained on, or asked to embed, values it cannot interpret.

use super::{CsrChunk, ExpressionSource};
use crate::{Error, Result};

/// Rows read up front by [`check_head`]: enough to catch normalised or scaled matrices, which are
/// non-integer almost everywhere, without reading the file twice.
pub const HEAD_ROWS: usize = 1000;

/// Accumulates evidence against "raw counts" over streamed chunks.
#[derive(Debug, Clone, Default)]
pub struct CountsCheck {
    values: u64,
    negative: u64,
    fractional: u64,
    non_finite: u64,
    min: f32,
    first_bad: Option<(usize, u32, f32)>,
}

impl CountsCheck {
    pub fn new() -> Self {
        CountsCheck { min: f32::INFINITY, ..Default::default() }
    }

    pub fn observe(&mut self, chunk: &CsrChunk) {
        for i in 0..chunk.n_rows() {
            let (idx, val) = chunk.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                self.values += 1;
                self.min = self.min.min(v);
                let bad = if !v.is_finite() {
                    self.non_finite += 1;
                    true
                } else if v < 0.0 {
                    self.negative += 1;
                    true
                } else if v.fract() != 0.0 {
                    self.fractional += 1;
                    true
                } else {
                    false
                };
                if bad && self.first_bad.is_none() {
                    self.first_bad = Some((chunk.row_start + i, j, v));
                }
            }
        }
    }

    /// `None` when everything seen so far is a non-negative integer, else what was seen.
    pub fn problem(&self) -> Option<String> {
        let (row, col, v) = self.first_bad?;
        let mut parts = Vec::new();
        if self.negative > 0 {
            parts.push(format!("{} negative value(s) (min {})", self.negative, self.min));
        }
        if self.fractional > 0 {
            parts.push(format!("{} non-integer value(s)", self.fractional));
        }
        if self.non_finite > 0 {
            parts.push(format!("{} NaN/inf value(s)", self.non_finite));
        }
        let looks = if self.negative > 0 && self.fractional > 0 {
            " — looks z-scored/scaled"
        } else if self.fractional > 0 {
            " — looks normalised or log-transformed"
        } else {
            ""
        };
        Some(format!(
            "{} among {} non-zero values read{looks}; first at row {row}, column {col}: {v}",
            parts.join(", "),
            self.values
        ))
    }

    pub fn into_result(self, path: &std::path::Path, matrix: &str) -> Result<()> {
        match self.problem() {
            None => Ok(()),
            Some(seen) => Err(Error::NotCounts { path: path.to_path_buf(), matrix: matrix.to_string(), seen }),
        }
    }
}

/// Checks the first [`HEAD_ROWS`] rows of a source; callers that stream the whole matrix keep a
/// [`CountsCheck`] running over every chunk as well.
pub fn check_head(src: &mut dyn ExpressionSource) -> Result<()> {
    let chunk = src.read_rows(0, HEAD_ROWS.min(src.n_obs()))?;
    let mut check = CountsCheck::new();
    check.observe(&chunk);
    check.into_result(src.path(), src.matrix_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_counts_and_names_what_is_wrong_otherwise() {
        let mut ok = CsrChunk::new(0, 3);
        ok.push_dense_row(&[0.0, 3.0, 12.0]);
        let mut c = CountsCheck::new();
        c.observe(&ok);
        assert!(c.problem().is_none());

        let mut z = CsrChunk::new(5, 3);
        z.push_dense_row(&[-0.5, 1.25, 2.0]);
        c.observe(&z);
        let msg = c.problem().unwrap();
        assert!(msg.contains("1 negative value(s) (min -0.5)"), "{msg}");
        assert!(msg.contains("2 non-integer"), "{msg}");
        assert!(msg.contains("z-scored"), "{msg}");
        assert!(msg.contains("row 5, column 0"), "{msg}");
        let err = c.into_result(std::path::Path::new("a.h5ad"), "X").unwrap_err().to_string();
        assert!(err.starts_with("a.h5ad: X does not hold raw counts"), "{err}");
    }
}
