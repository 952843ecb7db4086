//! The hidden structure a simulation is drawn from: gene baselines, batch effects, gene programs,
//! modules and what each perturbation does. Built once from the config (RNG stream 0 of the
//! seed); every cell is then sampled from it independently.

use rand::Rng;
use rand::seq::{SliceRandom, index};
use rand_chacha::ChaCha8Rng;

use super::SimConfig;
use super::cells::{normal, sim_rng};
use crate::Result;

/// A latent factor with one activity per cell: a gene program or a module's co-expression.
#[derive(Debug, Clone)]
pub(crate) struct LatentFactor {
    /// Mean activity in each cell state. `[n_cell_states]`
    pub state_mean: Vec<f64>,
    /// SD of a cell's activity around its state's mean.
    pub cell_sd: f64,
    /// (index into [`SimTruth::varying_genes`], loading) pairs.
    pub loadings: Vec<(u32, f64)>,
}

/// One perturbation: a target gene and the log-scale changes it causes.
#[derive(Debug, Clone, PartialEq)]
pub struct Perturbation {
    /// Gene index of the target.
    pub target: u32,
    /// The target's module, `None` for a target outside every module.
    pub module: Option<usize>,
    /// `false` for a perturbation without any effect (a failed guide).
    pub active: bool,
    /// (gene index, change of log weight), sorted by gene; empty when inactive.
    pub log_effects: Vec<(u32, f64)>,
}

/// Ground truth of one simulation. Everything but the config is derived from it.
#[derive(Debug, Clone)]
pub struct SimTruth {
    pub config: SimConfig,
    /// `var_names`: synthetic symbols `SIMG00001`…  `[n_genes]`
    pub gene_symbols: Vec<String>,
    /// `var['gene_ids']`: synthetic Ensembl-like IDs `SIMENSG00000000001`…  `[n_genes]`
    pub gene_ids: Vec<String>,
    /// Baseline log weight of each gene. `[n_genes]`
    pub baseline_log: Vec<f64>,
    /// exp(baseline + batch shift) per batch: the unnormalised expression profile a cell of that
    /// batch starts from. `[n_batches][n_genes]`
    pub batch_weights: Vec<Vec<f64>>,
    /// Multiplier of the library size in each batch. `[n_batches]`
    pub batch_library_factor: Vec<f64>,
    /// Genes of the modules (gene indices, sorted). `[n_modules][module_size]`
    pub modules: Vec<Vec<u32>>,
    /// Sorted by target gene index, which is also the order of the `perturbation` categories.
    pub perturbations: Vec<Perturbation>,
    /// Genes loaded on any latent factor, sorted: only these get a per-cell exp() call.
    pub(crate) varying_genes: Vec<u32>,
    /// Programs first, then one co-expression factor per module.
    pub(crate) factors: Vec<LatentFactor>,
}

impl SimTruth {
    /// Validates `config` and draws the truth from its seed.
    pub fn new(cfg: &SimConfig) -> Result<Self> {
        cfg.validate()?;
        let mut rng = sim_rng(cfg.seed, 0);
        let n = cfg.n_genes;

        let width = n.to_string().len().max(5);
        let gene_symbols = (1..=n).map(|i| format!("SIMG{i:0width$}")).collect();
        let gene_ids = (1..=n).map(|i| format!("SIMENSG{i:011}")).collect();

        let baseline_log: Vec<f64> = (0..n).map(|_| cfg.baseline_log_sd * normal(&mut rng)).collect();
        let mut batch_weights = Vec::with_capacity(cfg.n_batches);
        let mut batch_library_factor = Vec::with_capacity(cfg.n_batches);
        for _ in 0..cfg.n_batches {
            batch_weights.push(
                baseline_log.iter().map(|b| (b + cfg.batch_effect_sd * normal(&mut rng)).exp()).collect(),
            );
            batch_library_factor.push((cfg.batch_library_sd * normal(&mut rng)).exp());
        }

        // Factors are built on gene indices and remapped to `varying_genes` at the end.
        let mut factors = Vec::with_capacity(cfg.n_programs + cfg.n_modules);
        for _ in 0..cfg.n_programs {
            let genes = sorted_sample(&mut rng, n, cfg.program_size);
            factors.push(LatentFactor {
                state_mean: (0..cfg.n_cell_states).map(|_| cfg.state_effect * normal(&mut rng)).collect(),
                cell_sd: cfg.cell_program_sd,
                loadings: genes.into_iter().map(|g| (g, normal(&mut rng))).collect(),
            });
        }

        // Targets and responses come from the more expressed half: screens target expressed genes,
        // and a change in a silent gene is invisible.
        let mut by_expression: Vec<u32> = (0..n as u32).collect();
        by_expression.sort_by(|&a, &b| baseline_log[b as usize].total_cmp(&baseline_log[a as usize]));
        let mut expressed = by_expression[..n - n / 2].to_vec();
        expressed.sort_unstable();
        let mut pool = expressed.clone();
        pool.shuffle(&mut rng);
        let targets = &pool[..cfg.n_perturbations];
        let modules: Vec<Vec<u32>> = targets[..cfg.n_module_genes()]
            .chunks(cfg.module_size.max(1)) // chunks(0) panics even on an empty slice
            .map(|m| {
                let mut m = m.to_vec();
                m.sort_unstable();
                m
            })
            .collect();
        for m in &modules {
            factors.push(LatentFactor {
                state_mean: vec![0.0; cfg.n_cell_states],
                cell_sd: cfg.module_coexpression_sd,
                loadings: m.iter().map(|&g| (g, 1.0)).collect(),
            });
        }

        // What perturbing any member of a module does downstream, and its members' shared shift.
        let module_response: Vec<Vec<(u32, f64)>> =
            modules.iter().map(|_| response(&mut rng, cfg, &expressed)).collect();
        let module_shift: Vec<f64> = modules
            .iter()
            .map(|_| if rng.random_bool(0.5) { cfg.module_shift } else { -cfg.module_shift })
            .collect();

        let n_null = (cfg.null_fraction * cfg.n_perturbations as f64).round() as usize;
        let null = sorted_sample(&mut rng, cfg.n_perturbations, n_null);
        let mut perturbations: Vec<Perturbation> = targets
            .iter()
            .enumerate()
            .map(|(i, &target)| {
                let module = (i < cfg.n_module_genes()).then(|| i / cfg.module_size);
                // Lone targets still get a signature, private to them, so they are no one's pair.
                let signature = match module {
                    Some(m) => module_response[m].clone(),
                    None => response(&mut rng, cfg, &expressed),
                };
                let active = null.binary_search(&(i as u32)).is_err();
                let log_effects = if active {
                    let mut effects = signature;
                    effects.push((target, (1.0 - cfg.knockdown).ln()));
                    if let Some(m) = module {
                        let others = modules[m].iter().filter(|&&g| g != target);
                        effects.extend(others.map(|&g| (g, module_shift[m])));
                    }
                    merge_by_gene(effects)
                } else {
                    Vec::new()
                };
                Perturbation { target, module, active, log_effects }
            })
            .collect();
        perturbations.sort_by_key(|p| p.target);

        let mut varying_genes: Vec<u32> =
            factors.iter().flat_map(|f| f.loadings.iter().map(|&(g, _)| g)).collect();
        varying_genes.sort_unstable();
        varying_genes.dedup();
        for f in &mut factors {
            for (g, _) in &mut f.loadings {
                *g = varying_genes.binary_search(g).expect("collected above") as u32;
            }
        }

        Ok(SimTruth {
            config: cfg.clone(),
            gene_symbols,
            gene_ids,
            baseline_log,
            batch_weights,
            batch_library_factor,
            modules,
            perturbations,
            varying_genes,
            factors,
        })
    }

    /// The true relations: every ordered pair of distinct genes of a module, module by module
    /// (both orders, like the EFAAR annotation files).
    pub fn pairs(&self) -> Vec<(u32, u32)> {
        let mut pairs = Vec::new();
        for m in &self.modules {
            for &a in m {
                pairs.extend(m.iter().filter(|&&b| b != a).map(|&b| (a, b)));
            }
        }
        pairs
    }
}

/// `amount` distinct indices below `length`, ascending.
fn sorted_sample(rng: &mut ChaCha8Rng, length: usize, amount: usize) -> Vec<u32> {
    let mut v: Vec<u32> = index::sample(rng, length, amount).iter().map(|i| i as u32).collect();
    v.sort_unstable();
    v
}

/// A downstream response signature: random genes of `pool` (sorted) with normal log effects.
fn response(rng: &mut ChaCha8Rng, cfg: &SimConfig, pool: &[u32]) -> Vec<(u32, f64)> {
    let picks = sorted_sample(rng, pool.len(), cfg.n_response_genes);
    picks.into_iter().map(|i| (pool[i as usize], cfg.response_sd * normal(rng))).collect()
}

/// Sorts by gene and sums the effects on the same gene.
fn merge_by_gene(mut effects: Vec<(u32, f64)>) -> Vec<(u32, f64)> {
    effects.sort_by_key(|&(g, _)| g);
    let mut out: Vec<(u32, f64)> = Vec::with_capacity(effects.len());
    for (g, e) in effects {
        match out.last_mut() {
            Some((last, sum)) if *last == g => *sum += e,
            _ => out.push((g, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_disjoint_targets_and_pairs_cover_them() {
        let truth = SimTruth::new(&SimConfig::tiny()).unwrap();
        let cfg = &truth.config;
        assert_eq!(truth.gene_symbols[0], "SIMG00001");
        assert_eq!(truth.gene_ids[499], "SIMENSG00000000500");
        assert_eq!(truth.modules.len(), cfg.n_modules);
        let mut members: Vec<u32> = truth.modules.concat();
        members.sort_unstable();
        members.dedup();
        assert_eq!(members.len(), cfg.n_module_genes());
        let targets: Vec<u32> = truth.perturbations.iter().map(|p| p.target).collect();
        assert!(targets.windows(2).all(|w| w[0] < w[1]), "sorted, distinct targets");
        assert!(members.iter().all(|g| targets.contains(g)));
        for p in &truth.perturbations {
            assert_eq!(p.module.is_some(), members.contains(&p.target));
        }
        let n_null = truth.perturbations.iter().filter(|p| !p.active).count();
        assert_eq!(n_null, 3, "10% of 30");
        let pairs = truth.pairs();
        assert_eq!(pairs.len(), cfg.n_modules * cfg.module_size * (cfg.module_size - 1));
        for &(a, b) in &pairs {
            assert_ne!(a, b);
            assert!(truth.modules.iter().any(|m| m.contains(&a) && m.contains(&b)));
            assert!(pairs.contains(&(b, a)), "both orders");
        }
    }

    #[test]
    fn active_perturbation_knocks_down_its_target_and_shifts_its_module() {
        let truth = SimTruth::new(&SimConfig::tiny()).unwrap();
        let knockdown = (1.0 - truth.config.knockdown).ln();
        let effect = |p: &Perturbation, g: u32| p.log_effects.iter().find(|e| e.0 == g).map(|e| e.1);
        let active: Vec<&Perturbation> = truth.perturbations.iter().filter(|p| p.active).collect();
        // Exactly the knockdown, unless the target happens to be one of its own response genes.
        let exact = active.iter().filter(|p| effect(p, p.target) == Some(knockdown)).count();
        assert!(exact as f64 >= 0.8 * active.len() as f64, "{exact} of {}", active.len());
        for p in active.iter().filter(|p| p.module.is_some()) {
            for &g in truth.modules[p.module.unwrap()].iter().filter(|&&g| g != p.target) {
                assert!(effect(p, g).is_some(), "module member {g} unaffected");
            }
        }
        assert!(truth.perturbations.iter().filter(|p| !p.active).all(|p| p.log_effects.is_empty()));
    }
}
