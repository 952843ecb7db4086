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
    /// Normalised values pass (already-normalised bulk data); NaN and infinity never do.
    allow_non_counts: bool,
}

impl CountsCheck {
    pub fn new() -> Self {
        CountsCheck { min: f32::INFINITY, ..Default::default() }
    }

    /// A check that accepts non-count values when `allow_non_counts` (the datasets' and inputs'
    /// option of that name) but refuses NaN and infinity whatever it says: they would stop
    /// training, or poison a baseline, far from the data.
    pub fn allowing_non_counts(allow_non_counts: bool) -> Self {
        CountsCheck { allow_non_counts, ..Self::new() }
    }

    pub fn observe(&mut self, chunk: &CsrChunk) {
        // Branch-free test first, in plain float adds and compares so it vectorises: adding and
        // removing 2^23 rounds a non-negative f32 to an integer, and every f32 ≥ 2^23 is one.
        // NaN, ±inf, fractions and negatives fail it; only a failing chunk is walked in detail.
        const TWO_23: f32 = 8_388_608.0;
        self.values += chunk.data.len() as u64;
        let all_counts = chunk.data.iter().fold(true, |ok, &v| {
            ok & (0.0..f32::INFINITY).contains(&v) & ((v >= TWO_23) | ((v + TWO_23) - TWO_23 == v))
        });
        if all_counts {
            self.min = chunk.data.iter().fold(self.min, |m, &v| m.min(v));
            return;
        }
        self.values -= chunk.data.len() as u64;
        for i in 0..chunk.n_rows() {
            let (idx, val) = chunk.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                self.values += 1;
                self.min = self.min.min(v);
                let (non_finite, negative, fractional) = (!v.is_finite(), v < 0.0, v.fract() != 0.0);
                self.non_finite += non_finite as u64;
                self.negative += negative as u64;
                self.fractional += (fractional && !non_finite) as u64;
                let bad = non_finite || negative || fractional;
                if bad && self.first_bad.is_none() {
                    self.first_bad = Some((chunk.row_start + i, j, v));
                }
            }
        }
    }

    /// `None` when everything seen so far is a non-negative integer, else what was seen, the first
    /// bad value placed by its obs row and var column (0-based, AnnData's orientation, whatever
    /// the file's).
    pub fn problem(&self) -> Option<String> {
        self.describe(None, None)
    }

    /// [`Self::problem`], with the first bad value's sample and gene named from `src`: a table's
    /// genes are its rows, so bare indices read transposed against the file.
    pub fn problem_in(&self, src: &dyn ExpressionSource) -> Option<String> {
        self.describe(Some(&src.obs().names), Some(src.var_names()))
    }

    fn describe(&self, obs: Option<&[String]>, var: Option<&[String]>) -> Option<String> {
        if self.allow_non_counts && self.non_finite == 0 {
            return None;
        }
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
        let name = |names: Option<&[String]>, i: usize| names.and_then(|n| n.get(i)).map_or(String::new(), |n| format!(" ('{n}')"));
        Some(format!(
            "{} among {} non-zero values read{looks}; first at obs row {row}{}, var column {col}{}: {v}",
            parts.join(", "),
            self.values,
            name(obs, row),
            name(var, col as usize)
        ))
    }

    pub fn into_result(self, path: &std::path::Path, matrix: &str) -> Result<()> {
        match self.problem() {
            None => Ok(()),
            Some(seen) => Err(Error::NotCounts { path: path.to_path_buf(), matrix: matrix.to_string(), seen }),
        }
    }

    /// The error for what was seen so far in `src`, naming the first bad value's sample and
    /// gene; `None` while everything passes.
    pub fn error_in(&self, src: &dyn ExpressionSource) -> Option<Error> {
        let seen = self.problem_in(src)?;
        Some(Error::NotCounts { path: src.path().to_path_buf(), matrix: src.matrix_name().to_string(), seen })
    }

    /// [`Self::into_result`] for `src`, naming the first bad value's sample and gene.
    pub fn into_result_in(self, src: &dyn ExpressionSource) -> Result<()> {
        self.error_in(src).map_or(Ok(()), Err)
    }
}

/// Checks the first [`HEAD_ROWS`] rows of a source; callers that stream the whole matrix keep a
/// [`CountsCheck`] running over every chunk as well.
pub fn check_head(src: &mut dyn ExpressionSource) -> Result<()> {
    let chunk = src.read_rows(0, HEAD_ROWS.min(src.n_obs()))?;
    let mut check = CountsCheck::new();
    check.observe(&chunk);
    check.into_result_in(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_agrees_with_the_detailed_check_on_edge_values() {
        for v in [0.5f32, 1e-30, -0.0, -1.0, 8_388_607.5, 16_777_216.0, 3e9, f32::NAN, f32::INFINITY, f32::MAX] {
            let mut c = CsrChunk::new(0, 1);
            c.indices.push(0);
            c.data.push(v);
            c.indptr.push(1);
            let mut check = CountsCheck::new();
            check.observe(&c);
            let is_count = v.is_finite() && v >= 0.0 && v.fract() == 0.0;
            assert_eq!(check.problem().is_none(), is_count, "{v}");
        }
    }

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
        assert!(msg.contains("obs row 5, var column 0"), "{msg}");
        let err = c.into_result(std::path::Path::new("a.h5ad"), "X").unwrap_err().to_string();
        assert!(err.starts_with("a.h5ad: X does not hold raw counts"), "{err}");
    }
}
