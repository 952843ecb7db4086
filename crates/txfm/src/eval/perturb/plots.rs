//! PNG plots of a benchmark report, side by side for every embedding:
//! - `metrics.png`: the six metrics and the average (mean ± sd over seeds) of each embedding's
//!   best post-processing;
//! - `bmdb_recall.png`: bmdb's recall of known pairs per database, same rows;
//! - `postprocess.png`: the average score of every embedding under every post-processing.

use std::path::{Path, PathBuf};

use super::report::{MeanSd, PerturbReport, PerturbRow};
use crate::plot::{BarChart, BarSeries};
use crate::Result;

/// The metric columns of the tables, with ilisi scaled to percent as in the average.
pub const METRIC_LABELS: [&str; 7] = ["ilisi x100", "lin", "knn", "p.cst", "bmdb", "inv", "average"];

fn mean_sd(values: &[MeanSd], scale: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mean = values.iter().zip(scale).map(|(m, s)| m.mean.map_or(f64::NAN, |v| v * s)).collect();
    let sd = values.iter().zip(scale).map(|(m, s)| m.sd.map_or(f64::NAN, |v| v * s)).collect();
    (mean, sd)
}

fn row_label(row: &PerturbRow) -> String {
    format!("{} ({})", row.embedding, row.postprocess.name())
}

/// Writes the three plots into `dir` (atomically, each) and returns their paths.
pub fn write_plots(report: &PerturbReport, dir: &Path) -> Result<Vec<PathBuf>> {
    let best = report.best_rows();
    let mut written = Vec::new();

    let mut metrics = BarChart::new("Perturbation benchmark: best post-processing per embedding", "score (%)", METRIC_LABELS.iter().map(|s| s.to_string()).collect());
    for row in &best {
        let s = &row.summary;
        let (values, errors) = mean_sd(&[s.ilisi, s.lin, s.knn, s.pcst, s.bmdb, s.inv, s.average], &[100.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        metrics.series.push(BarSeries { name: row_label(row), values, errors: Some(errors) });
    }
    let path = dir.join("metrics.png");
    metrics.save(&path)?;
    written.push(path);

    let mut databases: Vec<String> = Vec::new();
    for row in &best {
        for d in &row.bmdb.databases {
            if !databases.contains(&d.database) {
                databases.push(d.database.clone());
            }
        }
    }
    let mut recall = BarChart::new("bmdb: known pairs in the 5%/95% similarity tails", "recall (%)", databases.clone());
    for row in &best {
        let values = databases
            .iter()
            .map(|db| row.bmdb.databases.iter().find(|d| &d.database == db).map_or(f64::NAN, |d| 100.0 * d.recall))
            .collect();
        recall.series.push(BarSeries { name: row_label(row), values, errors: None });
    }
    let path = dir.join("bmdb_recall.png");
    recall.save(&path)?;
    written.push(path);

    let mut embeddings: Vec<String> = Vec::new();
    let mut posts = Vec::new();
    for row in &report.rows {
        if !embeddings.contains(&row.embedding) {
            embeddings.push(row.embedding.clone());
        }
        if !posts.contains(&row.postprocess) {
            posts.push(row.postprocess);
        }
    }
    let mut by_post = BarChart::new("Average score by post-processing", "average score (%)", embeddings.clone());
    for post in posts {
        let find = |e: &String| report.rows.iter().find(|r| &r.embedding == e && r.postprocess == post);
        let values = embeddings.iter().map(|e| find(e).and_then(|r| r.summary.average.mean).unwrap_or(f64::NAN)).collect();
        let errors = embeddings.iter().map(|e| find(e).and_then(|r| r.summary.average.sd).unwrap_or(f64::NAN)).collect();
        by_post.series.push(BarSeries { name: post.name().into(), values, errors: Some(errors) });
    }
    let path = dir.join("postprocess.png");
    by_post.save(&path)?;
    written.push(path);
    Ok(written)
}
