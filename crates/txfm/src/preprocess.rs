//! Count preprocessing: the values the model sees at its visible genes and reconstructs at every
//! profiled gene.
//!
//! The paper's default is scanpy's `normalize_total(target_sum=1e5)` followed by `log1p`:
//! x = log1p(count / library_size · L). The library size is the corpus's stored `library_size`,
//! the sample's total count over *all* its harmonised genes (also those the vocabulary filter
//! dropped), so a sample's values do not depend on which genes made it into the vocabulary.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// L of the paper's library-size normalisation.
pub const DEFAULT_TARGET_SUM: f64 = 1e5;

/// How raw counts become model values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Preprocess {
    /// x = log1p(count / library_size · target_sum); 0 for a sample with library size 0.
    LibNormLog1p { target_sum: f64 },
    /// x = log1p(count): for data whose depth is already comparable, or to study the effect of
    /// normalisation.
    Log1p,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess::LibNormLog1p { target_sum: DEFAULT_TARGET_SUM }
    }
}

impl Preprocess {
    /// `origin` names the config (file) for the error message.
    pub fn validate(&self, origin: &str) -> Result<()> {
        match *self {
            Preprocess::LibNormLog1p { target_sum } if !(target_sum.is_finite() && target_sum > 0.0) => {
                Err(Error::config(origin, "preprocess.target_sum", format!("must be positive and finite, got {target_sum}")))
            }
            _ => Ok(()),
        }
    }

    /// The factor counts are multiplied by before log1p.
    fn scale(&self, library_size: f64) -> f64 {
        match *self {
            // An empty sample has no counts to normalise; 0 keeps its values 0 instead of NaN.
            Preprocess::LibNormLog1p { target_sum } if library_size > 0.0 => target_sum / library_size,
            Preprocess::LibNormLog1p { .. } => 0.0,
            Preprocess::Log1p => 1.0,
        }
    }

    /// The value of one count.
    pub fn value(&self, count: f32, library_size: f64) -> f32 {
        (count as f64 * self.scale(library_size)).ln_1p() as f32
    }

    /// Values of a sparse row at `query` genes (any order; genes absent from the row are 0).
    /// `genes`: strictly increasing, as in `CsrChunk`. `counts: [nnz]`. Returns `[query.len()]`.
    pub fn values_at(&self, genes: &[u32], counts: &[f32], library_size: f64, query: &[u32]) -> Vec<f32> {
        let scale = self.scale(library_size);
        query
            .iter()
            .map(|g| match genes.binary_search(g) {
                Ok(i) => (counts[i] as f64 * scale).ln_1p() as f32,
                Err(_) => 0.0,
            })
            .collect()
    }

    /// Writes the values of a sparse row into `out` at its genes, leaving other entries as they
    /// are (callers pass a zeroed row). `out: [n_genes]`, every gene < n_genes.
    pub fn scatter(&self, genes: &[u32], counts: &[f32], library_size: f64, out: &mut [f32]) {
        let scale = self.scale(library_size);
        for (&g, &c) in genes.iter().zip(counts) {
            out[g as usize] = (c as f64 * scale).ln_1p() as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| (x as f64 - y).abs() <= 1e-6 * y.abs().max(1.0))
    }

    #[test]
    fn library_normalisation_then_log1p() {
        let p = Preprocess::default();
        // Counts [1, 3] of a library of 4 at L = 1e5 → 25,000 and 75,000 before log1p.
        let v = p.values_at(&[2, 7], &[1.0, 3.0], 4.0, &[7, 5, 2]);
        assert!(close(&v, &[75000f64.ln_1p(), 0.0, 25000f64.ln_1p()]), "{v:?}");
        let mut row = vec![0.0; 9];
        p.scatter(&[2, 7], &[1.0, 3.0], 4.0, &mut row);
        assert!(close(&row, &[0.0, 0.0, 25000f64.ln_1p(), 0.0, 0.0, 0.0, 0.0, 75000f64.ln_1p(), 0.0]));
        assert_eq!(p.value(1.0, 4.0), row[2]);
        // Other L: 2 of 10 at L = 10 → log1p(2).
        let p10 = Preprocess::LibNormLog1p { target_sum: 10.0 };
        assert!(close(&[p10.value(2.0, 10.0)], &[2f64.ln_1p()]));
    }

    #[test]
    fn plain_log1p_ignores_the_library() {
        let v = Preprocess::Log1p.values_at(&[0, 1], &[1.0, 3.0], 1e6, &[0, 1]);
        assert!(close(&v, &[2f64.ln(), 4f64.ln()]));
    }

    #[test]
    fn empty_library_gives_zeros_not_nan() {
        let p = Preprocess::default();
        let v = p.values_at(&[0, 1], &[0.0, 5.0], 0.0, &[0, 1, 2]);
        assert_eq!(v, vec![0.0, 0.0, 0.0]);
        let mut row = vec![0.0; 3];
        p.scatter(&[1], &[5.0], 0.0, &mut row);
        assert_eq!(row, vec![0.0; 3]);
    }

    #[test]
    fn serde_names_and_validation() {
        let json = serde_json::to_string(&Preprocess::default()).unwrap();
        assert_eq!(json, r#"{"kind":"libnormlog1p","target_sum":100000.0}"#);
        let p: Preprocess = serde_json::from_str(r#"{"kind":"log1p"}"#).unwrap();
        assert_eq!(p, Preprocess::Log1p);
        assert!(Preprocess::LibNormLog1p { target_sum: 0.0 }.validate("run.toml").is_err());
        assert!(Preprocess::default().validate("run.toml").is_ok());
    }
}
