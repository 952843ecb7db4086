//! The study's tables as the paper prints them: per group, rows × (perts and the benchmark average
//! per screen, enc, dec), the best of each column in bold, and ⋆ where a row differs from the
//! default row at p_adj < 0.05.
//!
//! The tests ([`crate::eval::stats`]):
//! - **perts**: the consistent perturbations of a row (p.cst's counts, the benchmark's leave-one-out
//!   variant that enters its average, at the benchmark's first seed, summed over the row's
//!   training seeds) against the default row's, by a pooled two-proportion z-test;
//! - **enc**, **dec**: gene-relationship recall above each random-pair null, `recall − null_r`
//!   for every null r (the paper's three) and seed, row against default by Student's two-sample
//!   t-test (two-tailed);
//! - **avg**: the benchmark average of each seed, by the same t-test (needs two seeds a side).
//!
//! p-values are adjusted by Benjamini–Hochberg across all ablation pairs (every non-default row
//! of every group), separately for each metric.

use serde::Serialize;

use super::cell::{CellResult, ScreenRecord};
use super::study::{describe_diff, Study};
use crate::eval::perturb::postprocess::PostProcess;
use crate::eval::perturb::report::{MeanSd, PerturbReport, PerturbRow};
use crate::eval::stats::{benjamini_hochberg, ttest_ind, two_proportion_z};

/// A metric's value for one row, with its test against the default row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The value shown (percent): mean over seeds, or the pooled proportion for perts.
    pub value: Option<f64>,
    /// Sample sd over seeds (`None` for perts and single seeds).
    pub sd: Option<f64>,
    /// perts only: consistent and tested perturbations summed over seeds.
    pub counts: Option<(u64, u64)>,
    pub p: Option<f64>,
    pub p_adj: Option<f64>,
    pub best: bool,
}

impl Cell {
    fn empty() -> Cell {
        Cell { value: None, sd: None, counts: None, p: None, p_adj: None, best: false }
    }

    pub fn significant(&self) -> bool {
        self.p_adj.is_some_and(|p| p < 0.05)
    }
}

/// One row of a group's table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableRow {
    pub name: String,
    pub is_default: bool,
    /// The row's diff against the default, as `field = value` pairs.
    pub diff: String,
    pub config_key: String,
    /// Seeds with a finished cell.
    pub seeds_done: Vec<u64>,
    /// One cell per column of [`StudyTable::columns`].
    pub cells: Vec<Cell>,
    pub val_loss: Option<f64>,
    pub participation_ratio: Option<f64>,
    pub train_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupTable {
    pub name: String,
    pub rows: Vec<TableRow>,
}

/// A baseline's scores on one screen (not part of the tests).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceRow {
    pub screen: String,
    pub embedding: String,
    pub postprocess: String,
    pub perts: Option<f64>,
    pub average: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyTable {
    pub study: String,
    /// Column names: `perts <screen>`, `avg <screen>` per screen, then `enc`, `dec`.
    pub columns: Vec<String>,
    pub groups: Vec<GroupTable>,
    pub references: Vec<ReferenceRow>,
    pub seeds: Vec<u64>,
    pub cells_total: usize,
    pub cells_done: usize,
}

/// What one column reads from a cell.
#[derive(Clone, Copy)]
enum Metric {
    Perts(usize),
    Average(usize),
    Encoder,
    Decoder,
}

/// The row of `report` the table reads: the embedding's row at `fixed`, or its best.
pub fn pick_row<'a>(report: &'a PerturbReport, embedding: &str, fixed: Option<PostProcess>) -> Option<&'a PerturbRow> {
    report.rows.iter().find(|r| r.embedding == embedding && fixed.map_or(r.best, |p| r.postprocess == p))
}

/// The table's row of the cell's embedding on screen `i`.
fn screen_row(c: &CellResult, i: usize, fixed: Option<PostProcess>) -> Option<&PerturbRow> {
    let rec: &ScreenRecord = c.screens.get(i)?;
    pick_row(&rec.report, "X_txfm", fixed)
}

/// p.cst's consistent and tested perturbations of the benchmark's first seed: its other seeds
/// re-test the same perturbations, so adding them up would count each one several times.
fn perts_counts(r: &PerturbRow) -> Option<(u64, u64)> {
    let (x, n) = r.seeds.first()?.pcst_counts?;
    (n > 0).then_some((x as u64, n as u64))
}

/// Builds the tables from each cell's result (`results[i]` for `study.cells()[i]`; `None` where
/// the cell has not finished) and the baselines' reports per screen.
pub fn build(study: &Study, results: &[Option<CellResult>], references: &[(String, PerturbReport)]) -> crate::Result<StudyTable> {
    let fixed = study.bench.table_postprocess()?;
    let specs = study.cells();
    let n_screens = study.screens.len();
    let mut metrics = Vec::new();
    let mut columns = Vec::new();
    for (i, s) in study.screens.iter().enumerate() {
        let suffix = if n_screens > 1 { format!(" {}", s.name) } else { String::new() };
        metrics.push(Metric::Perts(i));
        columns.push(format!("perts{suffix}"));
        metrics.push(Metric::Average(i));
        columns.push(format!("avg{suffix}"));
    }
    metrics.extend([Metric::Encoder, Metric::Decoder]);
    columns.extend(["enc".to_string(), "dec".to_string()]);

    // Per row: the finished cells of its config, in seed order.
    let cells_of = |row: &super::study::Row| -> Vec<&CellResult> {
        let key = super::study::config_key(&row.config, &row.corpus);
        specs.iter().zip(results).filter(|(s, _)| s.config_key == key).filter_map(|(_, r)| r.as_ref()).collect()
    };
    // The samples each metric's test compares.
    let samples = |cells: &[&CellResult], m: Metric| -> Vec<f64> {
        match m {
            Metric::Perts(_) => Vec::new(),
            Metric::Average(i) => cells.iter().filter_map(|c| screen_row(c, i, fixed)?.summary.average.mean).collect(),
            Metric::Encoder | Metric::Decoder => cells
                .iter()
                .flat_map(|c| {
                    let g = if matches!(m, Metric::Encoder) { &c.genes.encoder } else { &c.genes.decoder };
                    g.null_recalls.iter().map(move |n| 100.0 * (g.recall - n))
                })
                .collect(),
        }
    };
    let value = |cells: &[&CellResult], m: Metric| -> Cell {
        let mut cell = Cell::empty();
        match m {
            Metric::Perts(i) => {
                let counts: Vec<(u64, u64)> = cells.iter().filter_map(|c| perts_counts(screen_row(c, i, fixed)?)).collect();
                if !counts.is_empty() {
                    let (x, n) = counts.iter().fold((0, 0), |(a, b), (x, n)| (a + x, b + n));
                    cell.counts = Some((x, n));
                    cell.value = Some(100.0 * x as f64 / n as f64);
                }
            }
            Metric::Average(i) => {
                let ms = MeanSd::of(&cells.iter().filter_map(|c| screen_row(c, i, fixed)?.summary.average.mean).collect::<Vec<_>>());
                (cell.value, cell.sd) = (ms.mean, ms.sd.filter(|_| ms.n > 1));
            }
            Metric::Encoder | Metric::Decoder => {
                let recalls: Vec<f64> = cells.iter().map(|c| 100.0 * if matches!(m, Metric::Encoder) { c.genes.encoder.recall } else { c.genes.decoder.recall }).collect();
                let ms = MeanSd::of(&recalls);
                (cell.value, cell.sd) = (ms.mean, ms.sd.filter(|_| ms.n > 1));
            }
        }
        cell
    };

    let default_cells = cells_of(&study.base);
    let mut groups = Vec::new();
    for g in &study.groups {
        let mut rows = Vec::new();
        for r in &g.rows {
            let cells = cells_of(r);
            let mut row_cells = Vec::new();
            for &m in &metrics {
                let mut cell = value(&cells, m);
                if !r.is_default {
                    cell.p = match m {
                        Metric::Perts(_) => match (cell.counts, value(&default_cells, m).counts) {
                            (Some((x1, n1)), Some((x2, n2))) => two_proportion_z(x1, n1, x2, n2).map(|(_, p)| p),
                            _ => None,
                        },
                        _ => ttest_ind(&samples(&cells, m), &samples(&default_cells, m)).map(|(_, p)| p),
                    };
                }
                row_cells.push(cell);
            }
            let mean_of = |f: &dyn Fn(&CellResult) -> Option<f64>| MeanSd::of(&cells.iter().filter_map(|c| f(c)).collect::<Vec<_>>()).mean;
            rows.push(TableRow {
                name: r.name.clone(),
                is_default: r.is_default,
                diff: describe_diff(&r.diff),
                config_key: super::study::config_key(&r.config, &r.corpus),
                seeds_done: cells.iter().map(|c| c.seed).collect(),
                cells: row_cells,
                val_loss: mean_of(&|c| c.train.val_loss),
                participation_ratio: mean_of(&|c| c.train.health.as_ref().map(|h| h.participation_ratio)),
                train_seconds: mean_of(&|c| Some(c.train.seconds)),
            });
        }
        for j in 0..metrics.len() {
            let best = rows.iter().filter_map(|r| r.cells[j].value).fold(f64::NEG_INFINITY, f64::max);
            for r in &mut rows {
                r.cells[j].best = r.cells[j].value == Some(best);
            }
        }
        groups.push(GroupTable { name: g.name.clone(), rows });
    }
    // Benjamini–Hochberg per metric over every ablation pair with a p-value.
    for j in 0..metrics.len() {
        let mut at = Vec::new();
        let mut ps = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            for (ri, r) in g.rows.iter().enumerate() {
                if let Some(p) = r.cells[j].p {
                    at.push((gi, ri));
                    ps.push(p);
                }
            }
        }
        for ((gi, ri), q) in at.into_iter().zip(benjamini_hochberg(&ps)) {
            groups[gi].rows[ri].cells[j].p_adj = Some(q);
        }
    }

    let mut refs = Vec::new();
    for (screen, report) in references {
        let mut embeddings: Vec<&str> = report.rows.iter().map(|r| r.embedding.as_str()).collect();
        embeddings.dedup();
        for e in embeddings {
            if let Some(r) = pick_row(report, e, fixed) {
                refs.push(ReferenceRow {
                    screen: screen.clone(),
                    embedding: e.to_string(),
                    postprocess: r.postprocess.name().to_string(),
                    perts: perts_counts(r).map(|(x, n)| 100.0 * x as f64 / n as f64),
                    average: r.summary.average.mean,
                });
            }
        }
    }
    Ok(StudyTable {
        study: study.name.clone(),
        columns,
        groups,
        references: refs,
        seeds: study.seeds.clone(),
        cells_total: specs.len(),
        cells_done: results.iter().filter(|r| r.is_some()).count(),
    })
}

/// A metric's text: `value ± sd`, ⋆ when significant.
pub fn format_cell(c: &Cell) -> String {
    let Some(v) = c.value else { return "—".into() };
    let mut s = match c.sd {
        Some(sd) => format!("{v:.1} ± {sd:.1}"),
        None => format!("{v:.1}"),
    };
    if c.significant() {
        s.push('⋆');
    }
    s
}

impl StudyTable {
    /// `study.md`'s tables.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        for g in &self.groups {
            s.push_str(&format!("### {}\n\n| row | {} |\n|---|{}\n", g.name, self.columns.join(" | "), "---:|".repeat(self.columns.len())));
            for r in &g.rows {
                let name = if r.is_default { format!("{} (default)", r.name) } else { r.name.clone() };
                let cells: Vec<String> = r.cells.iter().map(|c| if c.best { format!("**{}**", format_cell(c)) } else { format_cell(c) }).collect();
                s.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
            }
            s.push('\n');
        }
        if !self.references.is_empty() {
            s.push_str("Baselines on the same screens (no test): ");
            let parts: Vec<String> = self
                .references
                .iter()
                .map(|r| {
                    let f = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1}"));
                    format!("`{}` on {} ({}): perts {}, avg {}", r.embedding, r.screen, r.postprocess, f(r.perts), f(r.average))
                })
                .collect();
            s.push_str(&parts.join("; "));
            s.push_str(".\n\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_sd_and_star_only_when_adjusted_p_is_small() {
        let mut c = Cell { value: Some(12.345), sd: Some(0.5), counts: None, p: Some(0.001), p_adj: Some(0.04), best: false };
        assert_eq!(format_cell(&c), "12.3 ± 0.5⋆");
        c.p_adj = Some(0.05);
        assert_eq!(format_cell(&c), "12.3 ± 0.5");
        c.sd = None;
        assert_eq!(format_cell(&c), "12.3");
        assert_eq!(format_cell(&Cell::empty()), "—");
    }
}
