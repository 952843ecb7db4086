//! The training loop: batch → [`BatchTensors`] → `forward(train = true)` → backward → optional
//! global-norm clipping → AdamW at the scheduled learning rate; validation every `eval_every`
//! steps, checkpoints every `checkpoint_every` steps, both also at the end; `loss.png` at the end.
//!
//! Reproducibility: the loader's batch sequence is a function of its seed and position, the
//! learning rate of the step number, and libtorch's generator (stochastic depth) is re-seeded
//! from (seed, step) before every step. So a run resumed from a checkpoint takes exactly the
//! steps the uninterrupted run would have taken, bit for bit on the same CPU build.
//!
//! The model's gene vocabulary is the corpus's for a run from scratch; a fine-tuning run
//! ([`super::finetune`]) starts from another run's weights with a vocabulary extended to the
//! target corpus's genes, and every batch is moved into model indices by a [`VocabMap`].
//!
//! On CUDA with `autocast = true` the forward pass runs under libtorch autocast at
//! `autocast_dtype` (bfloat16 by default, through [`crate::runtime::with_autocast`]); weights,
//! moments and the loss stay float32. CPU runs ignore the flag: CPU bfloat16 matmuls are slower
//! than float32 ones on most CPUs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tch::{nn, Device};

use crate::runtime::with_autocast;

use super::checkpoint::{self, Checkpoint, TrainState};
use super::batch::Batch;
use super::config::RunConfig;
use super::eval::{evaluate, Evaluation, GeneMeans};
use super::loader::{Loader, LoaderState, Split};
use super::metrics::{read_metrics, MetricsLog, StepRecord};
use super::plot::write_loss_curve;
use super::optim::AdamW;
use super::schedule::OneCycle;
use super::vocab::{VocabMap, Vocabulary};
use crate::atomic::write_atomic;
use crate::corpus::Corpus;
use crate::model::{BatchTensors, TxFm};
use crate::runtime::DeviceSpec;
use crate::{Error, Result};

/// How to run, apart from what the run config fixes.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run folder: `config.toml`, `metrics.jsonl`, `checkpoints/`.
    pub out: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Checkpoint and return once this many steps are done, as if the job's time ran out (for
    /// jobs split into time slices; resume to continue).
    pub stop_at: Option<u64>,
}

impl TrainOptions {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        TrainOptions { out: out.into(), progress: false, stop_at: None }
    }
}

/// What a call to [`train`] or [`resume`] did.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Steps done before this call (0 unless resumed).
    pub first_step: u64,
    /// Steps done at return.
    pub step: u64,
    pub total_steps: u64,
    /// Training loss of each step of this call, in order.
    pub train_losses: Vec<f64>,
    /// The last validation result of this call.
    pub eval: Option<Evaluation>,
    /// A fine-tuning run's validation result before its first step: the pretrained weights, new
    /// genes freshly initialised. `None` for other calls.
    pub initial_eval: Option<Evaluation>,
    /// Training throughput of this call.
    pub samples_per_s: f64,
    /// The last checkpoint written.
    pub checkpoint: PathBuf,
}

/// Starts a run of `config` in `opts.out`, writing `config.toml` there first. Refuses a folder
/// that already holds checkpoints (resume it, or pick another folder).
pub fn train(corpus: Arc<Corpus>, config: &RunConfig, opts: &TrainOptions) -> Result<TrainOutcome> {
    start(corpus, config, opts, Start::Fresh)
}

/// Where a run's weights come from.
pub(super) enum Start {
    /// A fresh initialisation for the corpus's vocabulary.
    Fresh,
    /// A checkpoint of this run: weights, optimiser state and position.
    Resume(Checkpoint),
    /// Another run's checkpoint, weights only, with its vocabulary extended to `vocab`.
    Finetune { from: Checkpoint, vocab: Vocabulary },
}

/// Starts a new run (not a resumed one) in `opts.out`; see [`train`].
pub(super) fn start(corpus: Arc<Corpus>, config: &RunConfig, opts: &TrainOptions, from: Start) -> Result<TrainOutcome> {
    config.validate("run config")?;
    if let Some(c) = Checkpoint::latest(&opts.out)? {
        return Err(Error::Invalid(format!(
            "{} already holds a run (checkpoint {}); resume it or choose another output folder",
            opts.out.display(),
            c.dir.display()
        )));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    write_atomic(&opts.out.join("config.toml"), &config.to_toml())?;
    run(corpus, config.clone(), opts, from)
}

/// Continues the run in `opts.out` from its latest checkpoint, with the checkpoint's config
/// (optionally on another `device`).
pub fn resume(corpus: Arc<Corpus>, opts: &TrainOptions, device: Option<DeviceSpec>) -> Result<TrainOutcome> {
    let ckpt = Checkpoint::latest(&opts.out)?
        .ok_or_else(|| Error::Invalid(format!("{}: no checkpoint to resume from", checkpoint::checkpoints_dir(&opts.out).display())))?;
    let mut config = ckpt.config.clone();
    if let Some(d) = device {
        config.device = match d {
            DeviceSpec::Cpu => "cpu".into(),
            DeviceSpec::Auto => "auto".into(),
            DeviceSpec::Cuda(i) => format!("cuda:{i}"),
        };
    }
    run(corpus, config, opts, Start::Resume(ckpt))
}

/// The seed of libtorch's generator for step `step`: distinct per step, fixed by (seed, step).
fn step_seed(seed: u64, step: u64) -> i64 {
    // SplitMix64's finaliser spreads consecutive steps over the whole seed space.
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

fn run(corpus: Arc<Corpus>, config: RunConfig, opts: &TrainOptions, from: Start) -> Result<TrainOutcome> {
    let device = config.device_spec()?.resolve()?;
    let (vocab, map) = match &from {
        Start::Fresh => (Vocabulary::of_corpus(&corpus), VocabMap::identity(corpus.n_vars())),
        Start::Resume(ckpt) => (ckpt.vocabulary(), ckpt.vocab_map(&corpus)?),
        Start::Finetune { vocab, .. } => (vocab.clone(), VocabMap::new(vocab, &corpus, "the fine-tuning vocabulary")?),
    };
    let to_model = |b: Result<Batch>| b.map(|b| map.apply(b));
    let train_loader = Loader::new(corpus.clone(), config.loader.clone(), Split::Train)?;
    let val_loader = Loader::new(corpus.clone(), config.loader.clone(), Split::Validation)?;
    let batches_per_epoch = train_loader.batches_per_epoch();
    if batches_per_epoch == 0 {
        return Err(Error::Invalid(format!("corpus {}: no training samples", corpus.dir.display())));
    }
    let total = config.total_steps(batches_per_epoch);
    let schedule = OneCycle::new(config.optimizer.lr, total, config.optimizer.warmup_fraction);
    let weight_decay = config.optimizer.weight_decay_for(total);
    let autocast = (config.autocast && device != Device::Cpu).then_some(config.autocast_dtype);
    if device == Device::Cpu {
        leave_cores_to_the_loader(config.loader.n_workers);
    }

    tch::manual_seed(config.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let model = TxFm::new(&vs.root(), &config.model, vocab.len())?;
    let mut optimizer = AdamW::new(&vs, config.optimizer.betas, config.optimizer.eps);
    let mut state = TrainState { step: 0, total_steps: total, loader: Default::default(), seed: config.seed, next_lr: schedule.lr(0), weight_decay };
    let mut last_checkpoint = None;
    let finetuning = matches!(from, Start::Finetune { .. });
    match from {
        Start::Fresh => {}
        Start::Finetune { from, .. } => super::finetune::load_pretrained(&mut vs, &from)?,
        Start::Resume(ckpt) => {
            if ckpt.state.total_steps != total {
                return Err(Error::Invalid(format!(
                    "{}: the run had {} steps but would now have {total}; was the corpus changed?",
                    ckpt.dir.display(),
                    ckpt.state.total_steps
                )));
            }
            let path = ckpt.model_path();
            vs.load(&path).map_err(|e| Error::format(&path, e.to_string()))?;
            optimizer.load(&ckpt.optimizer_path())?;
            state = ckpt.state;
            last_checkpoint = Some(ckpt.dir);
        }
    }
    let first_step = state.step;
    let means = GeneMeans::fit(train_loader.epoch_iter(LoaderState::default()).map(to_model), device)?;
    let initial_eval = if finetuning {
        Some(evaluate(&model, val_loader.eval_iter().map(to_model), &means, device, config.eval_batches, autocast)?)
    } else {
        None
    };
    let mut metrics = MetricsLog::open(&opts.out.join("metrics.jsonl"), first_step)?;
    let bar = progress_bar(opts.progress, total, first_step);

    let stop = opts.stop_at.unwrap_or(total).min(total);
    let mut train_losses = Vec::new();
    let (mut samples, mut train_secs) = (0usize, 0.0f64);
    let mut last_eval = None;
    let mut batches = train_loader.epoch_iter(state.loader);
    while state.step < stop {
        let started = Instant::now();
        let Some(batch) = batches.next() else {
            // The epoch is over; `state.loader` has already rolled over to the next one.
            batches = train_loader.epoch_iter(state.loader);
            continue;
        };
        let batch = map.apply(batch?);
        let lr = schedule.lr(state.step);
        tch::manual_seed(step_seed(config.seed, state.step));
        let tensors = BatchTensors::from_batch(&batch, device);
        let (loss, _, _) = with_autocast(device, autocast, || model.forward(&tensors, true));
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            bar.abandon();
            let kept = last_checkpoint.as_ref().map_or("none was written yet".to_string(), |p: &PathBuf| p.display().to_string());
            return Err(Error::Invalid(format!(
                "step {} of {total}: the training loss is {loss_value}; stopped. Last good checkpoint: {kept}",
                state.step + 1
            )));
        }
        optimizer.backward_step(&loss, config.optimizer.grad_clip, lr, weight_decay);
        let epoch = state.loader.epoch;
        state.step += 1;
        state.loader = state.loader.after_batch(batches_per_epoch);
        state.next_lr = schedule.lr(state.step);
        train_losses.push(loss_value);
        samples += batch.n;
        train_secs += started.elapsed().as_secs_f64();
        let samples_per_s = samples as f64 / train_secs.max(1e-9);

        let mut record = StepRecord { step: state.step, epoch, lr, train_loss: loss_value, samples_per_s, val_loss: None, val_baseline: None };
        if state.step.is_multiple_of(config.eval_every) || state.step == total {
            let e = evaluate(&model, val_loader.eval_iter().map(to_model), &means, device, config.eval_batches, autocast)?;
            (record.val_loss, record.val_baseline) = (Some(e.loss), Some(e.baseline));
            last_eval = Some(e);
        }
        metrics.append(&record)?;
        if state.step.is_multiple_of(config.checkpoint_every) || state.step == stop {
            last_checkpoint = Some(checkpoint::save(&opts.out, &vs, &optimizer, &state, &config, &vocab)?);
        }
        bar.set_position(state.step);
        bar.set_message(format!("loss {loss_value:.4} · {samples_per_s:.0} samples/s"));
    }
    bar.finish();
    let metrics_path = opts.out.join("metrics.jsonl");
    drop(metrics);
    write_loss_curve(&opts.out.join("loss.png"), &read_metrics(&metrics_path)?, total)?;
    let checkpoint = match last_checkpoint {
        Some(c) => c,
        // Resumed at the final step: nothing was left to do, the checkpoint is the final one.
        None => checkpoint::save(&opts.out, &vs, &optimizer, &state, &config, &vocab)?,
    };
    Ok(TrainOutcome {
        first_step,
        step: state.step,
        total_steps: total,
        train_losses,
        eval: last_eval,
        initial_eval,
        samples_per_s: samples as f64 / train_secs.max(1e-9),
        checkpoint,
    })
}

/// Gives libtorch the cores the loader's workers do not use, unless the user chose a thread
/// count (`OMP_NUM_THREADS`). libtorch's default of one thread per core oversubscribes the CPU
/// once the loader runs beside it, and its spinning workers then slow down many-fold (a tiny
/// step went from 50 ms to 700 ms on 2 cores). The setting is process-wide.
fn leave_cores_to_the_loader(n_workers: usize) {
    if std::env::var_os("OMP_NUM_THREADS").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tch::set_num_threads(cores.saturating_sub(n_workers).max(1) as i32);
}

fn progress_bar(show: bool, total: u64, at: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total).with_position(at);
    let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps · {msg} · ETA {eta}")
        .expect("the template is valid");
    bar.set_style(style);
    bar
}

