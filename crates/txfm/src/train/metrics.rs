//! `metrics.jsonl`: one JSON record per training step, with the validation losses on evaluation
//! steps. Appended as the run goes, so a crashed run keeps its curve; on resume, records after the
//! checkpoint's step are dropped so the file reads as one uninterrupted run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::health::Health;
use crate::atomic::write_atomic;
use crate::{Error, Result};

/// One step. `step` counts completed steps (1 for the first), as checkpoint names do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    /// Epoch of the step's batch.
    pub epoch: u64,
    pub lr: f64,
    /// Loss of the step's batch, before its update.
    pub train_loss: f64,
    /// Training throughput of the session so far (evaluation and checkpoints excluded).
    pub samples_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    /// Validation loss of the per-gene baseline.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_baseline: Option<f64>,
    /// The validation embeddings' representation health, on evaluation steps.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub health: Option<Health>,
}

/// The open metrics file.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending, first dropping the records after step `keep_through` (all of
    /// them for a fresh run, `keep_through = 0`).
    pub fn open(path: &Path, keep_through: u64) -> Result<MetricsLog> {
        let kept: Vec<StepRecord> = if path.exists() { read_metrics(path)?.into_iter().filter(|r| r.step <= keep_through).collect() } else { vec![] };
        let text: String = kept.iter().map(|r| serde_json::to_string(r).expect("a record serialises") + "\n").collect();
        write_atomic(path, &text)?;
        let file = OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog { path: path.to_path_buf(), file })
    }

    pub fn append(&mut self, record: &StepRecord) -> Result<()> {
        let line = serde_json::to_string(record).expect("a record serialises") + "\n";
        self.file.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, e))
    }
}

/// Every record of a metrics file; a torn last line (a run killed mid-write) is skipped.
pub fn read_metrics(path: &Path) -> Result<Vec<StepRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(Error::format(path, format!("line {}: {e}", i + 1))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record read back is the record written, to the last bit: the ablation runner compares a
    /// resumed study's table with an uninterrupted one's exactly, and a resumed run rewrites the
    /// file it kept. serde_json's default float parser is off by an ulp for about one number in
    /// five; the workspace turns on its `float_roundtrip` parser.
    #[test]
    fn records_read_back_bit_for_bit_also_after_a_resume_rewrites_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Uniform in [1, 2) times a spread of scales: every bit of the mantissa is used.
            f64::from_bits((state >> 12) | 0x3ff0_0000_0000_0000) * 10f64.powi((state % 7) as i32 - 3)
        };
        let records: Vec<StepRecord> = (1..=50)
            .map(|step| StepRecord {
                step,
                epoch: 0,
                lr: next(),
                train_loss: -next(),
                samples_per_s: next(),
                val_loss: Some(-next()),
                val_baseline: Some(-next()),
                health: Some(Health { n_samples: 10, participation_ratio: next(), top_share: next(), library_r2: next(), label: None }),
            })
            .collect();
        let mut log = MetricsLog::open(&path, 0).unwrap();
        for r in &records {
            log.append(r).unwrap();
        }
        drop(log);
        assert!(read_metrics(&path).unwrap() == records, "a record read back differs from the one written");
        // Resuming at step 30 rewrites the first 30 records from what it read.
        drop(MetricsLog::open(&path, 30).unwrap());
        assert!(read_metrics(&path).unwrap() == records[..30], "the resume's rewrite changed a kept record");
    }
}
