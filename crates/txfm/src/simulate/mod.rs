//! Perturb-seq-like raw counts with known truth: the embedded default of `txfm quickstart`, the
//! data of tests, and the 10⁶-cell input of the ingestion benchmark.
//!
//! # Generative model
//!
//! For cell `i` in batch `b`, cell state `s`, perturbed by `p` (or a control), with `x` the cell's
//! latent activities:
//!
//! ```text
//! log w_g  = β_g + γ_bg + Σ_f x_f · L_fg + Δ_pg           (unnormalised log weight of gene g)
//! μ_g      = ℓ_i · w_g / Σ_h w_h                           (expected count)
//! count_g  ~ NB(μ_g, φ)   (Var = μ + φμ², i.e. Poisson(Gamma(1/φ, φμ)))
//! ```
//!
//! - **Baseline** `β_g ~ N(0, baseline_log_sd)`: log-normal gene weights give a few highly
//!   expressed genes and a long tail of barely detected ones, as in real single-cell data, so the
//!   matrix is sparse (~7–18% non-zero at the presets; cf. 5–7% in the shared 10x samples).
//! - **Batch** `γ_bg ~ N(0, batch_effect_sd)` per batch and gene, and a per-batch library factor
//!   `exp(N(0, batch_library_sd))`: the technical variation a benchmark must correct with controls.
//! - **Latent factors** `f` with loadings `L_fg`: gene *programs* (`program_size` random genes,
//!   loadings N(0, 1)) whose mean activity depends on the cell state (`N(0, state_effect)` per state
//!   and program) plus cell noise `cell_program_sd`; and one co-expression factor per *module*
//!   (loading 1 on its members, activity `N(0, module_coexpression_sd)`), so the members of a
//!   module co-vary from cell to cell, the signal a masked-expression model can learn gene
//!   relations from.
//! - **Modules** are disjoint gene sets, like protein complexes, drawn from the more expressed half
//!   of the genes; every member is a perturbation target, and further lone targets are added up to
//!   `n_perturbations`. Perturbing a member multiplies its own weight by `1 - knockdown` (CRISPRi),
//!   shifts the other members' log weights by `±module_shift` (one sign per module) and applies the
//!   module's downstream response signature (`n_response_genes` genes of the more expressed half,
//!   where a response is detectable, effects `N(0, response_sd)`). Perturbations of the same
//!   module therefore share most of their profile, and the module pairs are what the benchmark's
//!   known-pair recall must recover. A lone target gets a signature of its own; a `null_fraction`
//!   of all perturbations has no effect at all (failed guides). Controls (`control_fraction` of
//!   cells) are unperturbed.
//! - **Library size** `ℓ_i = exp(N(library_log_mean, library_log_sd)) ·` batch factor, so the
//!   expected total count of a cell is its library size.
//! - **Counts**: negative binomial with one dispersion φ, the standard model of UMI counts, sampled
//!   exactly but fast for mostly-zero matrices ([`nb`]).
//!
//! Cells draw batch, state and perturbation uniformly (controls with probability
//! `control_fraction`). Cell `i` uses ChaCha8 stream `i + 1` of the seed (the truth uses stream
//! 0), so the output depends on the seed alone, not on chunking or threads.
//!
//! # Outputs
//!
//! `<out>.h5ad` with `var_names` = symbols `SIMG00001`…, `var['gene_ids']` = `SIMENSG…` IDs and
//! `obs` columns `perturbation` (target symbol or `control`), `batch`, `is_control`, `cell_state`,
//! `library_size_true`; `<out>.pairs.csv`, the module pairs in the EFAAR `entity1,entity2` format;
//! `<out>.truth.json`, the config, modules and perturbations.

pub mod cells;
pub mod config;
pub mod nb;
pub mod pipeline;
pub mod truth;
pub mod write;

pub use cells::{CHUNK_ROWS, CellLabels, simulate_rows};
pub use config::SimConfig;
pub use pipeline::simulate_chunks;
pub use truth::{Perturbation, SimTruth};
pub use write::{CONTROL_LABEL, SimSummary, obs_frame, pairs_path, simulate_to_h5ad, truth_path, var_frame};
