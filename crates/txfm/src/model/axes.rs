//! The read-out's principal axes: one fixed orthogonal map per model that centres its embeddings
//! on the training cells' mean and rotates them onto the eigenvectors of their covariance,
//! largest variance first.
//!
//! Why: the benchmark's reference post-processings standardise each column (`scale`) or whiten
//! by the controls (`TVN`). On a PCA embedding, whose columns are uncorrelated, `scale` whitens;
//! on the raw CLS, whose columns are strongly correlated (participation ratio 3–4 of 64), it only
//! rescales, and the perturbation signal, which sits in low-variance correlated directions, stays
//! buried under the few dominant ones. Rotated into its principal axes the same embedding —
//! distances unchanged — gained on every one of thirteen models measured (+1.8 on the quickstart
//! screen, +3.4 on Jurkat, docs/experiments.md § 22).
//!
//! The axes are fitted once, on the training corpus at the end of training, and saved beside the
//! weights ([`AXES_FILE`]), so cells embedded in separate calls, files or sessions stay in one
//! coordinate system. Both read-outs are fitted from one pass: the CLS's moments are the leading
//! block of `[CLS ; token mean]`'s.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::readout::Readout;
use crate::{Error, Result};

/// The file of a bundle or checkpoint holding its [`ReadoutAxes`].
pub const AXES_FILE: &str = "axes.safetensors";

/// An affine map `x ↦ (x − mean) · axes` of one read-out's embeddings: orthogonal after the
/// centring, so distances and angles between centred embeddings are unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalAxes {
    /// The fitted cells' mean embedding. `[w]`
    pub mean: Vec<f64>,
    /// Orthonormal columns, one per axis, largest variance first; each column's largest entry in
    /// absolute value is positive (a fixed sign, so a refit on the same cells gives the same map).
    /// Row-major `[w, w]`
    pub axes: Vec<f64>,
    /// The fitted cells' variance along each axis, decreasing. `[w]`
    pub variance: Vec<f64>,
}

impl PrincipalAxes {
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// Maps row-major embeddings `[n, w]` in place.
    pub fn apply(&self, rows: &mut [f32]) {
        let w = self.width();
        if rows.is_empty() {
            return;
        }
        assert_eq!(rows.len() % w, 0, "rows of width {w}");
        let x = Tensor::from_slice(rows).view([(rows.len() / w) as i64, w as i64]).to_kind(Kind::Double);
        let mean = Tensor::from_slice(&self.mean);
        let axes = Tensor::from_slice(&self.axes).view([w as i64, w as i64]);
        let y = (x - mean).matmul(&axes).to_kind(Kind::Float).contiguous();
        y.view(-1).copy_data(rows, rows.len());
    }

    /// The axes of `[w]`-wide rows with `n` rows, column sums `sum` and Gram matrix `gram` of the
    /// rows minus `shift` (the moments [`AxesAccumulator`] keeps).
    fn from_moments(n: u64, shift: &Tensor, sum: &Tensor, gram: &Tensor) -> Result<Self> {
        let nf = n as f64;
        let centred_mean = sum / nf;
        let cov = (gram / nf - centred_mean.outer(&centred_mean)) * (nf / (nf - 1.0));
        let (values, vectors) = cov.f_linalg_eigh("L")?;
        // LAPACK orders ascending; the benchmark's and PCA's convention is descending.
        let (values, vectors) = (values.flip([0]).clamp_min(0.0), vectors.flip([1]));
        let largest = vectors.abs().argmax(0, false);
        let sign = vectors.gather(0, &largest.unsqueeze(0), false).sign().squeeze_dim(0);
        let vectors = vectors * sign.where_scalarother(&sign.ne(0.0), 1.0);
        let to_vec = |t: &Tensor| -> Result<Vec<f64>> { Ok(Vec::try_from(t.contiguous().view(-1))?) };
        Ok(PrincipalAxes { mean: to_vec(&(centred_mean + shift))?, axes: to_vec(&vectors)?, variance: to_vec(&values)? })
    }
}

/// The principal axes of both read-outs of one model, fitted on `n_cells` cells.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadoutAxes {
    /// The CLS's axes. `width() = d`
    pub cls: PrincipalAxes,
    /// `[CLS ; token mean]`'s axes. `width() = 2d`
    pub cls_mean: PrincipalAxes,
    /// Cells the axes were fitted on.
    pub n_cells: u64,
}

impl ReadoutAxes {
    /// The axes of `readout`.
    pub fn get(&self, readout: Readout) -> &PrincipalAxes {
        match readout {
            Readout::Cls => &self.cls,
            Readout::ClsMean => &self.cls_mean,
        }
    }

    /// Writes the axes as a safetensors file (`<read-out>.mean`, `.axes`, `.variance`, `n_cells`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named = vec![("n_cells".to_string(), Tensor::from(self.n_cells as i64))];
        for (name, a) in [("cls", &self.cls), ("cls_mean", &self.cls_mean)] {
            let w = a.width() as i64;
            named.push((format!("{name}.mean"), Tensor::from_slice(&a.mean)));
            named.push((format!("{name}.axes"), Tensor::from_slice(&a.axes).view([w, w])));
            named.push((format!("{name}.variance"), Tensor::from_slice(&a.variance)));
        }
        Tensor::write_safetensors(&named, path).map_err(|e| Error::format(path, e.to_string()))
    }

    /// Reads the axes [`Self::save`] wrote for a model of width `d`, checking every shape and
    /// that the values are finite.
    pub fn load(path: &Path, d: usize) -> Result<Self> {
        let named: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path).map_err(|e| Error::format(path, e.to_string()))?.into_iter().collect();
        let get = |name: &str, shape: &[i64]| -> Result<Vec<f64>> {
            let t = named.get(name).ok_or_else(|| Error::format(path, format!("no tensor '{name}'")))?;
            if t.size() != shape {
                return Err(Error::format(path, format!("'{name}' has shape {:?}; a model of width {d} needs {shape:?}", t.size())));
            }
            let v: Vec<f64> = Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double).contiguous().view(-1))?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::format(path, format!("'{name}' holds non-finite values")));
            }
            Ok(v)
        };
        let read = |name: &str, w: i64| -> Result<PrincipalAxes> {
            Ok(PrincipalAxes {
                mean: get(&format!("{name}.mean"), &[w])?,
                axes: get(&format!("{name}.axes"), &[w, w])?,
                variance: get(&format!("{name}.variance"), &[w])?,
            })
        };
        let n_cells = named.get("n_cells").ok_or_else(|| Error::format(path, "no tensor 'n_cells'"))?.int64_value(&[]) as u64;
        Ok(ReadoutAxes { cls: read("cls", d as i64)?, cls_mean: read("cls_mean", 2 * d as i64)?, n_cells })
    }
}

/// Streaming moments of `[CLS ; token mean]` rows, in float64, shifted by the first rows' mean
/// so that the covariance does not lose its digits to a large mean.
pub struct AxesAccumulator {
    d: usize,
    n: u64,
    shift: Option<Tensor>,
    sum: Tensor,
    gram: Tensor,
}

impl AxesAccumulator {
    /// For a model of width `d` (rows of width `2d`).
    pub fn new(d: usize) -> Self {
        let w = 2 * d as i64;
        AxesAccumulator { d, n: 0, shift: None, sum: Tensor::zeros([w], (Kind::Double, Device::Cpu)), gram: Tensor::zeros([w, w], (Kind::Double, Device::Cpu)) }
    }

    pub fn n_rows(&self) -> u64 {
        self.n
    }

    /// Adds row-major `[CLS ; token mean]` rows `[n, 2d]`.
    pub fn add(&mut self, rows: &[f32]) {
        let w = 2 * self.d;
        assert_eq!(rows.len() % w, 0, "rows of width {w}");
        let n = rows.len() / w;
        if n == 0 {
            return;
        }
        let x = Tensor::from_slice(rows).view([n as i64, w as i64]).to_kind(Kind::Double);
        let shift = self.shift.get_or_insert_with(|| x.mean_dim(0, false, Kind::Double));
        let x = x - &*shift;
        self.sum += x.sum_dim_intlist(0, false, Kind::Double);
        self.gram += x.tr().mm(&x);
        self.n += n as u64;
    }

    /// The axes of both read-outs. Needs at least two rows.
    pub fn finish(self) -> Result<ReadoutAxes> {
        let (Some(shift), true) = (self.shift, self.n >= 2) else {
            return Err(Error::Invalid(format!("principal axes need at least 2 cells, got {}", self.n)));
        };
        let d = self.d as i64;
        let cls = PrincipalAxes::from_moments(self.n, &shift.narrow(0, 0, d), &self.sum.narrow(0, 0, d), &self.gram.narrow(0, 0, d).narrow(1, 0, d))?;
        let cls_mean = PrincipalAxes::from_moments(self.n, &shift, &self.sum, &self.gram)?;
        Ok(ReadoutAxes { cls, cls_mean, n_cells: self.n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    /// `n` rows of width `2d`: correlated Gaussian with a large offset (a mixing of independent
    /// columns of decreasing scale).
    fn correlated(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let w = 2 * d;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mix: Vec<f64> = (0..w * w).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let mut out = Vec::with_capacity(n * w);
        for _ in 0..n {
            let z: Vec<f64> = (0..w).map(|j| rng.sample::<f64, _>(StandardNormal) / (1.0 + j as f64)).collect();
            for c in 0..w {
                out.push((100.0 + (0..w).map(|j| z[j] * mix[j * w + c]).sum::<f64>()) as f32);
            }
        }
        out
    }

    fn column_moments(rows: &[f32], w: usize) -> (Vec<f64>, Vec<f64>) {
        let n = rows.len() / w;
        let mean: Vec<f64> = (0..w).map(|c| (0..n).map(|i| rows[i * w + c] as f64).sum::<f64>() / n as f64).collect();
        let mut cov = vec![0.0; w * w];
        for i in 0..n {
            for a in 0..w {
                for b in 0..w {
                    cov[a * w + b] += (rows[i * w + a] as f64 - mean[a]) * (rows[i * w + b] as f64 - mean[b]) / (n - 1) as f64;
                }
            }
        }
        (mean, cov)
    }

    fn fit(rows: &[f32], d: usize, chunk_rows: usize) -> ReadoutAxes {
        let mut acc = AxesAccumulator::new(d);
        for chunk in rows.chunks(chunk_rows * 2 * d) {
            acc.add(chunk);
        }
        acc.finish().unwrap()
    }

    #[test]
    fn mapped_rows_are_centred_uncorrelated_and_keep_their_distances() {
        let (n, d) = (500, 4);
        let rows = correlated(n, d, 1);
        let axes = fit(&rows, d, 64);
        assert_eq!(axes.n_cells, n as u64);
        for (readout, w) in [(Readout::Cls, d), (Readout::ClsMean, 2 * d)] {
            let a = axes.get(readout);
            let input: Vec<f32> = rows.chunks(2 * d).flat_map(|r| r[..w].to_vec()).collect();
            let mut mapped = input.clone();
            a.apply(&mut mapped);
            let (mean, cov) = column_moments(&mapped, w);
            let top = a.variance[0];
            for c in 0..w {
                assert!(mean[c].abs() < 1e-3 * top.sqrt(), "{readout}: column {c} mean {}", mean[c]);
                for e in 0..w {
                    let want = if c == e { a.variance[c] } else { 0.0 };
                    assert!((cov[c * w + e] - want).abs() < 1e-3 * top, "{readout}: cov[{c},{e}] {} vs {want}", cov[c * w + e]);
                }
            }
            assert!(a.variance.windows(2).all(|v| v[0] >= v[1]), "{readout}: variances decrease: {:?}", a.variance);
            assert!(a.variance[0] > 4.0 * a.variance[w - 1], "the test data are anisotropic");
            // Distances between rows are those of the input.
            for (i, j) in [(0, 1), (3, 400), (17, 250)] {
                let dist = |x: &[f32]| (0..w).map(|c| (x[i * w + c] as f64 - x[j * w + c] as f64).powi(2)).sum::<f64>().sqrt();
                assert!((dist(&mapped) - dist(&input)).abs() < 1e-3 * dist(&input), "{readout}: distance {i}-{j}");
            }
        }
    }

    #[test]
    fn the_fit_does_not_depend_on_chunking_and_fixes_each_axis_sign() {
        let (n, d) = (300, 3);
        let rows = correlated(n, d, 2);
        let (a, b) = (fit(&rows, d, 7), fit(&rows, d, 300));
        for (x, y) in [(&a.cls, &b.cls), (&a.cls_mean, &b.cls_mean)] {
            let close = |u: &[f64], v: &[f64]| u.iter().zip(v).all(|(p, q)| (p - q).abs() < 1e-6 * (1.0 + q.abs()));
            assert!(close(&x.mean, &y.mean) && close(&x.variance, &y.variance) && close(&x.axes, &y.axes), "same map from any chunking");
            let w = x.width();
            for c in 0..w {
                let col: Vec<f64> = (0..w).map(|r| x.axes[r * w + c]).collect();
                let big = col.iter().copied().fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
                assert!(big > 0.0, "axis {c}'s largest entry is positive");
                assert!((col.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-9, "unit axis");
            }
        }
    }

    #[test]
    fn axes_survive_a_round_trip_and_a_wrong_width_is_named() {
        let d = 3;
        let axes = fit(&correlated(50, d, 3), d, 50);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AXES_FILE);
        axes.save(&path).unwrap();
        assert_eq!(ReadoutAxes::load(&path, d).unwrap(), axes);
        let err = ReadoutAxes::load(&path, 4).unwrap_err().to_string();
        assert!(err.contains(AXES_FILE) && err.contains("width 4"), "{err}");
        assert!(AxesAccumulator::new(d).finish().unwrap_err().to_string().contains("at least 2 cells"));
    }
}
