//! Truncated SVD of a column-centred sparse matrix that is streamed from disk, by randomized
//! subspace iteration (Halko, Martinsson & Tropp 2011, algorithms 4.4 and 5.1).
//!
//! A = X − 1 μᵀ (`X: [n, p]` sparse, `μ: [p]` its column means) is never formed: A Q = X Q − 1 (μᵀQ)
//! and Aᵀ Y = Xᵀ Y − μ (1ᵀY). Each pass streams X once and applies AᵀA to an orthonormal
//! `[p, l]` basis Q (l = k + oversampling): Y_b = A_b Q for a block of rows, then Z += A_bᵀ Y_b,
//! so Y is never held; Q is re-orthonormalised (QR) between passes. A last pass computes
//! Y = A Q `[n, l]` (stored as f32) and YᵀY, whose eigendecomposition (Rayleigh–Ritz) gives the
//! singular values and the rotation W into singular vectors: components (QW)ᵀ, scores YW.
//! Memory: O(n·l + threads·p·l) plus one block; passes: `n_iter + 1`.

use tch::Tensor;

use crate::data::CsrChunk;
use crate::{Error, Result};

/// A `[n_rows, n_cols]` matrix streamed in consecutive row blocks.
pub trait RowBlocks {
    fn n_rows(&self) -> usize;
    fn n_cols(&self) -> usize;
    /// Calls `f` on blocks covering all rows in order (`[rows, n_cols]` each).
    fn for_each_block(&mut self, f: &mut dyn FnMut(&CsrChunk) -> Result<()>) -> Result<()>;
}

/// How hard to iterate. On a simulated screen whose spectrum is flat beyond a few components (the
/// hard case), 10 passes with 20 extra vectors give every explained-variance ratio within 2e-5 of
/// exact PCA and their sum within 1e-4 (6 passes: 1.3e-4 and 1.2e-3; see `tests/baseline.rs`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SvdConfig {
    pub n_components: usize,
    /// Extra basis vectors beyond `n_components`: the tail of the wanted spectrum converges
    /// faster when the basis is wider.
    pub oversample: usize,
    /// Passes of AᵀA over the data before the final one.
    pub n_iter: usize,
    pub seed: u64,
    /// Worker threads for the sparse products (0 = one per available core).
    pub threads: usize,
}

impl Default for SvdConfig {
    fn default() -> Self {
        SvdConfig { n_components: 50, oversample: 20, n_iter: 10, seed: 0, threads: 0 }
    }
}

/// The leading `k` singular triplets of A, signs fixed so each component's largest-magnitude
/// loading is positive (scikit-learn's `svd_flip(u_based_decision=False)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Svd {
    pub n_components: usize,
    /// Right singular vectors, row-major `[k, p]`.
    pub components: Vec<f64>,
    /// `[k]`, descending.
    pub singular_values: Vec<f64>,
    /// A V = U Σ, row-major `[n, k]`.
    pub scores: Vec<f32>,
}

/// Truncated SVD of `X − 1 μᵀ`. `mean: [p]`. `on_rows` is told how many rows each block had
/// (`n_iter + 1` passes of `n` rows in all), for progress.
pub fn randomized_svd(
    x: &mut dyn RowBlocks,
    mean: &[f64],
    cfg: &SvdConfig,
    on_rows: &mut dyn FnMut(usize),
) -> Result<Svd> {
    let (n, p) = (x.n_rows(), x.n_cols());
    if mean.len() != p {
        return Err(Error::Invalid(format!("{} column means for {p} columns", mean.len())));
    }
    let k = cfg.n_components;
    if k == 0 || k > n.min(p) {
        return Err(Error::Invalid(format!("{k} components asked of a {n} × {p} matrix (at most {})", n.min(p))));
    }
    let l = (k + cfg.oversample).min(n).min(p);
    let threads = if cfg.threads == 0 { std::thread::available_parallelism().map_or(1, |t| t.get()) } else { cfg.threads };

    let mut q = orthonormalise(&gaussian(p * l, cfg.seed), p, l)?;
    for _ in 0..cfg.n_iter {
        let z = normal_pass(x, &q, mean, l, threads, on_rows)?;
        q = orthonormalise(&z, p, l)?;
    }
    let (y, gram) = final_pass(x, &q, mean, l, threads, on_rows)?;

    // Rayleigh–Ritz: YᵀY = W Λ Wᵀ; σ = √λ, components (QW)ᵀ, scores Y W.
    let (evals, evecs) = Tensor::from_slice(&gram).view([l as i64, l as i64]).f_linalg_eigh("L")?;
    let evals: Vec<f64> = Vec::try_from(evals)?;
    let evecs: Vec<f64> = Vec::try_from(evecs.contiguous().view(-1))?;
    // eigh is ascending: component c is eigen-column l − 1 − c.
    let w = |r: usize, c: usize| evecs[r * l + (l - 1 - c)];
    let singular_values: Vec<f64> = (0..k).map(|c| evals[l - 1 - c].max(0.0).sqrt()).collect();
    let mut components = vec![0.0f64; k * p];
    for j in 0..p {
        let qj = &q[j * l..(j + 1) * l];
        for c in 0..k {
            components[c * p + j] = (0..l).map(|r| qj[r] * w(r, c)).sum();
        }
    }
    let mut flip = vec![1.0f64; k];
    for (c, s) in flip.iter_mut().enumerate() {
        let row = &components[c * p..(c + 1) * p];
        let big = row.iter().copied().fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        if big < 0.0 {
            *s = -1.0;
        }
    }
    for c in 0..k {
        components[c * p..(c + 1) * p].iter_mut().for_each(|v| *v *= flip[c]);
    }
    let mut scores = vec![0.0f32; n * k];
    for i in 0..n {
        let yi = &y[i * l..(i + 1) * l];
        for c in 0..k {
            let s: f64 = (0..l).map(|r| yi[r] as f64 * w(r, c)).sum();
            scores[i * k + c] = (s * flip[c]) as f32;
        }
    }
    Ok(Svd { n_components: k, components, singular_values, scores })
}

/// `[len]` standard normal values from `seed`.
fn gaussian(len: usize, seed: u64) -> Vec<f64> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// An orthonormal basis (reduced QR) of the columns of `z: [p, l]`, row-major.
fn orthonormalise(z: &[f64], p: usize, l: usize) -> Result<Vec<f64>> {
    let t = Tensor::from_slice(z).view([p as i64, l as i64]);
    let (q, _) = Tensor::f_linalg_qr(&t, "reduced")?;
    Ok(Vec::try_from(q.contiguous().view(-1))?)
}

/// μᵀQ: the row every block's X Q is shifted by. `[l]`
fn mean_times(mean: &[f64], q: &[f64], l: usize) -> Vec<f64> {
    let mut s = vec![0.0; l];
    for (j, &m) in mean.iter().enumerate() {
        axpy(m, &q[j * l..(j + 1) * l], &mut s);
    }
    s
}

#[inline]
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// y = A_i Q for row `i` of `block`: X_i Q − μᵀQ.
#[inline]
fn row_times(block: &CsrChunk, i: usize, q: &[f64], shift: &[f64], l: usize, y: &mut [f64]) {
    y.iter_mut().zip(shift).for_each(|(y, s)| *y = -s);
    let (idx, val) = block.row(i);
    for (&j, &v) in idx.iter().zip(val) {
        let j = j as usize;
        axpy(v as f64, &q[j * l..(j + 1) * l], y);
    }
}

/// Contiguous row ranges of `block`, one per thread, of about equal non-zeros.
fn split_rows(block: &CsrChunk, threads: usize) -> Vec<std::ops::Range<usize>> {
    let (rows, nnz) = (block.n_rows(), block.nnz().max(1));
    let mut out = Vec::with_capacity(threads);
    let mut start = 0;
    for t in 1..=threads {
        let target = (nnz * t / threads) as u64;
        let end = if t == threads { rows } else { start + block.indptr[start..=rows].partition_point(|&p| p < target) };
        let end = end.clamp(start, rows);
        out.push(start..end);
        start = end;
    }
    out
}

/// One pass: AᵀA Q. `[p, l]`
fn normal_pass(
    x: &mut dyn RowBlocks,
    q: &[f64],
    mean: &[f64],
    l: usize,
    threads: usize,
    on_rows: &mut dyn FnMut(usize),
) -> Result<Vec<f64>> {
    let p = mean.len();
    let shift = mean_times(mean, q, l);
    // Per thread: Xᵀ Y accumulated, and 1ᵀ Y.
    let mut acc: Vec<(Vec<f64>, Vec<f64>)> = (0..threads).map(|_| (vec![0.0; p * l], vec![0.0; l])).collect();
    x.for_each_block(&mut |block| {
        let ranges = split_rows(block, threads);
        std::thread::scope(|s| {
            for (range, (z, colsum)) in ranges.into_iter().zip(acc.iter_mut()) {
                let shift = &shift;
                s.spawn(move || {
                    let mut y = vec![0.0; l];
                    for i in range {
                        row_times(block, i, q, shift, l, &mut y);
                        let (idx, val) = block.row(i);
                        for (&j, &v) in idx.iter().zip(val) {
                            let j = j as usize;
                            axpy(v as f64, &y, &mut z[j * l..(j + 1) * l]);
                        }
                        axpy(1.0, &y, colsum);
                    }
                });
            }
        });
        on_rows(block.n_rows());
        Ok(())
    })?;
    let (mut z, mut colsum) = acc.pop().expect("at least one thread");
    for (zt, ct) in acc {
        axpy(1.0, &zt, &mut z);
        axpy(1.0, &ct, &mut colsum);
    }
    for (j, &m) in mean.iter().enumerate() {
        axpy(-m, &colsum, &mut z[j * l..(j + 1) * l]);
    }
    Ok(z)
}

/// The last pass: Y = A Q (`[n, l]`, f32) and YᵀY (`[l, l]`, f64, from the unrounded rows).
fn final_pass(
    x: &mut dyn RowBlocks,
    q: &[f64],
    mean: &[f64],
    l: usize,
    threads: usize,
    on_rows: &mut dyn FnMut(usize),
) -> Result<(Vec<f32>, Vec<f64>)> {
    let n = x.n_rows();
    let shift = mean_times(mean, q, l);
    let mut y_all = vec![0.0f32; n * l];
    let mut grams: Vec<Vec<f64>> = (0..threads).map(|_| vec![0.0; l * l]).collect();
    let mut row0 = 0;
    x.for_each_block(&mut |block| {
        let rows = block.n_rows();
        if row0 + rows > n {
            return Err(Error::Invalid(format!("blocks hold more than the {n} rows announced")));
        }
        let ranges = split_rows(block, threads);
        let mut out = &mut y_all[row0 * l..(row0 + rows) * l];
        std::thread::scope(|s| {
            for (range, gram) in ranges.into_iter().zip(grams.iter_mut()) {
                let (mine, rest) = std::mem::take(&mut out).split_at_mut(range.len() * l);
                out = rest;
                let shift = &shift;
                s.spawn(move || {
                    let mut y = vec![0.0; l];
                    for (r, i) in range.enumerate() {
                        row_times(block, i, q, shift, l, &mut y);
                        for a in 0..l {
                            axpy(y[a], &y, &mut gram[a * l..(a + 1) * l]);
                        }
                        mine[r * l..(r + 1) * l].iter_mut().zip(&y).for_each(|(o, &v)| *o = v as f32);
                    }
                });
            }
        });
        row0 += rows;
        on_rows(rows);
        Ok(())
    })?;
    if row0 != n {
        return Err(Error::Invalid(format!("blocks held {row0} rows, {n} announced")));
    }
    let mut gram = grams.pop().expect("at least one thread");
    for g in grams {
        axpy(1.0, &g, &mut gram);
    }
    Ok((y_all, gram))
}
