//! Truncated SVD of a column-centred sparse matrix streamed in row blocks, by a randomized block
//! Krylov method (Halko, Martinsson & Tropp 2011 for the randomized range finder and the final
//! Rayleigh–Ritz step; Musco & Musco 2015 for block Krylov over subspace iteration).
//!
//! A = X − 1 μᵀ (`X: [n, p]` sparse, `μ: [p]` its column means) is never formed: A Q = X Q − 1 (μᵀQ)
//! and Aᵀ Y = Xᵀ Y − μ (1ᵀY). Each pass streams X once and applies AᵀA to one `[p, l]` block
//! (l = k + oversampling): Y_b = A_b Q for a block of rows, then Z += A_bᵀ Y_b, so Y is never
//! held. The blocks and their images form an orthonormal Krylov basis of AᵀA (at most
//! `KRYLOV_BLOCKS` (4) blocks, then a restart from its leading Ritz vectors), whose Ritz pairs are
//! tested after every pass. A last pass computes Y = A V `[n, l]` (V the leading Ritz vectors,
//! stored as f32) and YᵀY, whose eigendecomposition (Rayleigh–Ritz) gives the singular values and
//! the rotation W into singular vectors: components (VW)ᵀ, scores YW.
//! Memory: O(n·l + p·l·KRYLOV_BLOCKS + threads·rows·l) plus one block. Passes: until the Ritz pairs
//! pass a residual test ([`SvdConfig::tol`]), at most `n_iter + 1`. A fixed count was not enough:
//! on 300 genes of real screens 10 passes left trailing components at |corr| 0.97 with the exact
//! ones. Subspace iteration (keeping only the last image) then needed 35–84 passes on real
//! inputs and did not pass within 100 on 20,000 simulated genes; the Krylov basis passes in 8–16
//! and 30 (BENCHMARKS.md).
//!
//! Blocks come stored by column ([`CscBlock`]) so that both products touch each gene's row of Q
//! or Z once per block, and spend their per-non-zero random accesses on the block's rows of Y,
//! which stay in cache; by rows, every non-zero fetched a row of Q and of Z, which for 20,000
//! genes do not fit in cache (3× slower). Threads split a block's columns. The products run in
//! f32 (Q, μᵀQ, Y_b; AVX2 where the CPU has it): they are nearly all of the time, and f32 halves
//! their memory traffic and doubles their vector width. Sums over more than one block (Z, 1ᵀY,
//! YᵀY) are kept in f64, and the QR and Rayleigh–Ritz steps are f64 throughout.

use std::ops::Range;

use tch::Tensor;

use super::progress::FitProgress;
use crate::data::CsrChunk;
use crate::{Error, Result};

/// A `[n_rows, n_cols]` matrix streamed in consecutive row blocks.
pub trait RowBlocks {
    fn n_rows(&self) -> usize;
    fn n_cols(&self) -> usize;
    /// Calls `f` on blocks covering all rows in order (`[rows, n_cols]` each).
    fn for_each_block(&mut self, f: &mut dyn FnMut(&CscBlock) -> Result<()>) -> Result<()>;
}

/// Rows `row_start..row_start + n_rows` of a sparse matrix, stored by column.
#[derive(Debug, Clone, PartialEq)]
pub struct CscBlock {
    pub row_start: usize,
    pub n_rows: usize,
    /// Column `j` holds entries `colptr[j]..colptr[j + 1]`. `[n_cols + 1]`
    pub colptr: Vec<u64>,
    /// Row of each entry, counted from `row_start`. `[nnz]`
    pub rows: Vec<u32>,
    pub data: Vec<f32>,
}

impl CscBlock {
    /// Rows `range` of `csr`, by column.
    pub fn from_csr(csr: &CsrChunk, range: Range<usize>) -> Self {
        let p = csr.n_cols;
        let (a, b) = (csr.indptr[range.start] as usize, csr.indptr[range.end] as usize);
        let mut colptr = vec![0u64; p + 1];
        for &j in &csr.indices[a..b] {
            colptr[j as usize + 1] += 1;
        }
        for j in 0..p {
            colptr[j + 1] += colptr[j];
        }
        let mut next: Vec<u64> = colptr[..p].to_vec();
        let (mut rows, mut data) = (vec![0u32; b - a], vec![0.0f32; b - a]);
        for (r, i) in range.clone().enumerate() {
            let (idx, val) = csr.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                let at = &mut next[j as usize];
                rows[*at as usize] = r as u32;
                data[*at as usize] = v;
                *at += 1;
            }
        }
        CscBlock { row_start: csr.row_start + range.start, n_rows: range.len(), colptr, rows, data }
    }

    pub fn n_cols(&self) -> usize {
        self.colptr.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.rows.len()
    }

    /// Rows (within the block) and values of column `j`.
    pub fn col(&self, j: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.colptr[j] as usize, self.colptr[j + 1] as usize);
        (&self.rows[a..b], &self.data[a..b])
    }
}

/// Which solver computes the SVD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SvdSolver {
    /// Exact where it is cheap ([`super::exact_svd::ExactPlan::is_cheap`]: the smaller side at
    /// most a few thousand), randomized otherwise.
    #[default]
    Auto,
    /// [`super::exact_svd::exact_svd`], whatever the size (scikit-learn's `svd_solver="full"`).
    Exact,
    /// [`randomized_svd`], iterated until its residual test passes.
    Randomized,
}

impl std::str::FromStr for SvdSolver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(SvdSolver::Auto),
            "exact" | "full" => Ok(SvdSolver::Exact),
            "randomized" => Ok(SvdSolver::Randomized),
            _ => Err(Error::Invalid(format!("unknown SVD solver `{s}` (auto, exact or randomized)"))),
        }
    }
}

impl std::fmt::Display for SvdSolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SvdSolver::Auto => "auto",
            SvdSolver::Exact => "exact",
            SvdSolver::Randomized => "randomized",
        })
    }
}

/// How hard to iterate. The randomized solver stops once every wanted Ritz pair's residual
/// ‖AᵀA v − θ v‖ is within `tol` · θ of its value (a component then lies within about
/// `tol` · θ / gap of the exact one), or after `n_iter` passes, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SvdConfig {
    pub n_components: usize,
    /// Extra basis vectors beyond `n_components`: the tail of the wanted spectrum converges
    /// faster when the basis is wider.
    pub oversample: usize,
    /// Most passes of AᵀA over the data before the final one.
    pub n_iter: usize,
    /// The residual test's bound; 0 runs all `n_iter` passes.
    #[serde(default = "default_tol")]
    pub tol: f64,
    #[serde(default)]
    pub solver: SvdSolver,
    pub seed: u64,
    /// Worker threads for the sparse products (0 = one per available core).
    pub threads: usize,
}

/// The residual bound of [`SvdConfig::tol`]: on the real screens of `tests/baseline.rs` (relative
/// eigengaps down to 3e-4) it gives every separated component at |corr| ≥ 0.999 with the exact one.
pub const DEFAULT_TOL: f64 = 1e-4;

fn default_tol() -> f64 {
    DEFAULT_TOL
}

impl SvdConfig {
    /// `threads`, with 0 resolved to one per available core.
    pub fn worker_threads(&self) -> usize {
        if self.threads == 0 { std::thread::available_parallelism().map_or(1, |t| t.get()) } else { self.threads }
    }
}

impl Default for SvdConfig {
    fn default() -> Self {
        SvdConfig { n_components: 50, oversample: 20, n_iter: 100, tol: DEFAULT_TOL, solver: SvdSolver::Auto, seed: 0, threads: 0 }
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
    /// The solver that ran (never `Auto`).
    pub solver: SvdSolver,
    /// Passes over the data.
    pub passes: usize,
    /// The randomized solver's last residual test: the largest ‖AᵀA v − θ v‖ / θ over the wanted
    /// components (`None` for the exact solver, or when `tol` is 0).
    pub residual: Option<f64>,
}

/// Truncated SVD of `X − 1 μᵀ`. `mean: [p]`. `progress` hears each block's rows, and after each
/// pass how many more it expects (from the residual's rate of decrease so far; at most `n_iter + 1`
/// passes in all).
pub fn randomized_svd(
    x: &mut dyn RowBlocks,
    mean: &[f64],
    cfg: &SvdConfig,
    progress: &mut dyn FnMut(FitProgress),
) -> Result<Svd> {
    let (n, p) = (x.n_rows(), x.n_cols());
    let k = cfg.n_components;
    check_shape(n, p, mean, k)?;
    let l = (k + cfg.oversample).min(n).min(p);
    let threads = cfg.worker_threads();

    // Its steps here (QR of `[p, l]`, eigh of `[l, l]`, two thin products) are small, and an OpenMP
    // team costs more than it saves on them: a QR of `[2000, 70]` took 110 ms on two threads of a
    // busy 2-core machine, 3 ms on one.
    let _one = crate::runtime::TorchThreads::set(1);
    let mut krylov = Krylov::new(orthonormalise(&gaussian(p * l, cfg.seed), p, l)?, p, l);
    let (mut passes, mut residual, mut last) = (1, None, None);
    progress(FitProgress::Stage { passes: cfg.n_iter + 1, name: "randomized SVD".into() });
    for i in 1..=cfg.n_iter {
        let z = normal_pass(x, &krylov.newest()?, mean, l, threads, &mut |rows| progress(FitProgress::Rows(rows)))?;
        passes += 1;
        let ritz = krylov.add_image(&z, k)?;
        let done = if cfg.tol > 0.0 {
            let r = ritz.residual;
            let left = if r <= cfg.tol { 0 } else { passes_left(residual, r, cfg.tol, cfg.n_iter - i) };
            let name = format!("randomized SVD: pass {i}, residual {r:.1e} (stops at {:.0e})", cfg.tol);
            progress(FitProgress::Stage { passes: left + 1, name });
            residual = Some(r);
            r <= cfg.tol
        } else {
            false
        };
        if done || i == cfg.n_iter {
            last = Some(ritz);
            break;
        }
        krylov.extend(&ritz)?;
    }
    // With no power pass (`n_iter` 0) the basis is the random start.
    let q = match &last {
        Some(ritz) => krylov.leading(ritz)?,
        None => krylov.newest()?,
    };
    let (y, gram) = final_pass(x, &q, mean, l, threads, &mut |rows| progress(FitProgress::Rows(rows)))?;

    // Rayleigh–Ritz: YᵀY = W Λ Wᵀ; σ = √λ, components (QW)ᵀ, scores Y W.
    let (evals, evecs) = Tensor::from_slice(&gram).view([l as i64, l as i64]).f_linalg_eigh("L")?;
    let evals: Vec<f64> = Vec::try_from(evals)?;
    let singular_values: Vec<f64> = (0..k).map(|c| evals[l - 1 - c].max(0.0).sqrt()).collect();
    // eigh is ascending: component c is eigen-column l − 1 − c. `[l, k]`
    let w = evecs.flip([1]).narrow(1, 0, k as i64);
    let qw = Tensor::from_slice(&q).view([p as i64, l as i64]).f_matmul(&w)?;
    let mut components: Vec<f64> = Vec::try_from(qw.tr().contiguous().view(-1))?;
    let flip = flip_signs(&mut components, p, k);
    let w = (w * Tensor::from_slice(&flip)).to_kind(tch::Kind::Float);
    let yw = Tensor::from_slice(&y).view([n as i64, l as i64]).f_matmul(&w)?;
    let scores: Vec<f32> = Vec::try_from(yw.contiguous().view(-1))?;
    Ok(Svd { n_components: k, components, singular_values, scores, solver: SvdSolver::Randomized, passes, residual })
}

/// Checks that `mean` has one value per column of an `n × p` matrix and that `k` components fit.
pub(super) fn check_shape(n: usize, p: usize, mean: &[f64], k: usize) -> Result<()> {
    if mean.len() != p {
        return Err(Error::Invalid(format!("{} column means for {p} columns", mean.len())));
    }
    if k == 0 || k > n.min(p) {
        return Err(Error::Invalid(format!("{k} components asked of a {n} × {p} matrix (at most {})", n.min(p))));
    }
    Ok(())
}

/// The element-wise sum of per-thread partial sums (all of one length).
pub(super) fn sum_parts(mut parts: Vec<Vec<f64>>) -> Vec<f64> {
    let mut total = parts.pop().expect("at least one part");
    for part in parts {
        axpy(1.0, &part, &mut total);
    }
    total
}

/// Makes each component's largest-magnitude loading positive (scikit-learn's
/// `svd_flip(u_based_decision=False)`). `components: [k, p]`. Returns each one's sign (±1). `[k]`
pub(super) fn flip_signs(components: &mut [f64], p: usize, k: usize) -> Vec<f64> {
    let mut flip = vec![1.0f64; k];
    for (c, s) in flip.iter_mut().enumerate() {
        let row = &mut components[c * p..(c + 1) * p];
        let big = row.iter().copied().fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        if big < 0.0 {
            *s = -1.0;
            row.iter_mut().for_each(|v| *v = -*v);
        }
    }
    flip
}

/// Passes still to run, at most `most`, if the residual keeps falling from `last` to `now` at the
/// rate of its last pass (it shrinks about geometrically once the basis holds the leading
/// directions): an estimate for the progress display only.
fn passes_left(last: Option<f64>, now: f64, tol: f64, most: usize) -> usize {
    if most == 0 {
        return 0;
    }
    match last {
        Some(last) if now < last && now > 0.0 => {
            let per_pass = (last / now).ln();
            ((now / tol).ln() / per_pass).ceil().clamp(1.0, most as f64) as usize
        }
        _ => most,
    }
}

/// The scores A V of orthonormal components `v: [k, p]` (row-major, as [`Svd::components`]): one
/// pass. `[n, k]`
pub(super) fn project(
    x: &mut dyn RowBlocks,
    v: &[f64],
    mean: &[f64],
    k: usize,
    threads: usize,
    on_rows: &mut dyn FnMut(usize),
) -> Result<Vec<f32>> {
    let p = mean.len();
    let q: Vec<f64> = (0..p * k).map(|i| v[(i % k) * p + i / k]).collect();
    Ok(final_pass(x, &q, mean, k, threads, on_rows)?.0)
}

/// Blocks of `l` columns the Krylov basis holds before it restarts from its leading Ritz vectors:
/// memory `2 · KRYLOV_BLOCKS · p · l` f64 for the basis and its image. The Ritz pairs of a basis
/// holding the last few images converge much faster than subspace iteration's (which keeps only
/// the last) where the spectrum is flat: on 20,000 simulated genes subspace iteration had not
/// passed the residual test after 100 passes.
const KRYLOV_BLOCKS: usize = 4;

/// A restarted block Krylov basis of AᵀA (block Lanczos with full re-orthogonalisation and thick
/// restarts; Musco & Musco 2015 for why a Krylov space beats the last power iterate): an
/// orthonormal `K: [p, w]` and its exact image `Z = AᵀA K` from the passes so far, so that every
/// Rayleigh–Ritz step is on the true operator. Each pass adds the image of the newest block; the
/// next block is that image made orthogonal to K. At `KRYLOV_BLOCKS` blocks the basis restarts
/// from its leading `l` Ritz vectors, whose images are `Z W`: no pass is spent on a restart.
struct Krylov {
    p: i64,
    l: i64,
    /// K `[p, w]`, orthonormal columns.
    basis: Tensor,
    /// Z = AᵀA K for all of K's columns but the newest block's until its pass. `[p, w − l]` or `[p, w]`
    image: Tensor,
    /// H = Kᵀ Z over the columns Z covers, grown a block at a time. `[w − l, w − l]` or `[w, w]`
    h: Tensor,
}

/// The Ritz pairs of the current basis: values descending, their coordinates in the basis, and
/// the largest relative residual ‖Z w − θ K w‖ / θ over the `k` leading ones.
struct Ritz {
    /// `[w]`, descending.
    values: Tensor,
    /// `[w, w]`, columns in the order of `values`.
    vectors: Tensor,
    residual: f64,
}

impl Krylov {
    fn new(q: Vec<f64>, p: usize, l: usize) -> Self {
        let opts = (tch::Kind::Double, tch::Device::Cpu);
        let basis = Tensor::from_slice(&q).view([p as i64, l as i64]);
        Krylov { p: p as i64, l: l as i64, image: Tensor::zeros([p as i64, 0], opts), h: Tensor::zeros([0, 0], opts), basis }
    }

    /// The newest block, row-major `[p, l]`, for the next pass.
    fn newest(&self) -> Result<Vec<f64>> {
        let w = self.basis.size()[1];
        Ok(Vec::try_from(self.basis.narrow(1, w - self.l, self.l).contiguous().view(-1))?)
    }

    /// Records `z = AᵀA` (newest block) (`[p, l]`) and returns the Ritz pairs of the basis.
    fn add_image(&mut self, z: &[f64], k: usize) -> Result<Ritz> {
        let z = Tensor::from_slice(z).view([self.p, self.l]);
        // H grows by Kᵀz: its new rows are the new columns transposed (AᵀA is symmetric).
        let w0 = self.image.size()[1];
        let c = self.basis.tr().f_matmul(&z)?;
        let (old, new) = (c.narrow(0, 0, w0), c.narrow(0, w0, self.l));
        let top = Tensor::cat(&[&self.h, &old], 1);
        let bottom = Tensor::cat(&[old.tr(), (&new + new.tr()) * 0.5], 1);
        self.h = Tensor::cat(&[top, bottom], 0);
        self.image = Tensor::cat(&[&self.image, &z], 1);
        let (theta, w) = self.h.f_linalg_eigh("L")?;
        let (theta, w) = (theta.flip([0]), w.flip([1]));
        let (tk, wk) = (theta.narrow(0, 0, k as i64), w.narrow(1, 0, k as i64));
        let r = self.image.f_matmul(&wk)? - self.basis.f_matmul(&wk)? * &tk;
        let norms: Vec<f64> = Vec::try_from((&r * &r).f_sum_dim_intlist([0i64].as_slice(), false, tch::Kind::Double)?.sqrt())?;
        let tk: Vec<f64> = Vec::try_from(tk)?;
        let residual = norms.iter().zip(&tk).map(|(&r, &t)| if t > 0.0 { r / t } else { 0.0 }).fold(0.0, f64::max);
        Ok(Ritz { values: theta, vectors: w, residual })
    }

    /// Adds the next block: the newest block's image made orthogonal to the basis. A full basis
    /// (`KRYLOV_BLOCKS` blocks, or no room for another block in `p` dimensions) first restarts
    /// from its leading `l` Ritz vectors (their images are Z W, their H the Ritz values); where
    /// even those leave no room (`2l > p`), the step is subspace iteration's (the basis becomes
    /// the span of their images).
    fn extend(&mut self, ritz: &Ritz) -> Result<()> {
        let w = self.basis.size()[1];
        let mut next = self.image.narrow(1, w - self.l, self.l);
        if w + self.l > (KRYLOV_BLOCKS as i64 * self.l).min(self.p) {
            let lead = ritz.vectors.narrow(1, 0, self.l);
            self.basis = self.basis.f_matmul(&lead)?;
            self.image = self.image.f_matmul(&lead)?;
            self.h = ritz.values.narrow(0, 0, self.l).diag(0);
            next = self.image.shallow_clone();
            if 2 * self.l > self.p {
                self.basis = Tensor::f_linalg_qr(&next, "reduced")?.0;
                self.image = self.image.narrow(1, 0, 0);
                self.h = self.h.narrow(0, 0, 0).narrow(1, 0, 0);
                return Ok(());
            }
        }
        // Block classical Gram–Schmidt, twice (each time followed by a QR within the block):
        // orthogonal to working precision even where the image lies almost inside the basis.
        for _ in 0..2 {
            next = &next - self.basis.f_matmul(&self.basis.tr().f_matmul(&next)?)?;
            next = Tensor::f_linalg_qr(&next, "reduced")?.0;
        }
        self.basis = Tensor::cat(&[&self.basis, &next], 1);
        Ok(())
    }

    /// The leading `l` Ritz vectors of the basis (its pairs `ritz`), row-major `[p, l]`.
    fn leading(&self, ritz: &Ritz) -> Result<Vec<f64>> {
        let v = self.basis.f_matmul(&ritz.vectors.narrow(1, 0, self.l))?;
        Ok(Vec::try_from(v.contiguous().view(-1))?)
    }
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

/// What every block's product needs, in f32: Q `[p, ls]` and μᵀQ `[ls]`, rows padded with zeros
/// from l to `ls`, a whole number of AVX2 vectors, so that no product has a scalar tail.
struct Kernel {
    q: Vec<f32>,
    shift: Vec<f32>,
    ls: usize,
}

impl Kernel {
    fn new(q: &[f64], mean: &[f64], l: usize) -> Self {
        let ls = l.next_multiple_of(8);
        let pad = |v: &[f64]| -> Vec<f32> {
            v.chunks_exact(l).flat_map(|r| r.iter().map(|&x| x as f32).chain(std::iter::repeat_n(0.0, ls - l))).collect()
        };
        let shift = mean_times(mean, q, l);
        Kernel { q: pad(q), shift: pad(&shift), ls }
    }
}

/// μᵀQ: the row every block's X Q is shifted by. `[l]`
fn mean_times(mean: &[f64], q: &[f64], l: usize) -> Vec<f64> {
    let mut s = vec![0.0; l];
    for (j, &m) in mean.iter().enumerate() {
        axpy(m, &q[j * l..(j + 1) * l], &mut s);
    }
    s
}

#[inline(always)]
fn axpy<T: Copy + std::ops::Mul<Output = T> + std::ops::AddAssign>(a: T, x: &[T], y: &mut [T]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * *x;
    }
}

/// Defines each `$name` as `$generic` compiled a second time for AVX2, taken where the CPU has it:
/// the products are nearly all of the run time, and the release build targets the x86-64
/// baseline (SSE2, four f32 lanes rather than eight) so that the binary runs anywhere.
macro_rules! avx2_where_available {
    ($(fn $name:ident = $generic:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn wide($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { wide($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    )*};
}

avx2_where_available! {
    fn times_q = times_q_generic(b: &CscBlock, cols: Range<usize>, q: &[f32], l: usize, y: &mut [f32]);
    fn transpose_times = transpose_times_generic(b: &CscBlock, cols: Range<usize>, y: &[f32], l: usize, ls: usize, z: &mut [f64]);
    fn add_gram = add_gram_generic(y: &[f32], l: usize, gram: &mut [f64]);
}

/// y += X_b[:, cols] Q[cols]. `q: [p, l]`, `y: [rows, l]` (`l` padded, see [`Kernel`]).
#[inline(always)]
fn times_q_generic(b: &CscBlock, cols: Range<usize>, q: &[f32], l: usize, y: &mut [f32]) {
    for j in cols {
        let qj = &q[j * l..(j + 1) * l];
        let (rows, vals) = b.col(j);
        for (&i, &v) in rows.iter().zip(vals) {
            let i = i as usize;
            axpy(v, qj, &mut y[i * l..(i + 1) * l]);
        }
    }
}

/// z += X_b[:, cols]ᵀ y. `y: [rows, ls]` (padded, see [`Kernel`]), `z: [cols.len(), l]`.
#[inline(always)]
fn transpose_times_generic(b: &CscBlock, cols: Range<usize>, y: &[f32], l: usize, ls: usize, z: &mut [f64]) {
    let mut acc = vec![0.0f32; ls];
    for (zj, j) in z.chunks_exact_mut(l).zip(cols) {
        let (rows, vals) = b.col(j);
        // A whole row of sums would be loaded and stored again for every non-zero; a panel of 32
        // stays in registers across the column (`ls` is a multiple of 8).
        let mut at = 0;
        while at + 32 <= ls {
            column_panel::<32>(rows, vals, y, ls, at, &mut acc[at..at + 32]);
            at += 32;
        }
        while at < ls {
            column_panel::<8>(rows, vals, y, ls, at, &mut acc[at..at + 8]);
            at += 8;
        }
        zj.iter_mut().zip(&acc).for_each(|(z, &a)| *z += a as f64);
    }
}

/// out = Σ v · y[i, at..at + N] over one column's rows `i` and values `v`. `y: [rows, ls]`.
#[inline(always)]
fn column_panel<const N: usize>(rows: &[u32], vals: &[f32], y: &[f32], ls: usize, at: usize, out: &mut [f32]) {
    let mut acc = [0.0f32; N];
    for (&i, &v) in rows.iter().zip(vals) {
        let yi: &[f32; N] = y[i as usize * ls + at..][..N].try_into().expect("N values");
        for t in 0..N {
            acc[t] += v * yi[t];
        }
    }
    out.copy_from_slice(&acc);
}

/// gram += yᵀy. `y: [rows, l]`, `gram: [l, l]`.
#[inline(always)]
fn add_gram_generic(y: &[f32], l: usize, gram: &mut [f64]) {
    let mut yi = vec![0.0f64; l];
    for row in y.chunks_exact(l) {
        yi.iter_mut().zip(row).for_each(|(a, &b)| *a = b as f64);
        for a in 0..l {
            axpy(yi[a], &yi, &mut gram[a * l..(a + 1) * l]);
        }
    }
}

/// Contiguous ranges of `0..len` (columns or rows), one per thread, of about equal weight, where
/// `ends[i]` is the total weight of the first `i` items (`[len + 1]`).
pub(super) fn split(ends: &[u64], threads: usize) -> Vec<Range<usize>> {
    let len = ends.len() - 1;
    let total = ends[len].max(1);
    let mut out = Vec::with_capacity(threads);
    let mut start = 0;
    for t in 1..=threads {
        let end = if t == threads { len } else { ends.partition_point(|&e| e < total * t as u64 / threads as u64) };
        let end = end.clamp(start, len);
        out.push(start..end);
        start = end;
    }
    out
}

/// Y_b = A_b Q (`y_parts[0][..rows·ls]`, `[rows, ls]`, padded): each thread sums its columns'
/// share into its own part, then the parts are added and μᵀQ taken off.
fn block_times_q(b: &CscBlock, k: &Kernel, cols: &[Range<usize>], y_parts: &mut [Vec<f32>]) {
    let len = b.n_rows * k.ls;
    std::thread::scope(|s| {
        for (c, y) in cols.iter().zip(y_parts.iter_mut()) {
            let y = &mut y[..len];
            y.fill(0.0);
            s.spawn(move || times_q(b, c.clone(), &k.q, k.ls, y));
        }
    });
    let (y, rest) = y_parts.split_first_mut().expect("at least one thread");
    for other in rest {
        axpy(1.0, &other[..len], &mut y[..len]);
    }
    for row in y[..len].chunks_exact_mut(k.ls) {
        row.iter_mut().zip(&k.shift).for_each(|(v, s)| *v -= s);
    }
}

/// Makes `parts` hold buffers for [`block_times_q`]: one `[rows, ls]` part per thread, reused
/// across blocks and replaced only when a block needs more room.
fn ensure_parts(parts: &mut Vec<Vec<f32>>, threads: usize, rows: usize, ls: usize) {
    if parts.is_empty() || parts[0].len() < rows * ls {
        *parts = (0..threads).map(|_| vec![0.0; rows * ls]).collect();
    }
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
    let k = Kernel::new(q, mean, l);
    let (mut z, mut colsum) = (vec![0.0f64; p * l], vec![0.0f64; l]);
    let mut parts: Vec<Vec<f32>> = Vec::new();
    x.for_each_block(&mut |block| {
        let ls = k.ls;
        ensure_parts(&mut parts, threads, block.n_rows, ls);
        let cols = split(&block.colptr, threads);
        block_times_q(block, &k, &cols, &mut parts);
        let y = &parts[0][..block.n_rows * ls];
        for row in y.chunks_exact(ls) {
            colsum.iter_mut().zip(row).for_each(|(c, &v)| *c += v as f64);
        }
        std::thread::scope(|s| {
            let mut rest = &mut z[..];
            for c in cols {
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(c.len() * l);
                rest = tail;
                s.spawn(move || transpose_times(block, c, y, l, ls, mine));
            }
        });
        on_rows(block.n_rows);
        Ok(())
    })?;
    for (j, &m) in mean.iter().enumerate() {
        axpy(-m, &colsum, &mut z[j * l..(j + 1) * l]);
    }
    Ok(z)
}

/// The last pass: Y = A Q (`[n, l]`, f32) and YᵀY (`[l, l]`, f64).
fn final_pass(
    x: &mut dyn RowBlocks,
    q: &[f64],
    mean: &[f64],
    l: usize,
    threads: usize,
    on_rows: &mut dyn FnMut(usize),
) -> Result<(Vec<f32>, Vec<f64>)> {
    let n = x.n_rows();
    let k = Kernel::new(q, mean, l);
    let mut y_all = vec![0.0f32; n * l];
    let mut grams: Vec<Vec<f64>> = (0..threads).map(|_| vec![0.0; l * l]).collect();
    let mut parts: Vec<Vec<f32>> = Vec::new();
    let mut row0 = 0;
    x.for_each_block(&mut |block| {
        let rows = block.n_rows;
        if row0 + rows > n {
            return Err(Error::Invalid(format!("blocks hold more than the {n} rows announced")));
        }
        ensure_parts(&mut parts, threads, rows, k.ls);
        block_times_q(block, &k, &split(&block.colptr, threads), &mut parts);
        let y = &mut y_all[row0 * l..(row0 + rows) * l];
        for (out, row) in y.chunks_exact_mut(l).zip(parts[0].chunks_exact(k.ls)) {
            out.copy_from_slice(&row[..l]);
        }
        let y = &*y;
        let even: Vec<u64> = (0..=rows as u64).collect();
        std::thread::scope(|s| {
            for (r, gram) in split(&even, threads).into_iter().zip(grams.iter_mut()) {
                s.spawn(move || add_gram(&y[r.start * l..r.end * l], l, gram));
            }
        });
        row0 += rows;
        on_rows(rows);
        Ok(())
    })?;
    if row0 != n {
        return Err(Error::Invalid(format!("blocks held {row0} rows, {n} announced")));
    }
    Ok((y_all, sum_parts(grams)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csc_block_holds_the_rows_asked_for() {
        let mut csr = CsrChunk::new(10, 3);
        csr.push_row([(0, 1.0), (2, 2.0)]);
        csr.push_row([(1, 3.0)]);
        csr.push_row([(0, 4.0), (1, 5.0)]);
        let b = CscBlock::from_csr(&csr, 1..3);
        assert_eq!((b.row_start, b.n_rows, b.n_cols(), b.nnz()), (11, 2, 3, 3));
        assert_eq!(b.col(0), (&[1u32][..], &[4.0f32][..]));
        assert_eq!(b.col(1), (&[0u32, 1][..], &[3.0f32, 5.0][..]));
        assert_eq!(b.col(2), (&[][..], &[][..]));
    }

    #[test]
    fn passes_left_follow_the_residuals_rate() {
        // Ten times smaller per pass, two decades to go: two passes.
        assert_eq!(passes_left(Some(1e-1), 1e-2, 1e-4, 50), 2);
        // Capped by the passes allowed; no rate yet, or a residual that rose: the cap.
        assert_eq!(passes_left(Some(1.1e-2), 1e-2, 1e-4, 5), 5);
        assert_eq!(passes_left(None, 1e-2, 1e-4, 7), 7);
        assert_eq!(passes_left(Some(1e-3), 1e-2, 1e-4, 7), 7);
        assert_eq!(passes_left(Some(1e-1), 1e-2, 1e-4, 0), 0);
    }

    #[test]
    fn split_balances_weight() {
        assert_eq!(split(&[0, 5, 6, 7, 10], 2), vec![0..1, 1..4]);
        assert_eq!(split(&[0, 1, 2, 3], 1), vec![0..3]);
        assert_eq!(split(&[0, 0, 0], 3), vec![0..0, 0..0, 0..2]);
    }
}
