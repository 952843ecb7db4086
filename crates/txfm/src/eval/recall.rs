//! Recall of known relationships against a null, with the semantics of EFAAR's `compute_recall`:
//! a query value (e.g. the cosine similarity of a known gene pair) is recalled when it lies in
//! either tail of the null distribution (all pairs' similarities).
//!
//! With `n` null values, `rank_left(q) = #{null < q} / n` and `rank_right(q) = #{null ≤ q} / n`
//! (numpy `searchsorted` with `side="left"` / `"right"`). A query is recalled at thresholds
//! `(low, high)` when `rank_right(q) ≤ low` or `rank_left(q) ≥ high`; ties with the null therefore
//! count against the query on both sides. EFAAR's default thresholds are (0.05, 0.95).
//!
//! The null only needs to be sorted once ([`sort_null`]); each query then costs two binary
//! searches, so nulls of 10^8 values (all gene pairs of a 15k-gene map) are fine.

/// EFAAR's default recall thresholds: the 5th and 95th percentiles.
pub const DEFAULT_THRESHOLDS: (f64, f64) = (0.05, 0.95);

/// Sorts a null distribution ascending, as [`recall`] needs it.
///
/// Panics if a value is NaN: a NaN null has no rank, and EFAAR's numpy sort would move it to the
/// end and silently shift every percentile.
pub fn sort_null(mut null: Vec<f64>) -> Vec<f64> {
    assert!(null.iter().all(|v| !v.is_nan()), "NaN in the null distribution");
    null.sort_unstable_by(f64::total_cmp);
    null
}

/// `(#{null < q}, #{null ≤ q})` for an ascending `null_sorted`.
pub fn ranks(null_sorted: &[f64], q: f64) -> (usize, usize) {
    (null_sorted.partition_point(|&v| v < q), null_sorted.partition_point(|&v| v <= q))
}

/// Whether `q` lies in a tail of the null at `(low, high)` (each in [0, 1]; their order does not
/// matter). NaN queries are never recalled.
pub fn is_recalled(null_sorted: &[f64], q: f64, low: f64, high: f64) -> bool {
    if q.is_nan() || null_sorted.is_empty() {
        return false;
    }
    let (low, high) = (low.min(high), low.max(high));
    let n = null_sorted.len() as f64;
    let (left, right) = ranks(null_sorted, q);
    // Same float divisions as numpy, so a query exactly on a threshold decides identically.
    right as f64 / n <= low || left as f64 / n >= high
}

/// The share of `query` values recalled against an ascending `null_sorted` at `(low, high)`.
/// NaN for an empty query or null.
pub fn recall(null_sorted: &[f64], query: &[f64], low: f64, high: f64) -> f64 {
    debug_assert!(null_sorted.windows(2).all(|w| w[0] <= w[1]), "null not sorted");
    if query.is_empty() || null_sorted.is_empty() {
        return f64::NAN;
    }
    let hits = query.iter().filter(|&&q| is_recalled(null_sorted, q, low, high)).count();
    hits as f64 / query.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_tails() {
        // Null 1..=20: 5% of 20 is 1 value, so only q with #{null ≤ q} ≤ 1 (q < 2) is in the low
        // tail, and only q with #{null < q} ≥ 19 (q > 19) in the high tail.
        let null: Vec<f64> = (1..=20).map(f64::from).collect();
        assert!(is_recalled(&null, 1.0, 0.05, 0.95)); // right rank 1/20 = 0.05 ≤ 0.05
        assert!(is_recalled(&null, 0.0, 0.05, 0.95));
        assert!(!is_recalled(&null, 2.0, 0.05, 0.95)); // right rank 0.10
        assert!(!is_recalled(&null, 19.0, 0.05, 0.95)); // left rank 18/20 = 0.90
        assert!(is_recalled(&null, 19.5, 0.05, 0.95)); // left rank 19/20 = 0.95 ≥ 0.95
        assert!(is_recalled(&null, 20.0, 0.05, 0.95));
        let q = [0.0, 1.0, 2.0, 10.0, 19.0, 19.5, 25.0, f64::NAN];
        assert_eq!(recall(&null, &q, 0.05, 0.95), 4.0 / 8.0);
        // Threshold order does not matter.
        assert_eq!(recall(&null, &q, 0.95, 0.05), 4.0 / 8.0);
    }

    #[test]
    fn ties_count_against_the_query() {
        // Null of ten equal values: q equal to them has left rank 0 and right rank 1, in no tail.
        let null = vec![0.5; 10];
        assert!(!is_recalled(&null, 0.5, 0.05, 0.95));
        assert!(is_recalled(&null, 0.4, 0.05, 0.95));
        assert!(is_recalled(&null, 0.6, 0.05, 0.95));
    }

    #[test]
    fn empty_inputs_are_nan_and_sorting_works() {
        assert!(recall(&[], &[1.0], 0.05, 0.95).is_nan());
        assert!(recall(&[1.0], &[], 0.05, 0.95).is_nan());
        assert_eq!(sort_null(vec![3.0, -1.0, 2.0]), vec![-1.0, 2.0, 3.0]);
        assert_eq!(ranks(&[1.0, 2.0, 2.0, 3.0], 2.0), (1, 3));
    }
}
