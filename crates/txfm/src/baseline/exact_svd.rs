//! Exact truncated SVD of a column-centred sparse matrix streamed in row blocks, for when the
//! smaller side is a few thousand or less: an f64 eigendecomposition of AᵀA (`[p, p]`, when
//! p ≤ n) or of A Aᵀ (`[n, n]`, when n < p), which gives what scikit-learn's
//! `PCA(svd_solver="full")` (and so scanpy's `pca` on a dense matrix) gives, to rounding.
//!
//! Why not only the randomized solver: on inputs with few genes and a flat spectrum past the
//! leading components (a targeted panel, 300 HVGs of a real screen), subspace iteration gets
//! the explained variances right long before it gets the trailing components' directions, and the
//! benchmark built on those directions then finds other pairs than the exact PCA's.
//!
//! A = X − 1 μᵀ is never formed. AᵀA = XᵀX − n μμᵀ, accumulated from each row's pairs of
//! non-zeros (Σ over rows of nnz²/2 products, spread over threads by rows, each thread with its
//! own `[p, p]`); the scores are then A V, one more pass ([`super::randomized_svd::project`]).
//! A Aᵀ = X Xᵀ − s 1ᵀ − 1 sᵀ + (μᵀμ) 1 1ᵀ with s = X μ, accumulated from each column's pairs
//! (the columns gathered over all blocks first); components V = Aᵀ U Σ⁻¹, scores U Σ.

use tch::Tensor;

use super::progress::FitProgress;
use super::randomized_svd::{check_shape, flip_signs, project, split, sum_parts, RowBlocks, Svd, SvdSolver};
use crate::Result;

/// The exact solver is chosen ([`SvdSolver::Auto`]) when the smaller side is at most this...
pub const EXACT_MAX_DIM: usize = 4_000;
/// ...and its accumulation takes at most this many pair products (about a minute on two cores).
pub const EXACT_MAX_PAIRS: f64 = 1.5e11;
/// Most bytes of the columns gathered for A Aᵀ (12 per non-zero).
const GATHER_MAX_BYTES: f64 = 2.0 * (1u64 << 30) as f64;
/// Most bytes of the per-thread `[p, p]` (or `[n, n]`) f64 sums, all threads together.
const SUMS_MAX_BYTES: usize = 1 << 30;

/// How an exact SVD of `x` would run, and what it would cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactPlan {
    /// A Aᵀ (`[n, n]`) rather than AᵀA (`[p, p]`).
    pub gram_of_rows: bool,
    /// Pair products of the accumulation.
    pub pairs: f64,
    /// Non-zeros of `x`.
    pub nnz: u64,
}

impl ExactPlan {
    /// One pass over `x`'s structure (no values are read into sums).
    pub fn of(x: &mut dyn RowBlocks) -> Result<Self> {
        let (n, p) = (x.n_rows(), x.n_cols());
        let gram_of_rows = n < p;
        let (mut pairs, mut nnz) = (0.0f64, 0u64);
        let mut per_col = vec![0u64; if gram_of_rows { p } else { 0 }];
        let mut per_row: Vec<u64> = Vec::new();
        x.for_each_block(&mut |b| {
            nnz += b.nnz() as u64;
            if gram_of_rows {
                for (j, c) in per_col.iter_mut().enumerate() {
                    *c += b.colptr[j + 1] - b.colptr[j];
                }
            } else {
                per_row.clear();
                per_row.resize(b.n_rows, 0);
                for &r in &b.rows {
                    per_row[r as usize] += 1;
                }
                pairs += per_row.iter().map(|&m| (m * (m + 1) / 2) as f64).sum::<f64>();
            }
            Ok(())
        })?;
        if gram_of_rows {
            pairs = per_col.iter().map(|&m| (m * (m + 1) / 2) as f64).sum();
        }
        Ok(ExactPlan { gram_of_rows, pairs, nnz })
    }

    /// Whether [`SvdSolver::Auto`] takes the exact solver for an `n × p` matrix.
    pub fn is_cheap(&self, n: usize, p: usize) -> bool {
        n.min(p) <= EXACT_MAX_DIM
            && self.pairs <= EXACT_MAX_PAIRS
            && (!self.gram_of_rows || self.nnz as f64 * 12.0 <= GATHER_MAX_BYTES)
    }
}

/// The leading `k` singular triplets of `X − 1 μᵀ`, exactly (f64 sums, LAPACK's symmetric
/// eigensolver), signs as [`super::randomized_svd::randomized_svd`] fixes them. `progress` hears
/// each block's rows: two passes over the data (one with the plan's).
pub fn exact_svd(
    x: &mut dyn RowBlocks,
    mean: &[f64],
    k: usize,
    threads: usize,
    plan: &ExactPlan,
    progress: &mut dyn FnMut(FitProgress),
) -> Result<Svd> {
    let (n, p) = (x.n_rows(), x.n_cols());
    check_shape(n, p, mean, k)?;
    progress(FitProgress::Stage { passes: 2, name: "exact SVD".into() });
    let on_rows = &mut |rows| progress(FitProgress::Rows(rows));
    let side = if plan.gram_of_rows { n } else { p };
    let threads = threads.clamp(1, (SUMS_MAX_BYTES / (side * side * 8).max(1)).max(1));
    if plan.gram_of_rows {
        gram_of_rows(x, mean, k, threads, on_rows)
    } else {
        gram_of_cols(x, mean, k, threads, on_rows)
    }
}

/// Top `k` eigenpairs of the symmetric `g: [m, m]` (upper triangle filled), descending:
/// eigenvalues clamped at 0, eigenvectors `[m, k]` row-major.
fn top_eigen(g: Vec<f64>, m: usize, k: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let t = Tensor::from_slice(&g).view([m as i64, m as i64]);
    // LAPACK reads one triangle; the upper (j ≥ i of row i) is the one filled.
    let (evals, evecs) = t.f_linalg_eigh("U")?;
    let evals: Vec<f64> = Vec::try_from(evals)?;
    let values = (0..k).map(|c| evals[m - 1 - c].max(0.0)).collect();
    let vecs = evecs.flip([1]).narrow(1, 0, k as i64).contiguous();
    Ok((values, Vec::try_from(vecs.view(-1))?))
}

/// AᵀA by rows' pairs, its eigenvectors as components, scores A V.
fn gram_of_cols(
    x: &mut dyn RowBlocks,
    mean: &[f64],
    k: usize,
    threads: usize,
    on_rows: &mut dyn FnMut(usize),
) -> Result<Svd> {
    let (n, p) = (x.n_rows(), x.n_cols());
    let mut sums: Vec<Vec<f64>> = (0..threads).map(|_| vec![0.0; p * p]).collect();
    let (mut rowptr, mut cols, mut vals, mut weight) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    x.for_each_block(&mut |b| {
        // The block by rows, columns increasing within each row (the columns are walked in order).
        let rows = b.n_rows;
        rowptr.clear();
        rowptr.resize(rows + 1, 0u64);
        for &r in &b.rows {
            rowptr[r as usize + 1] += 1;
        }
        weight.clear();
        weight.push(0u64);
        for r in 0..rows {
            let m = rowptr[r + 1];
            rowptr[r + 1] += rowptr[r];
            weight.push(weight[r] + m * (m + 1) / 2);
        }
        cols.resize(b.nnz(), 0u32);
        vals.resize(b.nnz(), 0.0f64);
        let mut next: Vec<u64> = rowptr[..rows].to_vec();
        for j in 0..p {
            let (rs, vs) = b.col(j);
            for (&r, &v) in rs.iter().zip(vs) {
                let at = &mut next[r as usize];
                cols[*at as usize] = j as u32;
                vals[*at as usize] = v as f64;
                *at += 1;
            }
        }
        let (rowptr, cols, vals) = (&rowptr, &cols, &vals);
        std::thread::scope(|s| {
            for (range, g) in split(&weight, threads).into_iter().zip(sums.iter_mut()) {
                s.spawn(move || {
                    for r in range {
                        let (a, e) = (rowptr[r] as usize, rowptr[r + 1] as usize);
                        let (cs, vs) = (&cols[a..e], &vals[a..e]);
                        for (i, (&ji, &vi)) in cs.iter().zip(vs).enumerate() {
                            let row = &mut g[ji as usize * p..(ji as usize + 1) * p];
                            for (&jj, &vj) in cs[i..].iter().zip(&vs[i..]) {
                                row[jj as usize] += vi * vj;
                            }
                        }
                    }
                });
            }
        });
        on_rows(rows);
        Ok(())
    })?;
    let mut g = sum_parts(sums);
    // AᵀA = XᵀX − n μμᵀ, upper triangle.
    for i in 0..p {
        for j in i..p {
            g[i * p + j] -= n as f64 * mean[i] * mean[j];
        }
    }
    let (values, v) = top_eigen(g, p, k)?;
    let mut components: Vec<f64> = (0..k * p).map(|i| v[(i % p) * k + i / p]).collect();
    flip_signs(&mut components, p, k);
    let scores = project(x, &components, mean, k, threads, on_rows)?;
    Ok(Svd {
        n_components: k,
        components,
        singular_values: values.iter().map(|v| v.sqrt()).collect(),
        scores,
        solver: SvdSolver::Exact,
        passes: 3,
        residual: None,
    })
}

/// A Aᵀ by columns' pairs (columns gathered over every block), its eigenvectors U as the scores'
/// directions; components Aᵀ U Σ⁻¹, scores U Σ.
fn gram_of_rows(
    x: &mut dyn RowBlocks,
    mean: &[f64],
    k: usize,
    threads: usize,
    on_rows: &mut dyn FnMut(usize),
) -> Result<Svd> {
    let (n, p) = (x.n_rows(), x.n_cols());
    // Every column's (row, value) pairs, over all blocks, in row order.
    let mut per_col: Vec<Vec<(u32, f64)>> = vec![Vec::new(); p];
    x.for_each_block(&mut |b| {
        for (j, col) in per_col.iter_mut().enumerate() {
            let (rs, vs) = b.col(j);
            col.extend(rs.iter().zip(vs).map(|(&r, &v)| ((b.row_start + r as usize) as u32, v as f64)));
        }
        on_rows(b.n_rows);
        Ok(())
    })?;
    let mut weight = vec![0u64; p + 1];
    for (j, col) in per_col.iter().enumerate() {
        let m = col.len() as u64;
        weight[j + 1] = weight[j] + m * (m + 1) / 2;
    }
    let mut sums: Vec<Vec<f64>> = (0..threads).map(|_| vec![0.0; n * n]).collect();
    let per_col = &per_col;
    std::thread::scope(|s| {
        for (range, g) in split(&weight, threads).into_iter().zip(sums.iter_mut()) {
            s.spawn(move || {
                for col in &per_col[range] {
                    for (i, &(ri, vi)) in col.iter().enumerate() {
                        let row = &mut g[ri as usize * n..(ri as usize + 1) * n];
                        for &(rj, vj) in &col[i..] {
                            row[rj as usize] += vi * vj;
                        }
                    }
                }
            });
        }
    });
    let mut g = sum_parts(sums);
    // s = X μ; A Aᵀ = X Xᵀ − s 1ᵀ − 1 sᵀ + (μᵀμ) 1 1ᵀ, upper triangle.
    let mut s = vec![0.0f64; n];
    for (col, &m) in per_col.iter().zip(mean) {
        for &(r, v) in col {
            s[r as usize] += v * m;
        }
    }
    let mm: f64 = mean.iter().map(|m| m * m).sum();
    for i in 0..n {
        for j in i..n {
            g[i * n + j] += mm - s[i] - s[j];
        }
    }
    let (values, u) = top_eigen(g, n, k)?;
    let sigma: Vec<f64> = values.iter().map(|v| v.sqrt()).collect();
    // V = Aᵀ U Σ⁻¹ = (Xᵀ U − μ (1ᵀU)) Σ⁻¹; a direction without variance (σ = 0) has no component.
    let mut colsum = vec![0.0f64; k];
    for row in u.chunks_exact(k) {
        colsum.iter_mut().zip(row).for_each(|(c, &v)| *c += v);
    }
    let mut components = vec![0.0f64; k * p];
    for (j, col) in per_col.iter().enumerate() {
        for c in 0..k {
            let xu: f64 = col.iter().map(|&(r, v)| v * u[r as usize * k + c]).sum();
            components[c * p + j] = xu - mean[j] * colsum[c];
        }
    }
    let tiny = sigma[0] * 1e-12;
    for (c, &sc) in sigma.iter().enumerate() {
        let row = &mut components[c * p..(c + 1) * p];
        let inv = if sc > tiny { 1.0 / sc } else { 0.0 };
        row.iter_mut().for_each(|v| *v *= inv);
    }
    let flips = flip_signs(&mut components, p, k);
    let scores = (0..n * k).map(|i| (u[i] * sigma[i % k] * flips[i % k]) as f32).collect();
    Ok(Svd {
        n_components: k,
        components,
        singular_values: sigma,
        scores,
        solver: SvdSolver::Exact,
        passes: 2,
        residual: None,
    })
}
