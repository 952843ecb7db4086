//! All-pairs cosine similarities among m genes, streamed in blocks of rows, and exact order
//! statistics of them in bounded memory.
//!
//! The null distribution is the m(m−1)/2 similarities of distinct gene pairs (the upper
//! triangle). Held whole it would be 800 MB of f32 at 20,000 genes, so it is never stored: each
//! pass recomputes it block by block (`[block, m − r0]` of f32 through one matmul) and the k-th
//! smallest value is found by a two-pass radix select on the value's order-preserving 32-bit key:
//! a histogram of the top 16 bits locates the bucket of each wanted rank, a histogram of the low
//! 16 bits inside those buckets gives the value exactly. Memory: the `[m, dim]` vectors, one block
//! and 2^16 counters per bucket searched.
//!
//! The similarities of the queried pairs (known pairs, random pairs) are read from the same
//! blocks as the null during the first pass, so a query equal to a null value is bitwise equal.

use tch::{Kind, Tensor};

use crate::Result;

/// Rows of the similarity matrix computed at once.
const BLOCK_ROWS: i64 = 256;

/// Unit-norm rows `[m, dim]` (f32), whose dot products are the cosine similarities. A zero row
/// stays zero: its similarity to anything is 0 rather than NaN.
pub fn unit_rows(x: &Tensor) -> Tensor {
    let norm = x.to_kind(Kind::Float).norm_scalaropt_dim(2, [1i64].as_slice(), true);
    let norm = norm.where_self(&norm.gt(0.0), &Tensor::ones_like(&norm));
    (x.to_kind(Kind::Float) / norm).contiguous()
}

/// Calls `f(i, sims)` for each row `i` of the upper triangle of `unit @ unitᵀ`, with
/// `sims: [m − i − 1]` the similarities of `(i, j)` for `j = i + 1 .. m`.
pub fn for_each_upper_row(unit: &Tensor, f: &mut dyn FnMut(usize, &[f32])) -> Result<()> {
    let m = unit.size()[0];
    let mut r0 = 0;
    while r0 < m {
        let b = BLOCK_ROWS.min(m - r0);
        let block = unit.narrow(0, r0, b).matmul(&unit.narrow(0, r0, m - r0).tr()).contiguous();
        let block: Vec<f32> = Vec::try_from(block.view(-1))?;
        let width = (m - r0) as usize;
        for ii in 0..b as usize {
            f(r0 as usize + ii, &block[ii * width + ii + 1..(ii + 1) * width]);
        }
        r0 += b;
    }
    Ok(())
}

/// Order-preserving key of a float (−0 and +0 share one: they compare equal).
fn key(x: f32) -> u32 {
    let b = if x == 0.0 { 0u32 } else { x.to_bits() };
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

fn from_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// The values of 0-based ranks `ranks` (each < the number of values) in the ascending order of
/// the values `visit` streams, from two passes of `visit`. Values must not be NaN.
pub fn select_ranks(visit: &mut dyn FnMut(&mut dyn FnMut(&[f32])) -> Result<()>, ranks: &[u64]) -> Result<Vec<f32>> {
    let mut top = vec![0u64; 1 << 16];
    visit(&mut |vals| {
        for &v in vals {
            top[(key(v) >> 16) as usize] += 1;
        }
    })?;
    // Bucket of each rank, and the rank's position inside its bucket.
    let cumulative: Vec<u64> = top.iter().scan(0u64, |s, &c| { *s += c; Some(*s) }).collect();
    let located: Vec<(usize, u64)> = ranks
        .iter()
        .map(|&r| {
            let b = cumulative.partition_point(|&c| c <= r);
            (b, r - if b == 0 { 0 } else { cumulative[b - 1] })
        })
        .collect();
    let mut buckets: Vec<usize> = located.iter().map(|&(b, _)| b).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let mut slot = vec![usize::MAX; 1 << 16];
    for (s, &b) in buckets.iter().enumerate() {
        slot[b] = s;
    }
    let mut low = vec![vec![0u64; 1 << 16]; buckets.len()];
    visit(&mut |vals| {
        for &v in vals {
            let k = key(v);
            let s = slot[(k >> 16) as usize];
            if s != usize::MAX {
                low[s][(k & 0xffff) as usize] += 1;
            }
        }
    })?;
    Ok(located
        .iter()
        .map(|&(b, within)| {
            let hist = &low[slot[b]];
            let mut seen = 0u64;
            let lo = hist.iter().position(|&c| { seen += c; seen > within }).expect("rank within its bucket");
            from_key(((b as u32) << 16) | lo as u32)
        })
        .collect())
}

/// The recall decision of [`crate::eval::recall::is_recalled`] for a null of `n` values, as two
/// order statistics: a query is in the low tail when #{null ≤ q} ≤ k_low, i.e. q < s[k_low], and in
/// the high tail when #{null < q} ≥ k_high, i.e. q > s[k_high − 1] (s ascending, 0-based).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailRanks {
    pub n: u64,
    /// Largest r with r / n ≤ low (evaluated in f64, as `is_recalled` does).
    pub k_low: u64,
    /// Smallest r with r / n ≥ high.
    pub k_high: u64,
}

impl TailRanks {
    pub fn new(n: u64, low: f64, high: f64) -> Self {
        let (low, high) = (low.min(high), low.max(high));
        let nf = n as f64;
        let mut k_low = ((low * nf).floor() as u64).min(n);
        while k_low < n && (k_low + 1) as f64 / nf <= low {
            k_low += 1;
        }
        while k_low > 0 && k_low as f64 / nf > low {
            k_low -= 1;
        }
        let mut k_high = ((high * nf).ceil() as u64).min(n);
        while k_high > 0 && (k_high - 1) as f64 / nf >= high {
            k_high -= 1;
        }
        while k_high < n && (k_high as f64 / nf) < high {
            k_high += 1;
        }
        TailRanks { n, k_low, k_high }
    }

    /// The order statistics the decision needs (those inside 0..n).
    pub fn ranks(&self) -> Vec<u64> {
        let mut r = Vec::new();
        if self.k_low < self.n {
            r.push(self.k_low);
        }
        if self.k_high > 0 && self.k_high <= self.n {
            r.push(self.k_high - 1);
        }
        r
    }
}

/// Recall thresholds as values: recalled iff `q < below` or `q > above` (`below = +∞` when the
/// low tail takes everything; `above = −∞` when the high tail does).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Cutoffs {
    pub below: f32,
    pub above: f32,
}

impl Cutoffs {
    /// From [`TailRanks`] and the values of its [`TailRanks::ranks`], in that order.
    pub fn new(t: &TailRanks, values: &[f32]) -> Self {
        let mut it = values.iter().copied();
        let below = if t.k_low < t.n { it.next().expect("value of k_low") } else { f32::INFINITY };
        let above = if t.k_high > 0 && t.k_high <= t.n { it.next().expect("value of k_high - 1") } else { f32::NEG_INFINITY };
        Cutoffs { below, above }
    }

    pub fn is_recalled(&self, q: f32) -> bool {
        !q.is_nan() && (q < self.below || q > self.above)
    }
}

/// numpy's `percentile(…, 100·q)` (linear interpolation) from the order statistics at
/// `floor((n−1)q)` and `ceil((n−1)q)`: the ranks to select, then the value.
pub fn percentile_ranks(n: u64, q: f64) -> (u64, u64, f64) {
    let pos = (n - 1) as f64 * q;
    (pos.floor() as u64, pos.ceil() as u64, pos - pos.floor())
}

pub fn interpolate(lo: f32, hi: f32, frac: f64) -> f64 {
    lo as f64 + (hi as f64 - lo as f64) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_preserve_order() {
        let v = [-3.5f32, -1e-30, -0.0, 0.0, 1e-30, 0.25, 7.0];
        for w in v.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{} {}", w[0], w[1]);
            assert_eq!(from_key(key(w[1])), if w[1] == 0.0 { 0.0 } else { w[1] });
        }
    }

    #[test]
    fn radix_select_equals_sorting() {
        let vals: Vec<f32> = (0..10_000u32).map(|i| ((i.wrapping_mul(2654435761) % 20011) as f32 / 10005.5) - 1.0).collect();
        let mut sorted = vals.clone();
        sorted.sort_by(f32::total_cmp);
        let ranks = [0u64, 1, 499, 500, 5000, 9499, 9999];
        let got = select_ranks(&mut |f| { f(&vals[..3000]); f(&vals[3000..]); Ok(()) }, &ranks).unwrap();
        let want: Vec<f32> = ranks.iter().map(|&r| sorted[r as usize]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn tail_ranks_agree_with_the_rank_rule() {
        use crate::eval::recall::is_recalled;
        for n in [1u64, 7, 20, 21, 100, 999] {
            let null: Vec<f64> = (0..n).map(|i| (i / 2) as f64).collect(); // ties included
            let t = TailRanks::new(n, 0.05, 0.95);
            let r = t.ranks();
            let vals: Vec<f32> = r.iter().map(|&k| null[k as usize] as f32).collect();
            let c = Cutoffs::new(&t, &vals);
            for q in -2..(n as i64 + 2) {
                let q = q as f64 / 2.0 - 0.25;
                for q in [q, q + 0.25] {
                    assert_eq!(c.is_recalled(q as f32), is_recalled(&null, q, 0.05, 0.95), "n {n} q {q}");
                }
            }
        }
    }
}
