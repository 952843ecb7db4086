//! What to simulate: sizes, effect strengths and noise levels, with presets for tests, the
//! quickstart and the ingestion benchmark.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Parameters of the Perturb-seq-like generative model (see the [module doc](super)).
///
/// Log-scale quantities are natural logs of expression weights; `_sd` fields are standard
/// deviations of normal draws on that scale. Missing fields in a config file take the
/// [`SimConfig::quickstart`] values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Cells (`n_obs`).
    pub n_cells: usize,
    /// Genes (`n_vars`).
    pub n_genes: usize,
    /// SD of the genes' baseline log weights: sets how long the tail of highly expressed genes is
    /// and, with the library size, how sparse the matrix is.
    pub baseline_log_sd: f64,
    /// Mean of ln(library size) before the batch factor.
    pub library_log_mean: f64,
    /// SD of ln(library size).
    pub library_log_sd: f64,
    /// Negative-binomial dispersion φ: Var = μ + φμ² (scVI's θ = 1/φ).
    pub dispersion: f64,
    /// Gene programs: sparse gene sets whose activity defines cell states.
    pub n_programs: usize,
    /// Genes loaded on each program.
    pub program_size: usize,
    /// Cell states, each a vector of mean program activities.
    pub n_cell_states: usize,
    /// SD of a state's mean program activities.
    pub state_effect: f64,
    /// SD of a cell's program activities around its state's means.
    pub cell_program_sd: f64,
    /// Modules (protein-complex-like): disjoint co-regulated gene sets; their members are the
    /// true pairs.
    pub n_modules: usize,
    /// Genes per module (at least 2).
    pub module_size: usize,
    /// SD of a module's shared per-cell log activity, so members co-vary in every cell.
    pub module_coexpression_sd: f64,
    /// Perturbation targets: every module member, then single genes outside modules.
    pub n_perturbations: usize,
    /// Fraction of cells that are non-targeting controls.
    pub control_fraction: f64,
    /// Knockdown strength: the target's mean is multiplied by `1 - knockdown`.
    pub knockdown: f64,
    /// Fraction of perturbations that have no effect at all (failed guides).
    pub null_fraction: f64,
    /// Log shift applied to the other members of the target's module (sign drawn per module).
    pub module_shift: f64,
    /// Downstream genes (from the more expressed half) of each module's (or lone target's)
    /// response signature.
    pub n_response_genes: usize,
    /// SD of the log effects of a response signature.
    pub response_sd: f64,
    /// Batches (e.g. GEM groups); every batch holds every perturbation.
    pub n_batches: usize,
    /// SD of the per-batch per-gene log shifts.
    pub batch_effect_sd: f64,
    /// SD of the per-batch log library-size factor.
    pub batch_library_sd: f64,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::quickstart()
    }
}

impl SimConfig {
    /// 2,000 cells × 500 genes, ~18% non-zero: unit tests (well under a second).
    pub fn tiny() -> Self {
        SimConfig {
            n_cells: 2_000,
            n_genes: 500,
            baseline_log_sd: 2.2,
            library_log_mean: 5.6,
            library_log_sd: 0.6,
            dispersion: 0.3,
            n_programs: 4,
            program_size: 50,
            n_cell_states: 3,
            state_effect: 0.8,
            cell_program_sd: 0.3,
            n_modules: 6,
            module_size: 4,
            module_coexpression_sd: 0.3,
            n_perturbations: 30,
            control_fraction: 0.15,
            knockdown: 0.7,
            null_fraction: 0.1,
            module_shift: 1.0,
            n_response_genes: 25,
            response_sd: 0.7,
            n_batches: 2,
            batch_effect_sd: 0.3,
            batch_library_sd: 0.2,
            seed: 0,
        }
    }

    /// 6,000 cells × 2,000 genes, ~14% non-zero, 60 perturbations (12 modules of 4 plus 12 lone
    /// targets) with ~90 cells each over 3 batches and ~200 controls per batch: enough for the
    /// known-pair recall of the perturbation benchmark to separate a good embedding from noise.
    pub fn quickstart() -> Self {
        SimConfig {
            n_cells: 6_000,
            n_genes: 2_000,
            baseline_log_sd: 2.0,
            library_log_mean: 6.7,
            n_programs: 8,
            program_size: 150,
            n_cell_states: 4,
            n_modules: 12,
            n_perturbations: 60,
            control_fraction: 0.1,
            n_response_genes: 60,
            n_batches: 3,
            ..Self::tiny()
        }
    }

    /// 10⁶ cells × 20,000 genes, ~7% non-zero (≈1.3·10⁹ stored counts, ~11 GB as u32 indices and
    /// f32 values): the ingestion benchmark.
    pub fn large() -> Self {
        SimConfig {
            n_cells: 1_000_000,
            n_genes: 20_000,
            baseline_log_sd: 2.0,
            library_log_mean: 7.8,
            n_programs: 20,
            program_size: 400,
            n_cell_states: 8,
            n_modules: 250,
            module_size: 5,
            n_perturbations: 2_000,
            control_fraction: 0.05,
            n_response_genes: 200,
            n_batches: 8,
            ..Self::tiny()
        }
    }

    /// The preset called `name` (`tiny`, `quickstart`, `large`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "quickstart" => Ok(Self::quickstart()),
            "large" => Ok(Self::large()),
            _ => Err(Error::config(
                "simulate",
                "preset",
                format!("unknown preset {name:?}; expected tiny, quickstart or large"),
            )),
        }
    }

    /// Module members, all of which are perturbed.
    pub fn n_module_genes(&self) -> usize {
        self.n_modules * self.module_size
    }

    /// Checks ranges and that targets and responses fit in the more expressed half of the genes.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, message: String| Err(Error::config("simulate config", field, message));
        let counts = [
            ("n_cells", self.n_cells),
            ("n_genes", self.n_genes),
            ("n_cell_states", self.n_cell_states),
            ("n_batches", self.n_batches),
        ];
        for (field, v) in counts {
            if v == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        let non_negative = [
            ("baseline_log_sd", self.baseline_log_sd),
            ("library_log_sd", self.library_log_sd),
            ("state_effect", self.state_effect),
            ("cell_program_sd", self.cell_program_sd),
            ("module_coexpression_sd", self.module_coexpression_sd),
            ("module_shift", self.module_shift),
            ("response_sd", self.response_sd),
            ("batch_effect_sd", self.batch_effect_sd),
            ("batch_library_sd", self.batch_library_sd),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, format!("must be finite and ≥ 0, got {v}"));
            }
        }
        if !self.library_log_mean.is_finite() {
            return bad("library_log_mean", format!("must be finite, got {}", self.library_log_mean));
        }
        if !(self.dispersion.is_finite() && self.dispersion > 0.0) {
            return bad("dispersion", format!("must be > 0 (NB dispersion φ), got {}", self.dispersion));
        }
        let fractions = [
            ("control_fraction", self.control_fraction),
            ("knockdown", self.knockdown),
            ("null_fraction", self.null_fraction),
        ];
        for (field, v) in fractions {
            if !(0.0..=1.0).contains(&v) {
                return bad(field, format!("must be in [0, 1], got {v}"));
            }
        }
        if self.n_modules > 0 && self.module_size < 2 {
            return bad("module_size", format!("a module needs at least 2 genes, got {}", self.module_size));
        }
        if self.n_perturbations < self.n_module_genes() {
            return bad(
                "n_perturbations",
                format!(
                    "every module member is a target, so it must be ≥ n_modules × module_size = {}, got {}",
                    self.n_module_genes(),
                    self.n_perturbations
                ),
            );
        }
        let expressed = self.n_genes - self.n_genes / 2;
        if self.n_perturbations > expressed {
            return bad(
                "n_perturbations",
                format!(
                    "targets are drawn from the more expressed half of the genes ({expressed}), got {}",
                    self.n_perturbations
                ),
            );
        }
        if self.n_perturbations == 0 && self.control_fraction < 1.0 {
            return bad("control_fraction", "must be 1 when there are no perturbations".into());
        }
        if self.program_size > self.n_genes {
            return bad(
                "program_size",
                format!("must be ≤ n_genes = {}, got {}", self.n_genes, self.program_size),
            );
        }
        if self.n_response_genes > expressed {
            return bad(
                "n_response_genes",
                format!(
                    "responses are drawn from the more expressed half of the genes ({expressed}), got {}",
                    self.n_response_genes
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for name in ["tiny", "quickstart", "large"] {
            SimConfig::preset(name).unwrap().validate().unwrap();
        }
        assert!(SimConfig::preset("huge").is_err());
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        let cfg = SimConfig { n_perturbations: 10, ..SimConfig::tiny() };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("n_perturbations") && err.contains("24"), "{err}");
        let cfg = SimConfig { knockdown: 1.5, ..SimConfig::tiny() };
        assert!(cfg.validate().unwrap_err().to_string().contains("knockdown"));
    }

    #[test]
    fn partial_json_takes_quickstart_defaults_and_refuses_unknown_fields() {
        let cfg: SimConfig = serde_json::from_str(r#"{"n_cells": 100, "seed": 7}"#).unwrap();
        assert_eq!(cfg, SimConfig { n_cells: 100, seed: 7, ..SimConfig::quickstart() });
        assert!(serde_json::from_str::<SimConfig>(r#"{"n_cell": 100}"#).is_err());
    }
}
