//! The benchmark's result: [`PerturbReport`] (serde; written as `report.json`) and its Markdown
//! tables (`report.md`): one row per embedding × post-processing with ilisi, lin, knn, p.cst, bmdb,
//! inv and their average as mean ± sd over seeds, then bmdb's recall per database and the
//! Tx-Evaluation variant of p.cst.
//!
//! Undefined values (a metric that could not be computed) are `null` in JSON and `—` in Markdown.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::bmdb::Bmdb;
use super::consistency::Consistency;
use super::postprocess::PostProcess;
use super::run::PerturbConfig;
use crate::Result;
use crate::atomic::write_atomic;

/// Mean and sample standard deviation (ddof 1; 0 for one value) of the finite values of a metric
/// over seeds; `None` when no seed gave a value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MeanSd {
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    /// Seeds with a finite value.
    pub n: usize,
}

impl MeanSd {
    pub fn of(values: &[f64]) -> MeanSd {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return MeanSd { mean: None, sd: None, n: 0 };
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = if v.len() < 2 { 0.0 } else { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() };
        MeanSd { mean: Some(mean), sd: Some(sd), n: v.len() }
    }

    fn cell(&self, digits: usize) -> String {
        match (self.mean, self.sd) {
            (Some(m), Some(s)) => format!("{m:.digits$} ± {s:.digits$}"),
            _ => "—".into(),
        }
    }
}

/// The six metrics of one seed. ilisi in [0, 1]; the others in percent. NaN: not computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeedScores {
    pub seed: u64,
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub ilisi: f64,
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub lin: f64,
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub knn: f64,
    /// TxFM's leave-one-out p.cst (the one in the average).
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub pcst: f64,
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub bmdb: f64,
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub inv: f64,
    /// `(100·ilisi + lin + knn + p.cst + bmdb + inv) / 6`, over the metrics that are defined
    /// (see [`PerturbRow::missing`]).
    #[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]
    pub average: f64,
    /// lin's and knn's top-1 and top-5 accuracies, whose means are `lin` and `knn` (absent in
    /// reports written before they were recorded).
    #[serde(default)]
    pub lin_topk: Option<super::data::TopK>,
    #[serde(default)]
    pub knn_topk: Option<super::data::TopK>,
    /// p.cst's consistent and tested perturbations, `(n_consistent, n_tested)` (the counts the
    /// ablation tables' z-test takes; absent in reports written before they were recorded).
    #[serde(default)]
    pub pcst_counts: Option<(usize, usize)>,
}

impl SeedScores {
    /// The six values in table order, ilisi scaled to percent.
    pub fn in_percent(&self) -> [f64; 6] {
        [100.0 * self.ilisi, self.lin, self.knn, self.pcst, self.bmdb, self.inv]
    }
}

/// Mean ± sd over seeds of each metric.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricSummary {
    pub ilisi: MeanSd,
    pub lin: MeanSd,
    pub knn: MeanSd,
    pub pcst: MeanSd,
    pub bmdb: MeanSd,
    pub inv: MeanSd,
    pub average: MeanSd,
}

impl MetricSummary {
    pub fn of(seeds: &[SeedScores]) -> MetricSummary {
        let col = |f: fn(&SeedScores) -> f64| MeanSd::of(&seeds.iter().map(f).collect::<Vec<_>>());
        MetricSummary {
            ilisi: col(|s| s.ilisi),
            lin: col(|s| s.lin),
            knn: col(|s| s.knn),
            pcst: col(|s| s.pcst),
            bmdb: col(|s| s.bmdb),
            inv: col(|s| s.inv),
            average: col(|s| s.average),
        }
    }
}

/// One embedding under one post-processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbRow {
    /// The `obsm` key.
    pub embedding: String,
    pub postprocess: PostProcess,
    /// Width after post-processing.
    pub dim: usize,
    pub summary: MetricSummary,
    pub seeds: Vec<SeedScores>,
    /// Names of metrics left out of the average because they could not be computed.
    pub missing: Vec<String>,
    /// bmdb with its recall per database (deterministic: the same for every seed).
    pub bmdb: Bmdb,
    /// Tx-Evaluation's p.cst (unexpressed-gene null, p ≤ 0.05); deterministic.
    pub pcst_txeval: Consistency,
    /// Whether this post-processing has the best mean average for its embedding.
    pub best: bool,
}

/// The whole benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbReport {
    pub input: String,
    pub pert_key: String,
    pub batch_key: String,
    pub control: String,
    pub n_obs: usize,
    /// Non-control perturbations.
    pub n_perts: usize,
    pub n_batches: usize,
    pub n_controls: usize,
    /// Perturbations whose target is unexpressed (the null of p.cst, Tx-Evaluation variant).
    pub n_unexpressed_perts: usize,
    /// Perturbations whose target is a measured gene, by name or through the gene-ID
    /// harmoniser (`None` without expression, and in reports written before it was recorded).
    #[serde(default)]
    pub n_targets_measured: Option<usize>,
    /// Genes of the inv target (0 without expression).
    pub n_expression_genes: usize,
    /// With labels from a guide-count matrix: the cells it kept and left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guides: Option<super::input::GuideCounts>,
    pub config: PerturbConfig,
    pub rows: Vec<PerturbRow>,
    /// Things a reader should know (batches fitted on pooled controls, metrics not computed...).
    pub warnings: Vec<String>,
}

impl PerturbReport {
    /// The best row of each embedding, in embedding order.
    pub fn best_rows(&self) -> Vec<&PerturbRow> {
        self.rows.iter().filter(|r| r.best).collect()
    }

    /// `report.json`, pretty-printed, written atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| crate::Error::Invalid(format!("report to JSON: {e}")))?;
        write_atomic(path, &(text + "\n"))
    }

    /// Reads a `report.json` back (undefined values, written as `null`, come back as NaN).
    pub fn read_json(path: &Path) -> Result<PerturbReport> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| crate::Error::format(path, e.to_string()))
    }

    /// `report.md`, written atomically.
    pub fn write_markdown(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_markdown())
    }

    /// The main table, the per-database table and the p.cst variants, as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Perturbation benchmark\n");
        let _ = writeln!(
            s,
            "`{}`: {} cells, {} perturbations (`{}`), {} batches (`{}`), {} controls (`{}`); {} seed(s).\n",
            self.input,
            self.n_obs,
            self.n_perts,
            self.pert_key,
            self.n_batches,
            self.batch_key,
            self.n_controls,
            self.control,
            self.config.seeds.len()
        );
        if let Some(g) = &self.guides {
            let _ = writeln!(
                s,
                "Labels from a guide-count matrix ({} guides; a guide counts from its `min_count`; target = the name up to \
                 its first `_`): kept {} of {} cells with exactly one guide, left out {} without a guide and {} with several.\n",
                g.n_guides, g.kept, g.n_obs_input, g.no_guide, g.several_guides
            );
        }
        if let Some(m) = self.n_targets_measured {
            let _ = writeln!(
                s,
                "Perturbation targets that are measured genes (by name or gene ID): {m} of {}; {} of them unexpressed \
                 (the null of Tx-Evaluation's p.cst).\n",
                self.n_perts, self.n_unexpressed_perts
            );
        }
        s.push_str(&self.main_table());
        let _ = writeln!(
            s,
            "\nilisi in [0, 1]; the others in percent. average = (100·ilisi + lin + knn + p.cst + bmdb + inv) / 6 \
             over the metrics defined. **Bold**: the best post-processing of each embedding. p.cst is TxFM's \
             leave-one-out variant (p < {}); bmdb is the mean recall at the ({}, {}) percentiles over databases.\n",
            self.config.loo_alpha, self.config.recall_thresholds.0, self.config.recall_thresholds.1
        );
        s.push_str(&self.database_table());
        if !self.warnings.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for w in &self.warnings {
                let _ = writeln!(s, "- {w}");
            }
        }
        s
    }

    /// Rows embedding × post-processing; columns the six metrics and the average, mean ± sd. An
    /// average over fewer than the six metrics says so in its cell.
    pub fn main_table(&self) -> String {
        let mut s = String::from("| embedding | post-proc. | ilisi | lin | knn | p.cst | bmdb | inv | average |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let m = &r.summary;
            let bold = |t: String| if r.best { format!("**{t}**") } else { t };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.embedding,
                bold(r.postprocess.to_string()),
                m.ilisi.cell(3),
                m.lin.cell(1),
                m.knn.cell(1),
                m.pcst.cell(1),
                m.bmdb.cell(1),
                m.inv.cell(1),
                bold(m.average.cell(1)) + &average_coverage(&r.missing),
            );
        }
        s
    }

    /// bmdb recall per database (percent, with the number of known pairs) and Tx-Evaluation's
    /// p.cst, per row.
    pub fn database_table(&self) -> String {
        let Some(first) = self.rows.first() else { return String::new() };
        let mut s = String::from("## bmdb recall per database, and p.cst (Tx-Evaluation)\n\n| embedding | post-proc. |");
        for d in &first.bmdb.databases {
            let _ = write!(s, " {} ({} pairs) |", d.database, d.n_pairs);
        }
        s.push_str(" p.cst (Tx-Eval) |\n|---|---|");
        s.push_str(&"---|".repeat(first.bmdb.databases.len() + 1));
        s.push('\n');
        for r in &self.rows {
            let _ = write!(s, "| {} | {} |", r.embedding, r.postprocess);
            for d in &r.bmdb.databases {
                let cell = if d.recall.is_finite() { format!("{:.1}", 100.0 * d.recall) } else { "—".into() };
                let _ = write!(s, " {cell} |");
            }
            let c = &r.pcst_txeval;
            let cell = if c.score.is_finite() {
                format!("{:.1} ({}/{}, null {})", c.score, c.n_consistent, c.n_tested, c.n_null)
            } else {
                format!("— (null {})", c.n_null)
            };
            let _ = writeln!(s, " {cell} |");
        }
        s
    }
}

/// What the average cell adds when metrics are missing from it: " (5 of 6, without inv)".
fn average_coverage(missing: &[String]) -> String {
    if missing.is_empty() {
        return String::new();
    }
    format!(" ({} of 6, without {})", 6usize.saturating_sub(missing.len()), missing.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_skips_undefined() {
        let m = MeanSd::of(&[1.0, 3.0, f64::NAN]);
        assert_eq!((m.mean, m.n), (Some(2.0), 2));
        assert!((m.sd.unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(MeanSd::of(&[5.0]).sd, Some(0.0));
        assert_eq!(MeanSd::of(&[f64::NAN]).mean, None);
        assert_eq!(MeanSd::of(&[]).cell(1), "—");
        assert_eq!(MeanSd::of(&[1.0, 3.0]).cell(1), "2.0 ± 1.4");
    }
}
