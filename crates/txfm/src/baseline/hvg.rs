//! Per-gene statistics of library-normalised expression, from one streaming pass, and the
//! highly-variable-gene selection of Seurat (Satija et al. 2015) as scanpy's
//! `highly_variable_genes(flavor="seurat", n_top_genes=…)` computes it.
//!
//! Seurat flavour, on the normalised counts v = count · target_sum / library_size (scanpy takes
//! `expm1` of its log1p data, which is v again):
//! 1. per gene mean m and variance s² (ddof 1); m = 0 becomes 1e-12;
//! 2. dispersion d = ln(s² / m) (NaN where s² = 0), mean μ = ln(1 + m);
//! 3. μ cut into `n_bins` equal-width bins over [min μ, max μ] as `pandas.cut` does (right-closed,
//!    the lowest edge lowered by 0.1% of the range);
//! 4. normalised dispersion (d − mean_bin(d)) / sd_bin(d) (NaN ignored, sd with ddof 1); a bin whose
//!    sd is undefined (one gene) gives its genes 1 (scanpy sets that bin's mean to 0, sd to its mean);
//! 5. the genes whose normalised dispersion is at least the `n_top`-th highest (ties may add more).

use crate::data::CsrChunk;
use crate::{Error, Result};

use super::input::CountInput;

/// Sums over samples of each gene's normalised count v = count · target_sum / library size.
/// `[n_vars]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneStats {
    pub n_obs: usize,
    pub target_sum: f64,
    /// Σ v and Σ v².
    pub norm_sum: Vec<f64>,
    pub norm_sumsq: Vec<f64>,
}

impl GeneStats {
    /// One pass over `input`.
    pub fn compute(input: &mut CountInput, target_sum: f64) -> Result<Self> {
        let mut s = GeneStats::new(input.n_vars(), target_sum);
        input.for_each_chunk(|chunk, lib| {
            s.add(chunk, lib);
            Ok(())
        })?;
        s.check(input)?;
        Ok(s)
    }

    /// Empty sums over `n_vars` genes, for [`GeneStats::add`] to fill.
    pub fn new(n_vars: usize, target_sum: f64) -> Self {
        GeneStats {
            n_obs: 0,
            target_sum,
            norm_sum: vec![0.0; n_vars],
            norm_sumsq: vec![0.0; n_vars],
        }
    }

    /// Adds the samples of one chunk of raw counts. `chunk: [rows, n_vars]`, `lib: [rows]`.
    pub fn add(&mut self, chunk: &CsrChunk, lib: &[f64]) {
        for (i, &l) in lib.iter().enumerate() {
            let (idx, val) = chunk.row(i);
            let scale = if l > 0.0 { self.target_sum / l } else { 0.0 };
            for (&j, &c) in idx.iter().zip(val) {
                let v = c as f64 * scale;
                let j = j as usize;
                self.norm_sum[j] += v;
                self.norm_sumsq[j] += v * v;
            }
        }
        self.n_obs += lib.len();
    }

    /// Refuses sums of fewer than two samples of `input`, which have no variance.
    pub fn check(&self, input: &CountInput) -> Result<()> {
        if self.n_obs < 2 {
            return Err(Error::format(input.path(), format!("{} sample(s): too few for variances", self.n_obs)));
        }
        Ok(())
    }
}

/// `(Σ, Σ²)` → variances with ddof 1, clamped at 0 against rounding.
pub(super) fn variances(sum: &[f64], sumsq: &[f64], n: usize) -> Vec<f64> {
    let n = n as f64;
    sum.iter().zip(sumsq).map(|(&s, &q)| ((q - s * s / n) / (n - 1.0)).max(0.0)).collect()
}

/// The Seurat-flavour selection and the per-gene values it ranked by. `[n_vars]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct Hvg {
    /// Selected gene indices, increasing.
    pub selected: Vec<usize>,
    /// ln(1 + mean normalised count).
    pub means: Vec<f64>,
    /// ln(variance / mean) of the normalised counts (NaN for constant genes).
    pub dispersions: Vec<f64>,
    pub dispersions_norm: Vec<f64>,
}

/// scanpy's default number of mean bins.
pub const DEFAULT_BINS: usize = 20;

/// Seurat-flavour highly variable genes: the `n_top` genes of highest normalised dispersion.
pub fn highly_variable_seurat(stats: &GeneStats, n_top: usize, n_bins: usize) -> Hvg {
    let n = stats.n_obs as f64;
    let var = variances(&stats.norm_sum, &stats.norm_sumsq, stats.n_obs);
    let mut means = Vec::with_capacity(var.len());
    let mut dispersions = Vec::with_capacity(var.len());
    for (&s, &v) in stats.norm_sum.iter().zip(&var) {
        let m = if s == 0.0 { 1e-12 } else { s / n };
        let d = v / m;
        dispersions.push(if d == 0.0 { f64::NAN } else { d.ln() });
        means.push(m.ln_1p());
    }
    let bins = mean_bins(&means, n_bins);
    let dispersions_norm = normalise_in_bins(&dispersions, &bins, n_bins);

    let mut finite: Vec<f64> = dispersions_norm.iter().copied().filter(|d| !d.is_nan()).collect();
    let selected = if finite.is_empty() || n_top == 0 {
        Vec::new()
    } else {
        finite.sort_unstable_by(|a, b| b.total_cmp(a));
        let cut = finite[n_top.min(finite.len()) - 1];
        (0..dispersions_norm.len()).filter(|&j| dispersions_norm[j] >= cut).collect()
    };
    Hvg { selected, means, dispersions, dispersions_norm }
}

/// `pandas.cut(means, n_bins)` codes: equal-width right-closed bins, the lowest edge lowered by
/// 0.1% of the range so the minimum falls in bin 0.
fn mean_bins(means: &[f64], n_bins: usize) -> Vec<usize> {
    let (lo, hi) = means.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &m| (a.min(m), b.max(m)));
    if !(hi > lo) {
        // pandas widens a zero range around the value: every gene shares one bin.
        return vec![0; means.len()];
    }
    let mut edges: Vec<f64> = (0..=n_bins).map(|i| lo + (hi - lo) * i as f64 / n_bins as f64).collect();
    // numpy's linspace pins the last edge to the stop value exactly.
    edges[n_bins] = hi;
    edges[0] -= (hi - lo) * 0.001;
    means.iter().map(|&m| (edges.partition_point(|&e| e < m).max(1) - 1).min(n_bins - 1)).collect()
}

/// (d − bin mean) / bin sd per gene, NaN-skipping; the one-gene-bin rule of the module doc.
fn normalise_in_bins(d: &[f64], bins: &[usize], n_bins: usize) -> Vec<f64> {
    let (mut cnt, mut sum) = (vec![0usize; n_bins], vec![0.0f64; n_bins]);
    for (&x, &b) in d.iter().zip(bins) {
        if !x.is_nan() {
            cnt[b] += 1;
            sum[b] += x;
        }
    }
    let avg: Vec<f64> = (0..n_bins).map(|b| if cnt[b] > 0 { sum[b] / cnt[b] as f64 } else { f64::NAN }).collect();
    let mut ss = vec![0.0f64; n_bins];
    for (&x, &b) in d.iter().zip(bins) {
        if !x.is_nan() {
            ss[b] += (x - avg[b]).powi(2);
        }
    }
    let (mut avg, mut dev) = (avg, (0..n_bins).map(|b| if cnt[b] > 1 { (ss[b] / (cnt[b] - 1) as f64).sqrt() } else { f64::NAN }).collect::<Vec<_>>());
    for b in 0..n_bins {
        if dev[b].is_nan() {
            dev[b] = avg[b];
            avg[b] = 0.0;
        }
    }
    d.iter().zip(bins).map(|(&x, &b)| (x - avg[b]) / dev[b]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_pandas_cut() {
        // Range 0..10 in 5 bins: edges (-0.01, 2, 4, 6, 8, 10], right-closed.
        let b = mean_bins(&[0.0, 2.0, 2.1, 9.99, 10.0, 4.0], 5);
        assert_eq!(b, vec![0, 0, 1, 4, 4, 1]);
        assert_eq!(mean_bins(&[3.0, 3.0], 20), vec![0, 0]);
    }

    #[test]
    fn one_gene_bins_get_one() {
        let d = [1.0, 2.0, 3.0, 5.0];
        let out = normalise_in_bins(&d, &[0, 0, 0, 1], 2);
        assert!((out[0] + 1.0).abs() < 1e-12 && out[1].abs() < 1e-12 && (out[2] - 1.0).abs() < 1e-12);
        assert_eq!(out[3], 1.0);
    }
}
