//! The benchmark run: for each embedding × post-processing, the six metrics over `S` seeds, their
//! average, mean ± sd, and the best post-processing per embedding ([`run`]).
//!
//! What depends on the seed: the split (so lin, knn and inv) and the random cells of p.cst. What
//! does not: bmdb and Tx-Evaluation's p.cst (whole-screen statistics, as the reference computes them
//! on the full dataset) and ilisi. ilisi is computed on all cells rather than on `test1`, because
//! `test1` holds only 30% of the batches and a screen with two or three batches would leave it a
//! single batch, where mixing is undefined; ilisi has nothing trained, so nothing leaks.
//!
//! Post-processing is fitted on the controls of the whole file (per batch, see
//! [`super::postprocess`]) before the split: controls carry no perturbation label, and each split
//! keeps its batches' controls anyway.
//!
//! The average is `(100·ilisi + lin + knn + p.cst + bmdb + inv) / 6` with TxFM's p.cst; a metric
//! that cannot be computed (inv without expression, ilisi with one batch) is left out and the row
//! says which ([`super::report::PerturbRow::missing`]).

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::bmdb::bmdb;
use super::consistency::{self, consistency_loo, consistency_txeval};
use super::data::PerturbData;
use super::ilisi::{LisiConfig, ilisi};
use super::input::PerturbInput;
use super::knn::knn;
use super::postprocess::{self, PostProcess};
use super::probe::{FitConfig, ProbeConfig, linear_probe_on};
use super::reconstruct::{ReconstructConfig, reconstruct_on};
use super::report::{MetricSummary, PerturbReport, PerturbRow, SeedScores};
use super::split::{SplitConfig, split};
use crate::runtime::DeviceSpec;
use crate::{Error, Result};
use crate::eval::annotations::PairDatabase;
use crate::eval::recall::DEFAULT_THRESHOLDS;

/// Benchmark settings; every field has the paper's / reference's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerturbConfig {
    /// One split (and one p.cst null draw, probe and decoder initialisation) per seed.
    pub seeds: Vec<u64>,
    pub split: SplitConfig,
    pub postprocess: Vec<PostProcess>,
    pub lisi: LisiConfig,
    /// kNN neighbours (`None`: ⌊√n_train⌋ made odd).
    pub knn_k: Option<usize>,
    pub probe: ProbeConfig,
    pub reconstruct: ReconstructConfig,
    /// Compute inv (the decoder is the slowest metric).
    pub inv: bool,
    /// bmdb's (low, high) percentile thresholds.
    pub recall_thresholds: (f64, f64),
    pub loo_random_cells: usize,
    pub loo_alpha: f64,
    pub txeval_alpha: f64,
    /// Where the probe and the inv decoder train: cpu, cuda, cuda:N or auto.
    pub device: String,
}

impl Default for PerturbConfig {
    fn default() -> Self {
        PerturbConfig {
            seeds: vec![0, 1, 2],
            split: SplitConfig::default(),
            postprocess: PostProcess::ALL.to_vec(),
            lisi: LisiConfig::default(),
            knn_k: None,
            probe: ProbeConfig::default(),
            reconstruct: ReconstructConfig::default(),
            inv: true,
            recall_thresholds: DEFAULT_THRESHOLDS,
            loo_random_cells: consistency::LOO_RANDOM_CELLS,
            loo_alpha: consistency::LOO_ALPHA,
            txeval_alpha: consistency::TXEVAL_ALPHA,
            device: "cpu".into(),
        }
    }
}

impl PerturbConfig {
    /// Seeds `0..n`.
    pub fn with_seeds(mut self, n: usize) -> Self {
        self.seeds = (0..n as u64).collect();
        self
    }

    /// A fast preset for tests and quick looks: one seed, short probe and decoder training.
    pub fn quick() -> Self {
        PerturbConfig {
            seeds: vec![0],
            probe: ProbeConfig { fit: FitConfig { epochs: 30, ..ProbeConfig::default().fit } },
            reconstruct: ReconstructConfig {
                depth: 1,
                fit: FitConfig { epochs: 5, warmup_epochs: 1, ..ReconstructConfig::default().fit },
                ..ReconstructConfig::default()
            },
            ..PerturbConfig::default()
        }
    }
}

/// Runs the benchmark on every embedding of `input` (see the module docs).
pub fn run(input: &PerturbInput, dbs: &[PairDatabase], cfg: &PerturbConfig, progress: &ProgressBar) -> Result<PerturbReport> {
    if cfg.seeds.is_empty() {
        return Err(Error::Invalid("the benchmark needs at least one seed (--seeds 0 gives a table of nothing)".into()));
    }
    let labels = input.labels();
    let mut warnings = Vec::new();
    let short = postprocess::batches_short_of_controls(labels);
    if !short.is_empty() && cfg.postprocess.iter().any(|p| *p != PostProcess::None) {
        let names: Vec<&str> = short.iter().take(10).map(|&b| labels.batch_names[b as usize].as_str()).collect();
        warnings.push(format!(
            "{} of {} batches have fewer than {} controls and were post-processed with the pooled controls of all \
             batches ({}{})",
            short.len(),
            labels.n_batches(),
            postprocess::MIN_BATCH_CONTROLS,
            names.join(", "),
            if short.len() > 10 { ", ..." } else { "" }
        ));
    }
    let n_unexpressed = input.unexpressed.iter().filter(|&&u| u).count();
    if input.targets_measured == Some(0) && labels.n_perts() > 1 {
        let shown: Vec<&str> = labels.pert_names.iter().enumerate().filter(|(p, _)| *p != labels.control as usize).take(3).map(|(_, n)| n.as_str()).collect();
        warnings.push(format!(
            "none of the {} perturbation labels (e.g. {}) names a measured gene, by name or gene ID: check that --pert-key holds \
             target genes; p.cst (Tx-Evaluation variant) then has no null",
            labels.n_perts() - 1,
            shown.join(", ")
        ));
    } else if input.expression.is_some() && n_unexpressed == 0 {
        warnings.push(
            "no perturbation targets an unexpressed gene, so p.cst (Tx-Evaluation variant) has no null and is undefined"
                .into(),
        );
    }
    let has_pairs = |r: &PerturbRow| r.bmdb.databases.iter().any(|d| d.n_pairs > 0);

    progress.set_length((input.embeddings.len() * cfg.postprocess.len() * cfg.seeds.len()) as u64);
    let mut rows = Vec::new();
    for (key, data) in &input.embeddings {
        let first = rows.len();
        for &pp in &cfg.postprocess {
            progress.set_message(format!("{key} / {pp}"));
            let d = postprocess::apply(data, pp)?;
            if pp == PostProcess::Tvn && d.dim < data.dim {
                warnings.push(format!(
                    "{key}: TVN kept {} of its {} dimensions, the directions its controls span (the others have no \
                     variance among the controls and cannot be whitened); more controls than dimensions keep them all",
                    d.dim, data.dim
                ));
            }
            let row = evaluate(key, pp, &d, input, dbs, cfg, progress)?;
            if !has_pairs(&row) && rows.is_empty() {
                warnings.push("no known pair of any database has both genes perturbed: bmdb is undefined".into());
            }
            rows.push(row);
        }
        let best = (first..rows.len())
            .filter(|&i| rows[i].summary.average.mean.is_some())
            .max_by(|&a, &b| rows[a].summary.average.mean.unwrap().total_cmp(&rows[b].summary.average.mean.unwrap()));
        if let Some(b) = best {
            rows[b].best = true;
        }
    }
    progress.finish_and_clear();

    let n_controls = (0..labels.n_obs).filter(|&i| labels.is_control(i)).count();
    Ok(PerturbReport {
        input: input.path.display().to_string(),
        pert_key: input.pert_key.clone(),
        batch_key: input.batch_key.clone(),
        control: labels.pert_names[labels.control as usize].clone(),
        n_obs: labels.n_obs,
        n_perts: labels.n_perts() - 1,
        n_batches: labels.n_batches(),
        n_controls,
        n_unexpressed_perts: n_unexpressed,
        n_targets_measured: input.targets_measured,
        n_expression_genes: input.expression.as_ref().map_or(0, |e| e.n_vars),
        guides: input.guides,
        config: cfg.clone(),
        rows,
        warnings,
    })
}

/// All metrics of one post-processed embedding over the seeds.
fn evaluate(
    key: &str,
    pp: PostProcess,
    d: &PerturbData,
    input: &PerturbInput,
    dbs: &[PairDatabase],
    cfg: &PerturbConfig,
    progress: &ProgressBar,
) -> Result<PerturbRow> {
    let bm = bmdb(d, dbs, cfg.recall_thresholds);
    let pcst_txeval = consistency_txeval(d, &input.unexpressed, cfg.txeval_alpha);
    let il = ilisi(d, &cfg.lisi);
    let device = cfg.device.parse::<DeviceSpec>()?.resolve()?;
    let mut seeds = Vec::new();
    for &seed in &cfg.seeds {
        let sp = split(d, &cfg.split, seed)?;
        let lin_topk = linear_probe_on(d, &sp, &ProbeConfig { fit: FitConfig { seed, ..cfg.probe.fit } }, device);
        let knn_topk = knn(d, &sp, cfg.knn_k);
        let (lin, kn) = (lin_topk.mean(), knn_topk.mean());
        let loo = consistency_loo(d, cfg.loo_random_cells, cfg.loo_alpha, seed);
        let inv = match (&input.expression, cfg.inv) {
            (Some(expr), true) if !sp.test2.is_empty() => {
                reconstruct_on(d, &sp, expr, &ReconstructConfig { fit: FitConfig { seed, ..cfg.reconstruct.fit }, ..cfg.reconstruct }, device).score()
            }
            _ => f64::NAN,
        };
        let mut s = SeedScores {
            seed,
            ilisi: il,
            lin,
            knn: kn,
            pcst: loo.score,
            bmdb: bm.score,
            inv,
            average: f64::NAN,
            lin_topk: Some(lin_topk),
            knn_topk: Some(knn_topk),
            pcst_counts: Some((loo.n_consistent, loo.n_tested)),
        };
        let defined: Vec<f64> = s.in_percent().into_iter().filter(|v| v.is_finite()).collect();
        if !defined.is_empty() {
            s.average = defined.iter().sum::<f64>() / defined.len() as f64;
        }
        seeds.push(s);
        progress.inc(1);
    }
    let names = ["ilisi", "lin", "knn", "p.cst", "bmdb", "inv"];
    let missing = names
        .iter()
        .enumerate()
        .filter(|(j, _)| seeds.iter().all(|s| !s.in_percent()[*j].is_finite()))
        .map(|(_, n)| n.to_string())
        .collect();
    Ok(PerturbRow {
        embedding: key.to_string(),
        postprocess: pp,
        dim: d.dim,
        summary: MetricSummary::of(&seeds),
        seeds,
        missing,
        bmdb: bm,
        pcst_txeval,
        best: false,
    })
}
