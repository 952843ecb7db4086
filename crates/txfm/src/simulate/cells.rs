//! Sampling cells from the truth: labels, library size, latent activities, then one NB count per
//! gene. Cell `i` draws only from its own RNG stream, so a row's content does not depend on how
//! rows are chunked or which thread samples them.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::nb::NegBinomial;
use super::truth::SimTruth;
use crate::data::CsrChunk;

/// Rows per chunk handed to the h5ad writer: ~90 MB of CSR at the `large` preset, few enough
/// in flight to keep memory flat, large enough that per-chunk overhead vanishes.
pub const CHUNK_ROWS: usize = 8_192;

/// The labels of one simulated cell: one `obs` row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellLabels {
    /// Index into [`SimTruth::perturbations`]; `None` for a control.
    pub perturbation: Option<u32>,
    pub batch: u32,
    pub cell_state: u32,
    /// Expected total count of the cell (batch factor included).
    pub library_size: f64,
}

/// The RNG of stream `stream` of `seed`: stream 0 draws the truth, stream `i + 1` draws cell `i`.
/// ChaCha's streams are independent, so cells can be drawn in any order, in parallel.
pub(crate) fn sim_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Cells `rows` (clamped to `n_cells`): counts as CSR with `row_start = rows.start`, and labels.
///
/// Returns `(chunk: [rows.len(), n_genes], labels: [rows.len()])`.
pub fn simulate_rows(truth: &SimTruth, rows: Range<usize>) -> (CsrChunk, Vec<CellLabels>) {
    let rows = rows.start..rows.end.min(truth.config.n_cells);
    let mut sampler = CellSampler::new(truth);
    let mut chunk = CsrChunk::new(rows.start, truth.config.n_genes);
    let labels = rows.map(|i| sampler.sample(i, &mut chunk)).collect();
    (chunk, labels)
}

/// Scratch buffers reused across the cells of a chunk.
struct CellSampler<'a> {
    truth: &'a SimTruth,
    nb: NegBinomial,
    /// Unnormalised expression weights of the current cell. `[n_genes]`
    weights: Vec<f64>,
    /// Log shift of each varying gene in the current cell. `[varying_genes.len()]`
    shift: Vec<f64>,
}

impl<'a> CellSampler<'a> {
    fn new(truth: &'a SimTruth) -> Self {
        CellSampler {
            truth,
            nb: NegBinomial::new(truth.config.dispersion),
            weights: vec![0.0; truth.config.n_genes],
            shift: vec![0.0; truth.varying_genes.len()],
        }
    }

    /// Draws cell `i`, appends its counts to `chunk` and returns its labels.
    fn sample(&mut self, i: usize, chunk: &mut CsrChunk) -> CellLabels {
        let truth = self.truth;
        let cfg = &truth.config;
        let mut rng = sim_rng(cfg.seed, i as u64 + 1);

        let batch = rng.random_range(0..cfg.n_batches);
        let cell_state = rng.random_range(0..cfg.n_cell_states);
        let perturbation =
            (rng.random::<f64>() >= cfg.control_fraction).then(|| rng.random_range(0..cfg.n_perturbations));
        let library_size = (cfg.library_log_mean + cfg.library_log_sd * normal(&mut rng)).exp()
            * truth.batch_library_factor[batch];

        // Unnormalised weights: the batch's profile, times the cell's latent activities, times
        // the perturbation's effects. Unvarying genes keep the batch's precomputed exp().
        self.weights.copy_from_slice(&truth.batch_weights[batch]);
        self.shift.fill(0.0);
        for f in &truth.factors {
            let activity = f.state_mean[cell_state] + f.cell_sd * normal(&mut rng);
            for &(v, loading) in &f.loadings {
                self.shift[v as usize] += activity * loading;
            }
        }
        for (&g, &s) in truth.varying_genes.iter().zip(&self.shift) {
            self.weights[g as usize] *= s.exp();
        }
        if let Some(p) = perturbation {
            for &(g, e) in &truth.perturbations[p].log_effects {
                self.weights[g as usize] *= e.exp();
            }
        }

        // Means are the library size times the normalised weights (proportions sum to 1, so the
        // expected total count is the library size).
        let scale = library_size / self.weights.iter().sum::<f64>();
        let nb = &self.nb;
        chunk.push_row(
            self.weights.iter().enumerate().map(|(g, &w)| (g as u32, nb.sample(scale * w, &mut rng) as f32)),
        );

        CellLabels {
            perturbation: perturbation.map(|p| p as u32),
            batch: batch as u32,
            cell_state: cell_state as u32,
            library_size,
        }
    }
}

/// One standard normal draw.
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::SimConfig;

    /// A whole small simulation, densified: `([n_cells, n_genes] counts, labels)`.
    fn simulate_dense(cfg: &SimConfig) -> (SimTruth, Vec<f32>, Vec<CellLabels>) {
        let truth = SimTruth::new(cfg).unwrap();
        let (chunk, labels) = simulate_rows(&truth, 0..cfg.n_cells);
        (truth, chunk.to_dense(), labels)
    }

    /// Mean over `cells` of ln(1 + counts per 10k) for every gene, the usual normalised scale.
    /// `[n_genes]`
    fn mean_log_cp10k(x: &[f32], n_genes: usize, cells: &[usize]) -> Vec<f64> {
        let mut out = vec![0.0; n_genes];
        for &i in cells {
            let row = &x[i * n_genes..(i + 1) * n_genes];
            let total: f64 = row.iter().map(|&v| v as f64).sum::<f64>().max(1.0);
            for (o, &v) in out.iter_mut().zip(row) {
                *o += (1.0 + 1e4 * v as f64 / total).ln();
            }
        }
        out.iter().map(|s| s / cells.len() as f64).collect()
    }

    fn mean_abs_diff(a: &[f64], b: &[f64], genes: &[usize]) -> f64 {
        genes.iter().map(|&g| (a[g] - b[g]).abs()).sum::<f64>() / genes.len() as f64
    }

    /// Genes in the more expressed half, where differences are not drowned by Poisson noise.
    fn expressed_genes(truth: &SimTruth) -> Vec<usize> {
        let mut sorted = truth.baseline_log.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        (0..truth.baseline_log.len()).filter(|&g| truth.baseline_log[g] >= median).collect()
    }

    #[test]
    fn same_seed_same_cells_other_seed_differs() {
        let cfg = SimConfig::tiny();
        let truth = SimTruth::new(&cfg).unwrap();
        let a = simulate_rows(&truth, 100..300);
        assert_eq!(a, simulate_rows(&SimTruth::new(&cfg).unwrap(), 100..300));
        assert_eq!(a.0.row_start, 100);
        assert_eq!(a.0.n_rows(), 200);
        let b = simulate_rows(&truth, 150..160);
        assert_eq!(a.0.row(50), b.0.row(0), "a row does not depend on its chunk");
        let other = simulate_rows(&SimTruth::new(&SimConfig { seed: 1, ..cfg }).unwrap(), 100..300);
        assert_ne!(a.0, other.0);
        assert_eq!(simulate_rows(&truth, cfg.n_cells - 5..cfg.n_cells + 10).0.n_rows(), 5, "clamped");
    }

    #[test]
    fn sparsity_and_library_sizes_match_the_config() {
        let cfg = SimConfig::tiny();
        let truth = SimTruth::new(&cfg).unwrap();
        let (chunk, labels) = simulate_rows(&truth, 0..cfg.n_cells);
        assert!(chunk.data.iter().all(|&v| v >= 1.0 && v.fract() == 0.0), "positive integer counts");
        let density = chunk.nnz() as f64 / (cfg.n_cells * cfg.n_genes) as f64;
        assert!((0.05..0.25).contains(&density), "density {density}");

        // Library sizes are log-normal around the configured mean (batch factor divided out)…
        let n = cfg.n_cells as f64;
        let mean_ell =
            labels.iter().map(|l| l.library_size / truth.batch_library_factor[l.batch as usize]).sum::<f64>()
                / n;
        let expected = (cfg.library_log_mean + cfg.library_log_sd.powi(2) / 2.0).exp();
        assert!((mean_ell / expected - 1.0).abs() < 0.06, "mean library {mean_ell} vs {expected}");
        // …and a cell's total count is its library size on average.
        let ratio = chunk.row_sums().iter().zip(&labels).map(|(s, l)| s / l.library_size).sum::<f64>() / n;
        assert!((ratio - 1.0).abs() < 0.03, "row sum / library size = {ratio}");
    }

    #[test]
    fn knockdown_lowers_the_target_and_null_perturbations_do_not() {
        let cfg = SimConfig::tiny();
        let (truth, x, labels) = simulate_dense(&cfg);
        let n_genes = cfg.n_genes;
        let controls: Vec<usize> = (0..labels.len()).filter(|&i| labels[i].perturbation.is_none()).collect();
        let control_counts = mean_counts(&x, n_genes, &controls, &labels);
        // Pooled over perturbations: Σ target counts in perturbed cells / Σ the control expectation.
        let pooled_ratio = |active: bool| {
            let (mut seen, mut expected) = (0.0, 0.0);
            for (p, pert) in truth.perturbations.iter().enumerate().filter(|(_, q)| q.active == active) {
                let cells: Vec<usize> =
                    (0..labels.len()).filter(|&i| labels[i].perturbation == Some(p as u32)).collect();
                let t = pert.target as usize;
                seen += mean_counts(&x, n_genes, &cells, &labels)[t] * cells.len() as f64;
                expected += control_counts[t] * cells.len() as f64;
            }
            seen / expected
        };
        let active = pooled_ratio(true);
        assert!(active < 0.6, "knockdown {} left the target at {active:.2}× controls", cfg.knockdown);
        let null = pooled_ratio(false);
        assert!(null > 0.75, "null perturbations moved their target to {null:.2}× controls");
    }

    /// Mean over `cells` of counts scaled to the cell's library size. `[n_genes]`
    fn mean_counts(x: &[f32], n_genes: usize, cells: &[usize], labels: &[CellLabels]) -> Vec<f64> {
        let mut out = vec![0.0; n_genes];
        for &i in cells {
            for (o, &v) in out.iter_mut().zip(&x[i * n_genes..(i + 1) * n_genes]) {
                *o += v as f64 / labels[i].library_size;
            }
        }
        out.iter().map(|s| s / cells.len() as f64).collect()
    }

    #[test]
    fn module_members_move_with_their_target() {
        let cfg = SimConfig::tiny();
        let (truth, x, labels) = simulate_dense(&cfg);
        let expressed = expressed_genes(&truth);
        let controls: Vec<usize> = (0..labels.len()).filter(|&i| labels[i].perturbation.is_none()).collect();
        let control = mean_log_cp10k(&x, cfg.n_genes, &controls);
        let (mut members, mut others) = (Vec::new(), Vec::new());
        for (p, pert) in
            truth.perturbations.iter().enumerate().filter(|(_, q)| q.active && q.module.is_some())
        {
            let cells: Vec<usize> =
                (0..labels.len()).filter(|&i| labels[i].perturbation == Some(p as u32)).collect();
            let perturbed = mean_log_cp10k(&x, cfg.n_genes, &cells);
            let module: Vec<usize> = truth.modules[pert.module.unwrap()]
                .iter()
                .map(|&g| g as usize)
                .filter(|&g| g != pert.target as usize)
                .collect();
            let unaffected: Vec<usize> = expressed
                .iter()
                .copied()
                .filter(|&g| pert.log_effects.iter().all(|e| e.0 as usize != g))
                .collect();
            members.push(mean_abs_diff(&perturbed, &control, &module));
            others.push(mean_abs_diff(&perturbed, &control, &unaffected));
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (members, others) = (mean(&members), mean(&others));
        assert!(members > 2.0 * others, "module members moved {members:.3}, unaffected genes {others:.3}");
    }

    /// Between-batch differences of gene means exceed the noise of a within-batch split, and do
    /// not without a batch effect.
    #[test]
    fn batch_effect_is_present_and_only_when_configured() {
        let ratio = |batch_effect_sd: f64| {
            let cfg = SimConfig { batch_effect_sd, batch_library_sd: 0.0, ..SimConfig::tiny() };
            let (truth, x, labels) = simulate_dense(&cfg);
            let expressed = expressed_genes(&truth);
            let in_batch =
                |b: u32| -> Vec<usize> { (0..labels.len()).filter(|&i| labels[i].batch == b).collect() };
            let (b0, b1) = (in_batch(0), in_batch(1));
            let half = b0.len() / 2;
            let within = mean_abs_diff(
                &mean_log_cp10k(&x, cfg.n_genes, &b0[..half]),
                &mean_log_cp10k(&x, cfg.n_genes, &b0[half..]),
                &expressed,
            );
            // Same group sizes on both sides, so the noise is the same.
            let between = mean_abs_diff(
                &mean_log_cp10k(&x, cfg.n_genes, &b0[..half]),
                &mean_log_cp10k(&x, cfg.n_genes, &b1[..half]),
                &expressed,
            );
            between / within
        };
        let with = ratio(0.3);
        assert!(with > 2.0, "batch effect 0.3: between/within = {with:.2}");
        let without = ratio(0.0);
        assert!(without < 1.3, "no batch effect: between/within = {without:.2}");
    }
}
