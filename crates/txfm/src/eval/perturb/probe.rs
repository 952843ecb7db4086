//! lin: a linear probe of perturbation labels, after Tx-Evaluation's `LinearModel`
//! (`biomodalities/eval/linear_probing.py`): one `nn.Linear(dim, n_classes)` on the frozen
//! embedding, cross-entropy, trained on `split.train` and scored (top-1/top-5 accuracy, percent)
//! on `split.test1`, the unseen batches with seen perturbations.
//!
//! As the reference feeds it:
//! - controls are left out of training and scoring (`main_eval.py` opens both datasets with
//!   `control_key`, and `AnnDataset` drops the control rows);
//! - the embedding goes in as given: no standardisation;
//! - the classes are the perturbations present in training (`unique_labels` of the train set);
//! - hyper-parameters of `cfg/config/replogle_eval.yaml`: AdamW, lr 1e-3, weight decay 1e-6,
//!   250 epochs of batches of 64,768 cells (so full-batch below that), and Lightning-Bolts'
//!   linear-warm-up cosine schedule stepped per batch (`scheduler_interval: step`): 10 epochs
//!   from 3e-5 up to the lr, then a cosine down to 0;
//! - the weights after the last epoch are scored (no early stopping: `Trainer` gets no callbacks).
//!
//! Differences: the layer is initialised like `nn.Linear` (`U(±1/√dim)`) but from a ChaCha stream
//! of `seed`, not from libtorch's global generator, so the probe is deterministic whatever else
//! runs; the optimiser is the trainer's [`AdamW`] (PyTorch's update, betas 0.9/0.999, eps 1e-8),
//! which leaves the bias out of weight decay — at 1e-6, immaterial. Runs on CPU.
//!
//! The minibatch loop, schedule and seeded layer here are shared with [`super::reconstruct`].

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor, nn};

use super::data::{PerturbData, Split, TopK};
use super::knn::gather_rows;
use crate::train::optim::AdamW;

/// Linear-probe settings (defaults: Tx-Evaluation's `replogle_eval.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeConfig {
    pub fit: FitConfig,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            fit: FitConfig {
                epochs: 250,
                batch_size: 64_768,
                lr: 1e-3,
                weight_decay: 1e-6,
                warmup_epochs: 10,
                warmup_start_lr: 3e-5,
                min_lr: 0.0,
                seed: 42,
            },
        }
    }
}

/// Top-1/top-5 accuracy (percent) of a linear classifier of perturbations trained on the
/// non-control cells of `split.train` and scored on those of `split.test1`. A test perturbation
/// absent from training counts as a miss.
///
/// Panics if either set has no non-control cell.
pub fn linear_probe(data: &PerturbData, split: &Split, cfg: &ProbeConfig) -> TopK {
    linear_probe_on(data, split, cfg, Device::Cpu)
}

/// [`linear_probe`] with the classifier trained on `device`.
pub fn linear_probe_on(data: &PerturbData, split: &Split, cfg: &ProbeConfig, device: Device) -> TopK {
    let perturbed = |rows: &[usize]| -> Vec<usize> { rows.iter().copied().filter(|&i| !data.is_control(i)).collect() };
    let (train, test) = (perturbed(&split.train), perturbed(&split.test1));
    assert!(!train.is_empty() && !test.is_empty(), "the linear probe needs perturbed cells in train and test1");

    let mut class_of = vec![None; data.n_perts()];
    let mut n_classes = 0;
    let mut seen: Vec<u32> = train.iter().map(|&i| data.pert[i]).collect();
    seen.sort_unstable();
    seen.dedup();
    for code in seen {
        class_of[code as usize] = Some(n_classes);
        n_classes += 1;
    }

    let x = rows_tensor(data, &train).to_device(device);
    let y: Vec<i64> = train.iter().map(|&i| class_of[data.pert[i] as usize].expect("a training class") as i64).collect();
    let y = Tensor::from_slice(&y).to_device(device);
    let vs = nn::VarStore::new(device);
    let head = Linear::new(&vs.root() / "head", data.dim, n_classes, &mut ChaCha8Rng::seed_from_u64(cfg.fit.seed));
    cfg.fit.run(&vs, train.len(), |idx| head.forward(&x.index_select(0, idx)).cross_entropy_for_logits(&y.index_select(0, idx)));

    let logits = tch::no_grad(|| head.forward(&rows_tensor(data, &test).to_device(device)));
    let shortlist = n_classes.min(5);
    let (_, top) = logits.topk(shortlist as i64, 1, true, true);
    let top: Vec<i64> = Vec::try_from(top.reshape([-1]).to_device(Device::Cpu)).expect("topk indices");
    let (mut top1, mut top5) = (0usize, 0usize);
    for (&i, ranked) in test.iter().zip(top.chunks(shortlist)) {
        let rank = class_of[data.pert[i] as usize].and_then(|c| ranked.iter().position(|&r| r == c as i64));
        top1 += usize::from(rank == Some(0));
        top5 += usize::from(rank.is_some());
    }
    let n = test.len() as f64;
    TopK { top1: 100.0 * top1 as f64 / n, top5: 100.0 * top5 as f64 / n }
}

/// Rows `idx` of the embedding as a tensor. `[idx.len(), dim]`
pub(super) fn rows_tensor(data: &PerturbData, idx: &[usize]) -> Tensor {
    Tensor::from_slice(&gather_rows(data, idx)).view([idx.len() as i64, data.dim as i64])
}

/// A linear layer initialised as PyTorch's `nn.Linear` (weight and bias `U(±1/√d_in)`) from a
/// ChaCha stream instead of libtorch's global generator.
#[derive(Debug)]
pub(super) struct Linear {
    /// `[d_out, d_in]`
    pub weight: Tensor,
    /// `[d_out]`
    pub bias: Tensor,
}

impl Linear {
    pub fn new(path: nn::Path, d_in: usize, d_out: usize, rng: &mut ChaCha8Rng) -> Self {
        let bound = 1.0 / (d_in.max(1) as f64).sqrt();
        let mut draw = |n: usize| -> Tensor {
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect();
            Tensor::from_slice(&v)
        };
        let weight = path.var_copy("weight", &draw(d_out * d_in).view([d_out as i64, d_in as i64]));
        let bias = path.var_copy("bias", &draw(d_out));
        Linear { weight, bias }
    }

    /// `[n, d_in]` → `[n, d_out]`
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

/// Tx-Evaluation's training loop, shared by the probe and the inv decoder: minibatch AdamW over
/// seeded shuffles, with the learning rate of Lightning-Bolts' `LinearWarmupCosineAnnealingLR`
/// stepped per batch. In a config file every field is given (no per-field defaults: the probe's
/// and the decoder's differ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Epochs of linear warm-up from `warmup_start_lr` to `lr`.
    pub warmup_epochs: usize,
    pub warmup_start_lr: f64,
    /// The cosine's floor.
    pub min_lr: f64,
    pub seed: u64,
}

impl FitConfig {
    /// Learning rate of batch `step` (0-based), the scheduler's closed form with
    /// `W = warmup_epochs · steps_per_epoch` and `T = epochs · steps_per_epoch`:
    /// `start + t(lr − start)/(W − 1)` for `t < W` (reaching `lr` at `W − 1`), then
    /// `min + ½(lr − min)(1 + cos(π(t − W)/(T − W)))`. Without warm-up it starts at `lr`.
    pub fn lr_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        let warmup = self.warmup_epochs * steps_per_epoch;
        let total = self.epochs * steps_per_epoch;
        if step < warmup {
            let slope = (self.lr - self.warmup_start_lr) / (warmup - 1).max(1) as f64;
            return self.warmup_start_lr + step as f64 * slope;
        }
        let progress = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// Trains the variables of `vs` on `n` rows: each epoch shuffles the rows (ChaCha, stream 1 of
    /// `seed`) and hands each batch of row indices (`[b]`, int64) to `loss`.
    pub fn run(&self, vs: &nn::VarStore, n: usize, mut loss: impl FnMut(&Tensor) -> Tensor) {
        if n == 0 {
            return;
        }
        let mut opt = AdamW::new(vs, (0.9, 0.999), 1e-8);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(1);
        let batch = self.batch_size.clamp(1, n);
        let steps_per_epoch = n.div_ceil(batch);
        let mut order: Vec<i64> = (0..n as i64).collect();
        let mut step = 0;
        for _ in 0..self.epochs {
            order.shuffle(&mut rng);
            for chunk in order.chunks(batch) {
                let l = loss(&Tensor::from_slice(chunk).to_device(vs.device()));
                opt.backward_step(&l, None, self.lr_at(step, steps_per_epoch), self.weight_decay);
                step += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n_perts − 1` perturbations (codes 1..) around far-apart centres in 6-d and control cells
    /// (code 0) scattered over all of them; even cells in batch 0 (train), odd in batch 1 (test1).
    fn separable(n_perts: usize, n_per: usize, seed: u64) -> (PerturbData, Split) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dim = 6;
        let centres: Vec<Vec<f32>> = (0..n_perts).map(|_| (0..dim).map(|_| rng.random_range(-8.0..8.0)).collect()).collect();
        let (mut x, mut pert) = (Vec::new(), Vec::new());
        let mut split = Split::default();
        for p in 0..n_perts {
            for c in 0..n_per {
                let centre = if p == 0 { &centres[rng.random_range(1..n_perts)] } else { &centres[p] };
                x.extend(centre.iter().map(|&m| m + rng.random_range(-1.0f32..1.0)));
                if c % 2 == 0 { split.train.push(pert.len()) } else { split.test1.push(pert.len()) }
                pert.push(p as u32);
            }
        }
        let n_obs = pert.len();
        let data = PerturbData {
            n_obs,
            dim,
            x,
            pert,
            pert_names: (0..n_perts).map(|p| format!("p{p}")).collect(),
            batch: (0..n_obs).map(|i| (i % 2) as u32).collect(),
            batch_names: vec!["b0".into(), "b1".into()],
            control: 0,
        };
        (data, split)
    }

    fn quick() -> ProbeConfig {
        ProbeConfig { fit: FitConfig { epochs: 60, batch_size: 64, lr: 0.05, warmup_epochs: 2, ..ProbeConfig::default().fit } }
    }

    #[test]
    fn schedule_warms_up_from_the_start_lr_then_follows_the_cosine() {
        let f = ProbeConfig::default().fit;
        assert_eq!(f.lr_at(0, 1), 3e-5);
        assert!((f.lr_at(9, 1) - 1e-3).abs() < 1e-18, "the peak at the last warm-up step");
        assert_eq!(f.lr_at(10, 1), 1e-3);
        assert!((f.lr_at(130, 1) - 5e-4).abs() < 1e-15, "the cosine's midpoint");
        assert!(f.lr_at(250, 1).abs() < 1e-18);
        assert!((f.lr_at(260, 2) - 5e-4).abs() < 1e-15, "steps, not epochs, with two batches an epoch");
        let flat = FitConfig { warmup_epochs: 0, ..f };
        assert_eq!(flat.lr_at(0, 1), 1e-3);
    }

    #[test]
    fn linearly_separable_perturbations_are_all_recovered() {
        // The controls sit on top of the perturbations' clusters: scoring them would cost accuracy.
        let (data, split) = separable(7, 60, 1);
        assert_eq!(linear_probe(&data, &split, &quick()), TopK { top1: 100.0, top5: 100.0 });
    }

    #[test]
    fn random_labels_score_about_chance() {
        let (mut data, split) = separable(2, 1500, 2);
        let n_perts = 10;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        data.pert = (0..data.n_obs).map(|_| rng.random_range(1..=n_perts)).collect();
        data.pert_names = (0..=n_perts).map(|p| format!("p{p}")).collect();
        let acc = linear_probe(&data, &split, &quick());
        assert!((acc.top1 - 10.0).abs() < 3.0, "top-1 {} vs chance 10%", acc.top1);
        assert!((acc.top5 - 50.0).abs() < 5.0, "top-5 {} vs chance 50%", acc.top5);
    }

    #[test]
    fn training_is_deterministic() {
        let (data, split) = separable(4, 30, 4);
        let train = |seed| {
            let vs = nn::VarStore::new(Device::Cpu);
            let head = Linear::new(&vs.root() / "head", data.dim, 4, &mut ChaCha8Rng::seed_from_u64(seed));
            let x = rows_tensor(&data, &split.train);
            let y = Tensor::from_slice(&split.train.iter().map(|&i| data.pert[i] as i64).collect::<Vec<_>>());
            FitConfig { seed, ..quick().fit }
                .run(&vs, split.train.len(), |idx| head.forward(&x.index_select(0, idx)).cross_entropy_for_logits(&y.index_select(0, idx)));
            Vec::<f32>::try_from(head.weight.reshape([-1])).unwrap()
        };
        assert_eq!(train(7), train(7));
        assert_ne!(train(7), train(8));
    }
}
