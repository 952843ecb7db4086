//! Validation: the model's reconstruction loss on the held-out split, next to the trivial baseline
//! that predicts each gene's best constant for the loss (for the Poisson loss, the log of the mean
//! shifted count, not the mean of the log values) — a model that has learnt anything about a
//! sample from its visible genes must beat it. A fresh model's decoder starts at this baseline.

use tch::{Device, Kind, Tensor};

use super::batch::Batch;
use super::health::Health;
use crate::model::{BatchTensors, LossKind, TxFm};
use crate::runtime::{with_autocast, AutocastDtype};
use crate::Result;

/// Training samples the baseline's gene means are estimated from: enough for the means to settle
/// to a few decimals, few enough to cost seconds on a real corpus.
pub const BASELINE_SAMPLES: usize = 20_000;

/// Each gene's mean preprocessed value `x` and mean shifted count `exp(x)` over the training
/// samples that profile it. `[G]` each.
#[derive(Debug, Clone)]
pub struct GeneMeans {
    pub mean_x: Vec<f64>,
    pub mean_exp_x: Vec<f64>,
}

impl GeneMeans {
    /// Estimates the means from the first [`BASELINE_SAMPLES`] samples of `batches`, which the
    /// trainer takes from epoch 0's shuffled order (shuffled, so a multi-dataset corpus is
    /// sampled across datasets). Genes that no sample profiles get `x = 0`.
    pub fn fit(batches: impl Iterator<Item = Result<Batch>>) -> Result<GeneMeans> {
        let (mut sum, mut sum_exp, mut count): (Vec<f64>, Vec<f64>, Vec<u64>) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = 0;
        for batch in batches {
            let b = batch?;
            if sum.is_empty() {
                (sum, sum_exp, count) = (vec![0.0; b.g], vec![0.0; b.g], vec![0; b.g]);
            }
            for i in 0..b.n {
                let row = i * b.g..(i + 1) * b.g;
                for ((g, &x), &m) in b.target[row.clone()].iter().enumerate().zip(&b.target_mask[row]) {
                    if m {
                        sum[g] += x as f64;
                        sum_exp[g] += (x as f64).exp();
                        count[g] += 1;
                    }
                }
            }
            seen += b.n;
            if seen >= BASELINE_SAMPLES {
                break;
            }
        }
        let mean = |s: &[f64], empty: f64| s.iter().zip(&count).map(|(&s, &c)| if c > 0 { s / c as f64 } else { empty }).collect();
        Ok(GeneMeans { mean_x: mean(&sum, 0.0), mean_exp_x: mean(&sum_exp, 1.0) })
    }

    /// The loss-optimal constant prediction of each gene (see [`LossKind::optimal_constant`]). `[G]`
    pub fn constants(&self, loss: LossKind) -> Vec<f64> {
        self.mean_x.iter().zip(&self.mean_exp_x).map(|(&m, &e)| loss.optimal_constant(m, e)).collect()
    }
}

/// Validation losses, each the mean over every (sample, profiled gene) entry evaluated, and the
/// health of the validation samples' embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    /// The same loss for the per-gene baseline (each gene's loss-optimal constant).
    pub baseline: f64,
    pub n_samples: usize,
    /// `None` when the split is too small to measure it.
    pub health: Option<Health>,
}

impl Evaluation {
    /// Whether the model is still at the per-gene baseline: its loss less than 0.1% of the
    /// baseline's magnitude below it. Every recipe starts on this plateau (its CLS carries nothing
    /// and the decoder predicts each gene's constant), and a run too short or too wide for its
    /// budget can end on it (`docs/experiments.md` § 7).
    pub fn at_baseline(&self) -> bool {
        self.loss > self.baseline - 1e-3 * self.baseline.abs()
    }
}

/// The label column of the health's kNN: its name and each validation sample's label.
#[derive(Debug, Clone)]
pub struct HealthLabels {
    pub column: String,
    pub by_sample: std::collections::HashMap<u64, String>,
}

/// Evaluates `model` (without stochastic depth) and the baseline on up to `max_batches` batches of
/// `batches` (all when `None`), under autocast at `autocast`'s type when it is set, and measures the
/// [`Health`] of the evaluated samples' CLS embeddings (the forward pass computes them anyway).
pub fn evaluate(model: &TxFm, batches: impl Iterator<Item = Result<Batch>>, means: &GeneMeans, device: Device, max_batches: Option<usize>, autocast: Option<AutocastDtype>, labels: Option<&HealthLabels>) -> Result<Evaluation> {
    let (mut loss, mut baseline, mut entries, mut n_samples) = (0.0, 0.0, 0.0, 0);
    let (mut cls_all, mut library_size, mut label_of): (Vec<f32>, Vec<f64>, Vec<Option<&str>>) = (vec![], vec![], vec![]);
    let mut d = 0;
    let constants: Vec<f32> = means.constants(model.config().loss).iter().map(|&c| c as f32).collect();
    let constants = Tensor::from_slice(&constants).to_device(device);
    for batch in batches.take(max_batches.unwrap_or(usize::MAX)) {
        let batch = batch?;
        let b = BatchTensors::from_batch(&batch, device);
        let (l, base, n, cls) = tch::no_grad(|| {
            let (l, _, cls) = with_autocast(device, autocast, || model.forward(&b, false));
            let constant = constants.unsqueeze(0).expand_as(&b.target);
            let base = model.loss(&constant, &b.target, &b.target_mask);
            (l.double_value(&[]), base.double_value(&[]), b.target_mask.sum(Kind::Float).double_value(&[]), cls)
        });
        d = cls.size()[1] as usize;
        cls_all.extend(Vec::<f32>::try_from(cls.to_kind(Kind::Float).to_device(Device::Cpu).reshape([-1])).expect("f32 CLS"));
        library_size.extend_from_slice(&batch.library_size);
        if let Some(labels) = labels {
            label_of.extend(batch.sample.iter().map(|s| labels.by_sample.get(s).map(String::as_str)));
        }
        // Batch means weighted by their entries: the mean over all entries, however batches fall.
        loss += l * n;
        baseline += base * n;
        entries += n;
        n_samples += b.len();
    }
    let entries = if entries > 0.0 { entries } else { f64::NAN };
    let health = if n_samples >= 2 * super::health::RIDGE_FOLDS {
        let codes = labels.map(|l| (l.column.as_str(), label_codes(&label_of)));
        Some(Health::measure(&cls_all, d, &library_size, codes.as_ref().map(|(c, v)| (*c, v.as_slice())))?)
    } else {
        None
    };
    Ok(Evaluation { loss: loss / entries, baseline: baseline / entries, n_samples, health })
}

/// Labels as dense codes in order of first appearance.
fn label_codes(labels: &[Option<&str>]) -> Vec<Option<u32>> {
    let mut codes = std::collections::HashMap::new();
    labels
        .iter()
        .map(|l| l.map(|l| {
            let next = codes.len() as u32;
            *codes.entry(l).or_insert(next)
        }))
        .collect()
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_baseline_means_within_a_thousandth_of_the_baseline() {
        let e = |loss: f64| Evaluation { loss, baseline: -256.09, n_samples: 1, health: None };
        // The d 128 run of docs/experiments.md § 7 against the CPU recipe.
        assert!(e(-256.13).at_baseline() && e(-255.0).at_baseline());
        assert!(!e(-268.64).at_baseline() && !e(-256.4).at_baseline());
    }

    /// Two samples over 3 genes; gene 2 is profiled by the first sample only.
    fn batch() -> Batch {
        Batch {
            n: 2,
            k: 1,
            g: 3,
            sample: vec![0, 1],
            library_size: vec![10.0, 20.0],
            visible_genes: vec![0, 0],
            visible_values: vec![0.0, 0.0],
            visible_pad: vec![false, false],
            target: vec![0.0, 1.0, 2.0, 4.0, 3.0, 9.0],
            target_mask: vec![true, true, true, true, true, false],
        }
    }

    #[test]
    fn the_baseline_is_the_losses_optimal_constant_over_profiled_samples() {
        let means = GeneMeans::fit([Ok(batch())].into_iter()).unwrap();
        assert_eq!(means.mean_x, [2.0, 2.0, 2.0]);
        let e = |x: f64| x.exp();
        let expected_exp = [(e(0.0) + e(4.0)) / 2.0, (e(1.0) + e(3.0)) / 2.0, e(2.0)];
        for (got, want) in means.mean_exp_x.iter().zip(expected_exp) {
            assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
        }
        // The Poisson baseline is ln(mean exp(x)), above the mean of x wherever the values vary;
        // the MSE baseline is the mean of x.
        let poisson = means.constants(LossKind::Poisson);
        assert!((poisson[0] - expected_exp[0].ln()).abs() < 1e-9 && poisson[0] > 3.0, "{poisson:?}");
        assert!((poisson[2] - 2.0).abs() < 1e-9);
        assert_eq!(means.constants(LossKind::Mse), [2.0, 2.0, 2.0]);
    }
}
