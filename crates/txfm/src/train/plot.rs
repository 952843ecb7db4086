//! `loss.png`: the run's loss curves against step — training loss, validation loss and the
//! per-gene baseline's validation loss — with labelled axes; `health.png`: the validation
//! embeddings' representation health against step. The numbers themselves are in `metrics.jsonl`.

use std::path::Path;

use super::metrics::StepRecord;
use crate::plot::{Canvas, LineChart, Series, PALETTE};
use crate::Result;

/// Draws the curves of `records` (steps `1..=total_steps`) into `path`, atomically.
pub fn write_loss_curve(path: &Path, records: &[StepRecord], total_steps: u64) -> Result<()> {
    let mut chart = LineChart::new(&format!("Training loss ({} of {total_steps} steps)", records.last().map_or(0, |r| r.step)), "step", "loss");
    let val = || records.iter().filter(|r| r.val_loss.is_some());
    chart.series.push(Series {
        name: "train".into(),
        colour: PALETTE[0],
        points: records.iter().map(|r| (r.step as f64, r.train_loss)).collect(),
        markers: false,
    });
    chart.series.push(Series {
        name: "validation".into(),
        colour: PALETTE[3],
        points: val().filter_map(|r| Some((r.step as f64, r.val_loss?))).collect(),
        markers: true,
    });
    chart.series.push(Series {
        name: "per-gene baseline".into(),
        colour: PALETTE[7],
        points: val().filter_map(|r| Some((r.step as f64, r.val_baseline?))).collect(),
        markers: true,
    });
    chart.save(path)
}

/// Draws the health of `records`' evaluations into `path`, atomically: the participation ratio
/// (effective dimensions) above, the shares in [0, 1] (top component, library-size R², label kNN
/// accuracy and its chance level) below. Writes nothing when no record has a health.
pub fn write_health_curve(path: &Path, records: &[StepRecord]) -> Result<()> {
    let health: Vec<(f64, &super::health::Health)> = records.iter().filter_map(|r| Some((r.step as f64, r.health.as_ref()?))).collect();
    if health.is_empty() {
        return Ok(());
    }
    let series = |name: &str, colour: usize, f: &dyn Fn(&super::health::Health) -> Option<f64>| Series {
        name: name.into(),
        colour: PALETTE[colour],
        points: health.iter().filter_map(|(s, h)| Some((*s, f(h)?))).collect(),
        markers: true,
    };
    let mut rank = LineChart::new("Representation health of the validation CLS embeddings", "step", "participation ratio");
    rank.series.push(series("participation ratio (effective dimensions)", 0, &|h| Some(h.participation_ratio)));
    let mut shares = LineChart::new("", "step", "share");
    shares.series.push(series("top component's variance share", 3, &|h| Some(h.top_share)));
    shares.series.push(series("ln(library size) ridge R2", 7, &|h| Some(h.library_r2)));
    if let Some(column) = health.iter().find_map(|(_, h)| h.label.as_ref().map(|l| l.column.clone())) {
        shares.series.push(series(&format!("{column} kNN accuracy"), 2, &|h| h.label.as_ref().map(|l| l.accuracy)));
        shares.series.push(series(&format!("{column} chance"), 5, &|h| h.label.as_ref().map(|l| l.chance)));
    }
    Canvas::stack(&[rank.render(), shares.render()]).save(path)
}
