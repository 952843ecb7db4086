//! Post-processing of an embedding on the control cells, as in EFAAR (`efaar_benchmarking.efaar`)
//! and Tx-Evaluation (`biomodalities/data/post_process.py`):
//!
//! - `none`: the embedding as given;
//! - `center`: per batch, subtract the mean of that batch's controls;
//! - `scale`: per batch, standardise with the mean and standard deviation (ddof 0) of that batch's
//!   controls (sklearn `StandardScaler` fitted on the controls, a feature whose control variance is
//!   ~0 keeps scale 1);
//! - `tvn` (typical variation normalisation): standardise on all controls, rotate onto the
//!   principal components of the controls (all `min(n_controls, dim)` of them, sklearn's sign
//!   convention), standardise on all controls again, then per batch multiply by
//!   `(Cov_ctrl,b + 0.5·I)^(-1/2)` (CORAL towards the identity; covariance with ddof 1).
//!
//! As in EFAAR, TVN's two standardisations and the PCA pool the controls of all batches; only the
//! final whitening is per batch. The references leave a batch without controls undefined (NaN); here
//! a batch with fewer than [`MIN_BATCH_CONTROLS`] controls uses the pooled controls of all batches
//! instead ([`batches_short_of_controls`] lists them so reports can say so).
//!
//! Computations run in f64; PCA and the inverse square root use libtorch's `linalg_eigh`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::data::PerturbData;
use crate::{Error, Result};

/// A batch needs this many controls for its own statistics (a covariance needs two).
pub const MIN_BATCH_CONTROLS: usize = 2;

/// Ridge added to each batch's control covariance before whitening, as in EFAAR.
const TVN_RIDGE: f64 = 0.5;

/// One post-processing of an embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum PostProcess {
    None,
    Center,
    Scale,
    Tvn,
}

impl PostProcess {
    /// All four, in the order reports list them.
    pub const ALL: [PostProcess; 4] = [PostProcess::None, PostProcess::Center, PostProcess::Scale, PostProcess::Tvn];

    pub fn name(self) -> &'static str {
        match self {
            PostProcess::None => "none",
            PostProcess::Center => "center",
            PostProcess::Scale => "scale",
            PostProcess::Tvn => "tvn",
        }
    }
}

impl fmt::Display for PostProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PostProcess {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PostProcess::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::Invalid(format!("unknown post-processing `{s}`; expected none, center, scale or tvn")))
    }
}

/// Which rows are controls and which batch each row is in: what every post-processing is fitted on.
#[derive(Debug, Clone, Copy)]
pub struct Controls<'a> {
    /// Batch code of each row. `[n_obs]`
    pub batch: &'a [u32],
    pub n_batches: usize,
    /// Whether each row is a control. `[n_obs]`
    pub is_control: &'a [bool],
}

impl<'a> Controls<'a> {
    /// Rows of each batch, and the control rows each batch is fitted on (its own, or all controls
    /// when it has fewer than [`MIN_BATCH_CONTROLS`]).
    fn groups(&self) -> Vec<(Vec<usize>, Vec<usize>)> {
        let all_ctrl: Vec<usize> = (0..self.batch.len()).filter(|&i| self.is_control[i]).collect();
        let mut rows = vec![Vec::new(); self.n_batches];
        let mut ctrl = vec![Vec::new(); self.n_batches];
        for (i, &b) in self.batch.iter().enumerate() {
            rows[b as usize].push(i);
            if self.is_control[i] {
                ctrl[b as usize].push(i);
            }
        }
        rows.into_iter()
            .zip(ctrl)
            .filter(|(r, _)| !r.is_empty())
            .map(|(r, c)| if c.len() < MIN_BATCH_CONTROLS { (r, all_ctrl.clone()) } else { (r, c) })
            .collect()
    }
}

/// Batch codes with fewer than [`MIN_BATCH_CONTROLS`] controls (fitted on all controls instead).
pub fn batches_short_of_controls(data: &PerturbData) -> Vec<u32> {
    let mut n = vec![0usize; data.n_batches()];
    let mut present = vec![false; data.n_batches()];
    for i in 0..data.n_obs {
        present[data.batch[i] as usize] = true;
        if data.is_control(i) {
            n[data.batch[i] as usize] += 1;
        }
    }
    (0..data.n_batches() as u32).filter(|&b| present[b as usize] && n[b as usize] < MIN_BATCH_CONTROLS).collect()
}

/// `data` post-processed by `pp` (the width may shrink under TVN when there are fewer controls
/// than dimensions).
pub fn apply(data: &PerturbData, pp: PostProcess) -> Result<PerturbData> {
    if pp == PostProcess::None {
        return Ok(data.clone());
    }
    let is_control: Vec<bool> = (0..data.n_obs).map(|i| data.is_control(i)).collect();
    let ctl = Controls { batch: &data.batch, n_batches: data.n_batches(), is_control: &is_control };
    let x: Vec<f64> = data.x.iter().map(|&v| v as f64).collect();
    let (dim, y) = apply_f64(&x, data.dim, &ctl, pp)?;
    Ok(data.with_x(dim, y.into_iter().map(|v| v as f32).collect()))
}

/// [`apply`] on a row-major f64 matrix `x: [n_obs, dim]`; returns the new width and `[n_obs, width]`.
pub fn apply_f64(x: &[f64], dim: usize, ctl: &Controls, pp: PostProcess) -> Result<(usize, Vec<f64>)> {
    let n = ctl.batch.len();
    assert_eq!(x.len(), n * dim, "embedding of the wrong size");
    if !ctl.is_control.iter().any(|&c| c) {
        return Err(Error::Invalid(format!("post-processing `{pp}` needs control cells, and there are none")));
    }
    let mut x = x.to_vec();
    match pp {
        PostProcess::None => {}
        PostProcess::Center | PostProcess::Scale => {
            // Every batch's statistics come from the input, before any batch is changed (a batch
            // fitted on pooled controls must not see another batch's already-scaled controls).
            let fits: Vec<_> = ctl.groups().into_iter().map(|(rows, ctrl)| (rows, mean_std(&x, dim, &ctrl))).collect();
            for (rows, (mean, std)) in fits {
                let std = (pp == PostProcess::Scale).then_some(std.as_slice());
                standardise(&mut x, dim, &rows, &mean, std);
            }
        }
        PostProcess::Tvn => return tvn(x, dim, ctl),
    }
    Ok((dim, x))
}

/// Eigenvalues below this share of the largest count as zero (rank deficiency of the controls).
const RANK_TOL: f64 = 1e-10;

fn tvn(mut x: Vec<f64>, dim: usize, ctl: &Controls) -> Result<(usize, Vec<f64>)> {
    let n = ctl.batch.len();
    let all: Vec<usize> = (0..n).collect();
    let ctrl: Vec<usize> = (0..n).filter(|&i| ctl.is_control[i]).collect();
    let scale_pooled = |x: &mut Vec<f64>, dim: usize| {
        let (mean, std) = mean_std(x, dim, &ctrl);
        standardise(x, dim, &all, &mean, Some(&std));
    };
    scale_pooled(&mut x, dim);
    let (k, mut x) = pca_on_rows(&x, dim, &ctrl)?;
    scale_pooled(&mut x, k);
    let whitening = ctl
        .groups()
        .into_iter()
        .map(|(rows, ctrl)| Ok((rows, inverse_sqrt(&covariance(&x, k, &ctrl), k, TVN_RIDGE)?)))
        .collect::<Result<Vec<_>>>()?;
    for (rows, w) in whitening {
        for &r in &rows {
            let row = x[r * k..(r + 1) * k].to_vec();
            let out = &mut x[r * k..(r + 1) * k];
            for (j, o) in out.iter_mut().enumerate() {
                *o = (0..k).map(|i| row[i] * w[i * k + j]).sum();
            }
        }
    }
    Ok((k, x))
}

/// Mean and standard deviation (ddof 0) of `rows` of `x: [_, dim]`, per column.
fn mean_std(x: &[f64], dim: usize, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let m = rows.len() as f64;
    let mut mean = vec![0.0; dim];
    for &r in rows {
        for (a, v) in mean.iter_mut().zip(&x[r * dim..(r + 1) * dim]) {
            *a += v;
        }
    }
    mean.iter_mut().for_each(|a| *a /= m);
    let mut var = vec![0.0; dim];
    for &r in rows {
        for ((a, v), mu) in var.iter_mut().zip(&x[r * dim..(r + 1) * dim]).zip(&mean) {
            *a += (v - mu) * (v - mu);
        }
    }
    let std = var
        .iter()
        .zip(&mean)
        .map(|(v, mu)| {
            let s = (v / m).sqrt();
            // sklearn keeps scale 1 for a (near-)constant feature instead of dividing by ~0.
            if s <= 10.0 * f64::EPSILON * mu.abs().max(1.0) { 1.0 } else { s }
        })
        .collect();
    (mean, std)
}

/// `x[r] = (x[r] - mean) / std` for each row `r` in `rows`.
fn standardise(x: &mut [f64], dim: usize, rows: &[usize], mean: &[f64], std: Option<&[f64]>) {
    for &r in rows {
        for (j, v) in x[r * dim..(r + 1) * dim].iter_mut().enumerate() {
            *v -= mean[j];
            if let Some(s) = std {
                *v /= s[j];
            }
        }
    }
}

/// Sample covariance (ddof 1) of `rows` of `x: [_, dim]`. `[dim, dim]` row-major.
fn covariance(x: &[f64], dim: usize, rows: &[usize]) -> Vec<f64> {
    let (mean, _) = mean_std(x, dim, rows);
    let centred: Vec<f64> =
        rows.iter().flat_map(|&r| x[r * dim..(r + 1) * dim].iter().zip(&mean).map(|(v, m)| v - m)).collect();
    let c = Tensor::from_slice(&centred).view([rows.len() as i64, dim as i64]);
    let cov = c.tr().matmul(&c) / ((rows.len() as f64 - 1.0).max(1.0));
    Vec::<f64>::try_from(cov.reshape([-1])).expect("f64 tensor")
}

/// `(C + ridge·I)^(-1/2)` of a symmetric `c: [dim, dim]`, by eigendecomposition. `[dim, dim]`
fn inverse_sqrt(c: &[f64], dim: usize, ridge: f64) -> Result<Vec<f64>> {
    let d = dim as i64;
    let c = Tensor::from_slice(c).view([d, d]) + Tensor::eye(d, (Kind::Double, tch::Device::Cpu)) * ridge;
    let (vals, vecs) = c.f_linalg_eigh("L")?;
    let inv = vals.clamp_min(f64::MIN_POSITIVE).pow_tensor_scalar(-0.5);
    let w = vecs.matmul(&inv.diag_embed(0, -2, -1)).matmul(&vecs.tr());
    Ok(Vec::<f64>::try_from(w.reshape([-1]))?)
}

/// Projects every row of `x: [n, dim]` onto the principal components of `rows` (sklearn `PCA()`:
/// centred on those rows' mean, all `k = min(rows, dim)` components by decreasing variance, each
/// component's largest-magnitude loading made positive). Returns `(k, [n, k])`.
///
/// One departure from sklearn: components without variance among the controls are dropped. With
/// no more controls than dimensions the controls span at most `rows - 1` directions, and sklearn
/// keeps the rest, whose ~1e-16 spread the next standardisation then divides by, blowing those
/// coordinates up to arbitrary size (an average score of −1e12 on a 500-wide embedding with 450
/// controls). Where the controls span every direction, nothing changes.
fn pca_on_rows(x: &[f64], dim: usize, rows: &[usize]) -> Result<(usize, Vec<f64>)> {
    let (mean, _) = mean_std(x, dim, rows);
    let cov = covariance(x, dim, rows);
    let d = dim as i64;
    let (vals, vecs) = Tensor::from_slice(&cov).view([d, d]).f_linalg_eigh("L")?;
    let vals = Vec::<f64>::try_from(vals)?;
    let top = vals.last().copied().unwrap_or(0.0).max(0.0);
    let spanned = vals.iter().filter(|&&v| v > top * RANK_TOL).count();
    let k = rows.len().min(dim).min(spanned.max(1));
    // eigh sorts eigenvalues ascending; the components are the last k columns, reversed.
    let vecs = Vec::<f64>::try_from(vecs.contiguous().reshape([-1]))?;
    let mut comps = vec![0.0; k * dim]; // [k, dim]
    for c in 0..k {
        let col = dim - 1 - c;
        let comp = &mut comps[c * dim..(c + 1) * dim];
        for (g, v) in comp.iter_mut().enumerate() {
            *v = vecs[g * dim + col];
        }
        // The first entry of largest magnitude, as numpy's argmax picks it.
        let lead = (0..dim).fold(0, |best, g| if comp[g].abs() > comp[best].abs() { g } else { best });
        if comp[lead] < 0.0 {
            comp.iter_mut().for_each(|v| *v = -*v);
        }
    }
    let n = x.len() / dim;
    let mut out = vec![0.0; n * k];
    for r in 0..n {
        let row = &x[r * dim..(r + 1) * dim];
        for c in 0..k {
            out[r * k + c] = comps[c * dim..(c + 1) * dim].iter().zip(row.iter().zip(&mean)).map(|(w, (v, m))| w * (v - m)).sum();
        }
    }
    Ok((k, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controls<'a>(batch: &'a [u32], is_control: &'a [bool]) -> Controls<'a> {
        Controls { batch, n_batches: 2, is_control }
    }

    #[test]
    fn center_and_scale_by_hand() {
        // Batch 0: controls rows 0, 1 = (1, 10), (3, 10); row 2 = (5, 20).
        // Batch 1: controls rows 3, 4 = (0, 0), (0, 4); row 5 = (2, 2).
        let x = [1.0, 10.0, 3.0, 10.0, 5.0, 20.0, 0.0, 0.0, 0.0, 4.0, 2.0, 2.0];
        let batch = [0, 0, 0, 1, 1, 1];
        let ctrl = [true, true, false, true, true, false];
        let ctl = controls(&batch, &ctrl);
        let (_, c) = apply_f64(&x, 2, &ctl, PostProcess::Center).unwrap();
        assert_eq!(c, vec![-1.0, 0.0, 1.0, 0.0, 3.0, 10.0, 0.0, -2.0, 0.0, 2.0, 2.0, 0.0]);
        let (_, s) = apply_f64(&x, 2, &ctl, PostProcess::Scale).unwrap();
        // Batch 0 std = (1, 0 → 1); batch 1 std = (0 → 1, 2).
        assert_eq!(s, vec![-1.0, 0.0, 1.0, 0.0, 3.0, 10.0, 0.0, -1.0, 0.0, 1.0, 2.0, 0.0]);
    }

    #[test]
    fn batch_without_controls_uses_pooled_controls() {
        let x = [1.0, 3.0, 10.0, 7.0];
        let batch = [0, 0, 1, 1];
        let ctrl = [true, true, false, false];
        let (_, c) = apply_f64(&x, 1, &controls(&batch, &ctrl), PostProcess::Center).unwrap();
        assert_eq!(c, vec![-1.0, 1.0, 8.0, 5.0]);
    }

    #[test]
    fn inverse_sqrt_whitens() {
        let w = inverse_sqrt(&[3.5, 0.0, 0.0, 1.5], 2, 0.5).unwrap();
        let want = [0.5, 0.0, 0.0, 0.5f64.sqrt()];
        assert!(w.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{w:?}");
        // A rotated SPD matrix: W (C + 0.5 I) W = I.
        let c = [2.0, 0.8, 0.8, 1.0];
        let w = inverse_sqrt(&c, 2, 0.5).unwrap();
        let cr = [2.5, 0.8, 0.8, 1.5];
        let mul = |a: &[f64], b: &[f64]| {
            [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3]]
        };
        let i = mul(&mul(&w, &cr), &w);
        assert!(i.iter().zip([1.0, 0.0, 0.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{i:?}");
    }

    #[test]
    fn tvn_keeps_the_directions_the_controls_span() {
        // Three controls in 4 dimensions span 2 directions around their mean: sklearn would keep
        // 3 components, the third with ~1e-16 spread, and the next scaling would blow it up.
        let x: Vec<f64> = (0..24).map(|v| ((v * 7) % 11) as f64).collect();
        let batch = [0, 0, 0, 1, 1, 1];
        let ctrl = [true, true, false, true, false, false];
        let (k, y) = apply_f64(&x, 4, &controls(&batch, &ctrl), PostProcess::Tvn).unwrap();
        assert_eq!((k, y.len()), (2, 12));
        assert!(y.iter().all(|v| v.is_finite() && v.abs() < 100.0), "{y:?}");
    }

    #[test]
    fn parses_names() {
        assert_eq!("TVN".parse::<PostProcess>().unwrap(), PostProcess::Tvn);
        assert!("zca".parse::<PostProcess>().is_err());
    }
}
