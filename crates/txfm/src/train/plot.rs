//! `loss.png`: the run's loss curves against step — training loss, validation loss and the
//! per-gene-mean baseline's validation loss — with labelled axes. The numbers themselves are in
//! `metrics.jsonl`.

use std::path::Path;

use super::metrics::StepRecord;
use crate::plot::{LineChart, Series, PALETTE};
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
        name: "gene-mean baseline".into(),
        colour: PALETTE[7],
        points: val().filter_map(|r| Some((r.step as f64, r.val_baseline?))).collect(),
        markers: true,
    });
    chart.save(path)
}
