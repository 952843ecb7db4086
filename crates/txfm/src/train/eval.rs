//! Validation: the model's reconstruction loss on the held-out split, next to the trivial baseline
//! that predicts each gene's mean preprocessed value — a model that has learnt anything about a
//! sample from its visible genes must beat it.

use tch::{Device, Kind, Tensor};

use super::batch::Batch;
use crate::model::{BatchTensors, TxFm};
use crate::runtime::{with_autocast, AutocastDtype};
use crate::Result;

/// Training samples the baseline's gene means are estimated from: enough for the means to settle
/// to a few decimals, few enough to cost seconds on a real corpus.
pub const BASELINE_SAMPLES: usize = 20_000;

/// Each gene's mean preprocessed value over the training samples that profile it. `[G]`
#[derive(Debug)]
pub struct GeneMeans(pub Tensor);

impl GeneMeans {
    /// Estimates the means from the first [`BASELINE_SAMPLES`] samples of `batches`, which the
    /// trainer takes from epoch 0's shuffled order (shuffled, so a multi-dataset corpus is
    /// sampled across datasets). Genes that no sample profiles get 0.
    pub fn fit(batches: impl Iterator<Item = Result<Batch>>, device: Device) -> Result<GeneMeans> {
        let (mut sum, mut count): (Vec<f64>, Vec<u64>) = (Vec::new(), Vec::new());
        let mut seen = 0;
        for batch in batches {
            let b = batch?;
            if sum.is_empty() {
                (sum, count) = (vec![0.0; b.g], vec![0; b.g]);
            }
            for i in 0..b.n {
                let row = i * b.g..(i + 1) * b.g;
                for ((g, &x), &m) in b.target[row.clone()].iter().enumerate().zip(&b.target_mask[row]) {
                    if m {
                        sum[g] += x as f64;
                        count[g] += 1;
                    }
                }
            }
            seen += b.n;
            if seen >= BASELINE_SAMPLES {
                break;
            }
        }
        let means: Vec<f32> = sum.iter().zip(&count).map(|(&s, &c)| if c > 0 { (s / c as f64) as f32 } else { 0.0 }).collect();
        Ok(GeneMeans(Tensor::from_slice(&means).to_device(device)))
    }
}

/// Validation losses, each the mean over every (sample, profiled gene) entry evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    /// The same loss for the per-gene-mean predictor.
    pub baseline: f64,
    pub n_samples: usize,
}

/// Evaluates `model` (without stochastic depth) and the baseline on up to `max_batches` batches of
/// `batches` (all when `None`), under autocast at `autocast`'s type when it is set.
pub fn evaluate(model: &TxFm, batches: impl Iterator<Item = Result<Batch>>, means: &GeneMeans, device: Device, max_batches: Option<usize>, autocast: Option<AutocastDtype>) -> Result<Evaluation> {
    let (mut loss, mut baseline, mut entries, mut n_samples) = (0.0, 0.0, 0.0, 0);
    for batch in batches.take(max_batches.unwrap_or(usize::MAX)) {
        let b = BatchTensors::from_batch(&batch?, device);
        let (l, base, n) = tch::no_grad(|| {
            let (l, _, _) = with_autocast(device, autocast, || model.forward(&b, false));
            let constant = means.0.unsqueeze(0).expand_as(&b.target);
            let base = model.loss(&constant, &b.target, &b.target_mask);
            (l.double_value(&[]), base.double_value(&[]), b.target_mask.sum(Kind::Float).double_value(&[]))
        });
        // Batch means weighted by their entries: the mean over all entries, however batches fall.
        loss += l * n;
        baseline += base * n;
        entries += n;
        n_samples += b.len();
    }
    let entries = if entries > 0.0 { entries } else { f64::NAN };
    Ok(Evaluation { loss: loss / entries, baseline: baseline / entries, n_samples })
}

