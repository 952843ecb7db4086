//! Choosing the visible genes: the masking step of the MAE. Unlike image MAEs, which mask a fixed
//! grid, a sample shows the encoder `K` genes drawn from those its dataset profiles — zeros
//! included, so the model also learns which genes are silent — and is asked to reconstruct all of
//! its profiled genes. Pure CPU code, run by the loader.

use rand::Rng;

/// Sampling weights `w_i ∝ m_i^τ` from `m_i`, the number of cells in which gene `i` is detected.
/// `τ = 0` is uniform, `τ > 0` favours frequently detected genes, `τ < 0` rare ones.
///
/// A gene never detected (`m_i = 0`) is weighted as if `m_i = 1`: with `τ < 0` its weight would
/// otherwise be infinite and with `τ > 0` zero, yet a profiled gene that is always 0 is still a
/// valid visible token (its silence is information), so it should be drawn as often as the rarest
/// detected genes.
pub fn frequency_weights(n_cells: &[u64], tau: f64) -> Vec<f64> {
    n_cells.iter().map(|&m| (m.max(1) as f64).powf(tau)).collect()
}

/// Draws `k` distinct genes from `profiled` (vocabulary indices), uniformly or with probability
/// proportional to `weights[gene]` (indexed by vocabulary gene, e.g. from [`frequency_weights`]),
/// without replacement. If fewer than `k` genes are profiled, returns all of them; the loader pads
/// the rest. The order of the result carries no meaning (the encoder has no positions).
/// Deterministic given the state of `rng`.
///
/// Weighted draws use Efraimidis–Spirakis keys `u^(1/w)` (in log form, `ln u / w`): keeping the `k`
/// largest keys is an exact weighted sample without replacement in O(P) for P profiled genes.
/// Genes of weight 0 are drawn only once every positive-weight gene is taken.
///
/// Panics if a weight is negative or not finite, or if `weights` does not cover a profiled gene.
pub fn sample_visible_genes(profiled: &[u32], k: usize, weights: Option<&[f64]>, rng: &mut impl Rng) -> Vec<u32> {
    if profiled.len() <= k {
        return profiled.to_vec();
    }
    let Some(weights) = weights else {
        return rand::seq::index::sample(rng, profiled.len(), k).into_iter().map(|i| profiled[i]).collect();
    };
    weighted_draw(profiled, k, |gene| weights[gene as usize], rng)
}

/// [`sample_visible_genes`] for one sample whose detected genes are `expressed` (vocabulary
/// indices, strictly increasing, count > 0): a gene the sample did not detect has its weight
/// multiplied by `zero_weight`. 1 is the paper's draw (zeros as likely as detected genes: exactly
/// [`sample_visible_genes`], same random stream); 0 shows detected genes first and fills the
/// remaining slots with zeros, uniformly. In shallow single-cell data most profiled genes are 0
/// in a given cell, so at a small `zero_weight` the same `K` tokens carry several times the
/// detected genes, the cell's information.
pub fn sample_visible_genes_expressed(
    profiled: &[u32],
    k: usize,
    weights: Option<&[f64]>,
    zero_weight: f64,
    expressed: &[u32],
    rng: &mut impl Rng,
) -> Vec<u32> {
    if zero_weight == 1.0 {
        return sample_visible_genes(profiled, k, weights, rng);
    }
    if profiled.len() <= k {
        return profiled.to_vec();
    }
    let weight = |gene: u32| {
        let w = weights.map_or(1.0, |w| w[gene as usize]);
        if expressed.binary_search(&gene).is_ok() { w } else { w * zero_weight }
    };
    weighted_draw(profiled, k, weight, rng)
}

/// `k` of `profiled` (more than `k`) drawn without replacement with probability proportional to
/// `weight(gene)`, by Efraimidis–Spirakis keys; zero weights fill in last, uniformly.
fn weighted_draw(profiled: &[u32], k: usize, weight: impl Fn(u32) -> f64, rng: &mut impl Rng) -> Vec<u32> {
    // (tier, key): positive weights in tier 1 with their ES key; zero weights in tier 0 with a
    // uniform key, so they fill in, uniformly, only when tier 1 runs out.
    let mut keyed: Vec<(u8, f64, u32)> = profiled
        .iter()
        .map(|&gene| {
            let w = weight(gene);
            assert!(w.is_finite() && w >= 0.0, "sampling weight of gene {gene} is {w}");
            // `1 - u` lies in (0, 1], so its log is finite.
            let log_u = (1.0 - rng.random::<f64>()).ln();
            if w > 0.0 { (1, log_u / w, gene) } else { (0, log_u, gene) }
        })
        .collect();
    keyed.select_nth_unstable_by(k - 1, |a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    keyed[..k].iter().map(|&(_, _, gene)| gene).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// How often each vocabulary gene is drawn over `draws` samples of `k` from `profiled`.
    fn frequencies(profiled: &[u32], k: usize, weights: Option<&[f64]>, n_vocab: usize, draws: usize) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = vec![0usize; n_vocab];
        for _ in 0..draws {
            for gene in sample_visible_genes(profiled, k, weights, &mut rng) {
                counts[gene as usize] += 1;
            }
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn draws_exactly_k_distinct_profiled_genes() {
        let profiled: Vec<u32> = (0..200).map(|i| 3 * i + 1).collect();
        let weights = frequency_weights(&vec![5; 600], 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for w in [None, Some(weights.as_slice())] {
            let mut genes = sample_visible_genes(&profiled, 50, w, &mut rng);
            assert_eq!(genes.len(), 50);
            assert!(genes.iter().all(|g| profiled.contains(g)));
            genes.sort_unstable();
            genes.dedup();
            assert_eq!(genes.len(), 50, "duplicates drawn");
        }
    }

    #[test]
    fn fewer_profiled_than_k_returns_all() {
        let profiled = [4u32, 9, 2];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(sample_visible_genes(&profiled, 3, None, &mut rng), profiled);
        assert_eq!(sample_visible_genes(&profiled, 10, Some(&[1.0; 10]), &mut rng), profiled);
    }

    #[test]
    fn deterministic_given_the_seed() {
        let profiled: Vec<u32> = (0..1000).collect();
        let weights = frequency_weights(&(0..1000).collect::<Vec<u64>>(), -0.5);
        for w in [None, Some(weights.as_slice())] {
            let draw = |seed| sample_visible_genes(&profiled, 64, w, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(draw(3), draw(3));
            assert_ne!(draw(3), draw(4));
        }
    }

    #[test]
    fn uniform_draws_every_gene_at_rate_k_over_p() {
        // 10 profiled genes out of 12, k = 3: each profiled gene is visible with probability 0.3.
        let profiled: Vec<u32> = (0..10).collect();
        let freq = frequencies(&profiled, 3, None, 12, 20_000);
        for f in &freq[..10] {
            assert!((f - 0.3).abs() < 0.015, "{freq:?}");
        }
        assert_eq!(&freq[10..], &[0.0, 0.0]);
        // τ = 0 weights give the same distribution through the weighted path.
        let uniform = frequency_weights(&[1, 10, 100, 1000, 0, 7, 7, 7, 7, 7, 7, 7], 0.0);
        let freq = frequencies(&profiled, 3, Some(&uniform), 12, 20_000);
        assert!(freq[..10].iter().all(|f| (f - 0.3).abs() < 0.015), "{freq:?}");
    }

    #[test]
    fn weighted_draws_follow_m_to_the_tau() {
        let n_cells = [1u64, 10, 100, 1000];
        let profiled = [0u32, 1, 2, 3];
        for tau in [1.0, 0.5, -1.0] {
            let w = frequency_weights(&n_cells, tau);
            // A single draw is exactly categorical with p_i = w_i / Σ w.
            let total: f64 = w.iter().sum();
            let freq = frequencies(&profiled, 1, Some(&w), 4, 40_000);
            for (f, wi) in freq.iter().zip(&w) {
                assert!((f - wi / total).abs() < 0.01, "τ = {tau}: {freq:?} vs {w:?}");
            }
            // Two draws without replacement keep the ordering of m^τ.
            let freq = frequencies(&profiled, 2, Some(&w), 4, 20_000);
            let increasing = freq.windows(2).all(|p| p[0] < p[1]);
            assert_eq!(increasing, tau > 0.0, "τ = {tau}: {freq:?}");
        }
    }

    #[test]
    fn undetected_genes_get_the_weight_of_the_rarest() {
        assert_eq!(frequency_weights(&[0, 1, 4], -0.5), vec![1.0, 1.0, 0.5]);
        assert_eq!(frequency_weights(&[0, 1, 4], 2.0), vec![1.0, 1.0, 16.0]);
    }

    #[test]
    fn zero_weights_only_fill_in() {
        let weights = [0.0, 1.0, 0.0, 2.0, 0.0];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..100 {
            let mut genes = sample_visible_genes(&[0, 1, 2, 3, 4], 3, Some(&weights), &mut rng);
            genes.sort_unstable();
            assert!(genes.contains(&1) && genes.contains(&3), "{genes:?}");
        }
    }

    #[test]
    fn zero_weight_one_is_the_papers_draw_and_zero_shows_detected_genes_first() {
        let profiled: Vec<u32> = (0..40).collect();
        let expressed = [3u32, 7, 8, 20, 31];
        let draw = |zero_weight: f64, k: usize, seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            sample_visible_genes_expressed(&profiled, k, None, zero_weight, &expressed, &mut rng)
        };
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            assert_eq!(draw(1.0, 8, seed), sample_visible_genes(&profiled, 8, None, &mut rng));
            // zero_weight 0: every detected gene first, the other 3 slots from the zeros.
            let genes = draw(0.0, 8, seed);
            assert_eq!(genes.len(), 8);
            assert!(expressed.iter().all(|g| genes.contains(g)), "{genes:?}");
            // Fewer slots than detected genes: only detected genes.
            assert!(draw(0.0, 4, seed).iter().all(|g| expressed.contains(g)));
        }
        // In between, a single draw is categorical: P(detected) = 5 / (5 + 35 · w).
        let w = 0.1;
        let hits = (0..20_000).filter(|&s| expressed.contains(&draw(w, 1, 1_000 + s)[0])).count() as f64 / 20_000.0;
        assert!((hits - 5.0 / (5.0 + 35.0 * w)).abs() < 0.015, "{hits}");
    }
}
