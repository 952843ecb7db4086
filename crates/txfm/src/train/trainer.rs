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
//! Data parallelism: under `mpirun -n N` (see [`crate::runtime::dist`]) each rank trains on its
//! share of every global batch of N · `loader.batch_size` samples ([`Loader::sharded`]); the
//! schedule, the total steps and the weight decay are defined on these global steps. Every rank
//! starts from rank 0's parameters, weights its masked-mean loss by its share of the global batch's
//! loss terms, and the gradients are averaged over the ranks in buckets whose all-reduce starts
//! during the backward pass ([`GradReducer`]), so clipping and AdamW see the gradient of the
//! global batch's loss and every rank applies the same update. Stochastic depth draws from a generator seeded by (seed, step, rank):
//! rank 0's draws are a single-process run's, the others' differ, so an N-rank run equals a
//! one-rank run with the global batch size exactly only without stochastic depth (`drop_path = 0`),
//! and up to float summation order. Rank 0 alone evaluates and writes the run folder (metrics,
//! checkpoints, `loss.png`); the others wait for each checkpoint at a barrier. A run of one
//! process makes no collective call and is what it was before data parallelism.
//!
//! With `autocast = true` the forward pass runs under libtorch autocast at `autocast_dtype`
//! (bfloat16 by default, through [`crate::runtime::with_autocast`]); weights, moments and the loss
//! stay float32. That holds on CUDA; CPU runs stay float32 unless `TXFM_CPU_AUTOCAST=on`
//! ([`crate::runtime::autocast_for`]), which on a CPU with AMX trains the S shape 2.8x faster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tch::{nn, Device};

use crate::runtime::dist::{self, GradReducer, World};
use crate::runtime::{autocast_for, cpu_has_amx_bf16, cuda_device_count, with_autocast, AutocastDtype, CPU_AUTOCAST_VAR};

use super::checkpoint::{self, checkpoints_dir, Checkpoint, Snapshot, TrainState};
use super::batch::Batch;
use crate::config::RunConfig;
use super::eval::{evaluate, Evaluation, GeneMeans, HealthLabels};
use super::loader::{Batches, Loader, LoaderState, Split};
use super::metrics::{read_metrics, MetricsLog, StepRecord};
use super::plot::{write_health_curve, write_loss_curve};
use super::optim::AdamW;
use super::schedule::OneCycle;
use super::vocab::{VocabMap, Vocabulary};
use crate::atomic::write_atomic;
use crate::corpus::Corpus;
use crate::embed::fit_axes_on_corpus;
use crate::model::{BatchTensors, DecoderBiasInit, ReadoutAxes, TxFm};
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
    /// Called after every step of a single-process run with its record and the run's total steps; returning
    /// `false` stops the run there, checkpointed, as `stop_at` would. For progress displays other
    /// than the terminal bar (the Python package's notebook bar) and for interrupting a run.
    pub on_step: Option<StepHook>,
}

/// See [`TrainOptions::on_step`].
#[derive(Clone)]
pub struct StepHook(pub Arc<dyn Fn(&StepRecord, u64) -> bool + Send + Sync>);

impl std::fmt::Debug for StepHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepHook")
    }
}

impl TrainOptions {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        TrainOptions { out: out.into(), progress: false, stop_at: None, on_step: None }
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
    /// The last validation result of this call (`None` on ranks other than 0, which do not
    /// evaluate).
    pub eval: Option<Evaluation>,
    /// A fine-tuning run's validation result before its first step: the pretrained weights, new
    /// genes freshly initialised. `None` for other calls.
    pub initial_eval: Option<Evaluation>,
    /// Training throughput of this call, over all ranks.
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
    fail_together(|world| {
        config.validate("run config")?;
        // Any checkpoint counts, intact or not: a new run must not write over an old one's.
        if let Some(c) = checkpoint::any_checkpoint(&opts.out)? {
            return Err(Error::Invalid(format!(
                "{} already holds a run (checkpoint {}); resume it or choose another output folder",
                opts.out.display(),
                c.display()
            )));
        }
        std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
        if world.is_root() {
            write_atomic(&opts.out.join("config.toml"), &config.to_toml())?;
        }
        run(world, corpus, config.clone(), opts, from)
    })
}

/// Continues the run in `opts.out` from its latest checkpoint, with the checkpoint's config
/// (optionally on another `device`).
pub fn resume(corpus: Arc<Corpus>, opts: &TrainOptions, device: Option<DeviceSpec>) -> Result<TrainOutcome> {
    fail_together(|world| {
        let ckpt = agree_on_latest(world, &opts.out)?
            .ok_or_else(|| Error::Invalid(format!("{}: no checkpoint to resume from", checkpoint::checkpoints_dir(&opts.out).display())))?;
        let mut config = ckpt.config.clone();
        if let Some(d) = device {
            config.device = match d {
                DeviceSpec::Cpu => "cpu".into(),
                DeviceSpec::Auto => "auto".into(),
                DeviceSpec::Cuda(i) => format!("cuda:{i}"),
            };
        }
        run(world, corpus, config, opts, Start::Resume(ckpt))
    })
}

/// Runs this rank's part of a call. A rank that fails in a run of several ends the whole job
/// (`MPI_Abort`, after printing its error): the others would otherwise wait for it in their next
/// collective forever.
fn fail_together<T>(f: impl FnOnce(&'static World) -> Result<T>) -> Result<T> {
    let world = dist::world()?;
    let outcome = f(world);
    if let Err(e) = &outcome
        && world.is_distributed()
    {
        eprintln!("error: rank {} of {}: {e}", world.rank, world.size);
        world.abort(1);
    }
    outcome
}

/// The newest intact checkpoint of `run` ([`Checkpoint::latest_intact`]) as rank 0 sees it, so
/// that every rank resumes from the same one even if a rank's view of a shared file system lags.
/// Rank 0 says which checkpoints it skipped and why.
fn agree_on_latest(world: &World, run: &std::path::Path) -> Result<Option<Checkpoint>> {
    let intact = || -> Result<Option<Checkpoint>> {
        let found = Checkpoint::latest_intact(run)?;
        if let Some((c, skipped)) = &found {
            for s in skipped {
                eprintln!("warning: resume skips {s}");
            }
            if !skipped.is_empty() {
                eprintln!("resuming from the newest intact checkpoint, {}", c.dir.display());
            }
        }
        Ok(found.map(|(c, _)| c))
    };
    if !world.is_distributed() {
        return intact();
    }
    let latest = if world.is_root() { intact()? } else { None };
    // The folder's name, not its path: the run folder may be mounted elsewhere on other machines.
    let mut name = latest.as_ref().map_or(Vec::new(), |c| c.dir.file_name().expect("a checkpoint folder has a name").as_encoded_bytes().to_vec());
    world.broadcast_bytes(&mut name, 0)?;
    if world.is_root() || name.is_empty() {
        return Ok(latest);
    }
    let name = String::from_utf8(name).map_err(|_| Error::Invalid("rank 0's checkpoint name is not UTF-8".into()))?;
    Checkpoint::open(&checkpoints_dir(run).join(name)).map(Some)
}

/// The seed of libtorch's generator for step `step` on rank `rank`: distinct per step and rank,
/// fixed by (seed, step, rank); rank 0's is a single-process run's.
fn rank_step_seed(seed: u64, step: u64, rank: usize) -> i64 {
    let s = step_seed(seed, step);
    if rank == 0 { s } else { step_seed(s as u64, rank as u64) }
}

/// The seed of libtorch's generator for step `step`: distinct per step, fixed by (seed, step).
fn step_seed(seed: u64, step: u64) -> i64 {
    // SplitMix64's finaliser spreads consecutive steps over the whole seed space.
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// This rank's device: `cuda` and `auto` mean the GPU of the rank's local rank when several ranks
/// train (one process per GPU), the config's device otherwise.
fn rank_device(config: &RunConfig, world: &World) -> Result<Device> {
    if world.is_distributed() && matches!(config.device.as_str(), "cuda" | "auto") && cuda_device_count() > 0 {
        return DeviceSpec::Cuda(world.local_rank).resolve();
    }
    config.device_spec()?.resolve()
}

/// The trainable parameters in name order, the order every rank reduces their gradients in.
fn trainable(vs: &nn::VarStore) -> Vec<(String, tch::Tensor)> {
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

fn run(world: &'static World, corpus: Arc<Corpus>, config: RunConfig, opts: &TrainOptions, from: Start) -> Result<TrainOutcome> {
    let device = rank_device(&config, world)?;
    world.use_device(device)?;
    let (vocab, map) = match &from {
        Start::Fresh => (Vocabulary::of_corpus(&corpus), VocabMap::identity(corpus.n_vars())),
        Start::Resume(ckpt) => (ckpt.vocabulary(), ckpt.vocab_map(&corpus)?),
        Start::Finetune { vocab, .. } => (vocab.clone(), VocabMap::new(vocab, &corpus, "the fine-tuning vocabulary")?),
    };
    let to_model = |b: Result<Batch>| b.map(|b| map.apply(b));
    let train_loader = Loader::sharded(corpus.clone(), config.loader.clone(), Split::Train, world.rank, world.size)?;
    // Only rank 0 evaluates.
    let val_loader = world.is_root().then(|| Loader::new(corpus.clone(), config.loader.clone(), Split::Validation)).transpose()?;
    let batches_per_epoch = train_loader.batches_per_epoch();
    if batches_per_epoch == 0 {
        return Err(Error::Invalid(format!("corpus {}: no training samples", corpus.dir.display())));
    }
    let total = config.total_steps(batches_per_epoch);
    let schedule = OneCycle::new(config.optimizer.lr, total, config.optimizer.warmup_fraction);
    let weight_decay = config.optimizer.weight_decay_for(total);
    let autocast = autocast_for(device, config.requested_autocast())?;
    if device == Device::Cpu && world.is_root() {
        match autocast {
            Some(dtype) => eprintln!("note: training runs under {} autocast on this CPU ({CPU_AUTOCAST_VAR}=on)", dtype.name()),
            None if config.requested_autocast() == Some(AutocastDtype::Bf16) && cpu_has_amx_bf16() => eprintln!(
                "note: this CPU has AMX: {CPU_AUTOCAST_VAR}=on would train this config in bfloat16, about 2.8x faster at the S shape, \
                 at some cost to the CLS embedding (BENCHMARKS.md)"
            ),
            None => {}
        }
    }
    // Held for the run: the thread count is back to what it was when the run returns.
    let _threads = (device == Device::Cpu).then(|| leave_cores_to_the_loader(config.loader.n_workers, world.local_size)).flatten();

    tch::manual_seed(config.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let mut model = TxFm::new(&vs.root(), &config.model, vocab.len())?;
    let mut optimizer = AdamW::new(&vs, config.optimizer.betas, config.optimizer.eps);
    let mut state = TrainState {
        step: 0,
        total_steps: total,
        loader: Default::default(),
        seed: config.seed,
        next_lr: schedule.lr(0),
        weight_decay,
        world_size: world.size as u64,
        corpus: Some(checkpoint::CorpusMark::of(&corpus)),
    };
    let mut last_checkpoint = None;
    let finetuning = matches!(from, Start::Finetune { .. });
    match from {
        Start::Fresh => {}
        Start::Finetune { from, .. } => super::finetune::load_pretrained(&mut vs, &from)?,
        Start::Resume(ckpt) => {
            // First: a run resumed on another number of ranks has another number of steps too.
            if ckpt.state.world_size != world.size as u64 {
                let (dir, ranks) = (ckpt.dir.display(), ckpt.state.world_size);
                return Err(Error::Invalid(format!(
                    "{dir}: the run trained on {ranks} rank(s) with global batch {}; resume it on {ranks} rank(s) \
                     (e.g. `mpirun -n {ranks} txfm train --resume ...`), not {}",
                    ranks as usize * config.loader.batch_size,
                    world.size
                )));
            }
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
            // The same genes in another corpus pass the vocabulary check; the run would go on
            // with other data in another order, which may be meant but should not go unsaid.
            let now = checkpoint::CorpusMark::of(&corpus);
            if let Some(was) = &ckpt.state.corpus
                && *was != now
                && world.is_root()
            {
                eprintln!("warning: resuming {} on another corpus than it trained on ({was}; now {now})", ckpt.dir.display());
            }
            state = ckpt.state.clone();
            last_checkpoint = Some(ckpt.model.dir);
        }
    }
    // The validation baseline's per-gene constants, on rank 0 (which evaluates and whose
    // parameters every rank starts from), from the whole training split.
    let means = match world.is_distributed() {
        _ if !world.is_root() => None,
        false => Some(GeneMeans::fit(train_loader.epoch_iter(LoaderState::default()).map(to_model))?),
        true => {
            let whole = Loader::new(corpus.clone(), config.loader.clone(), Split::Train)?;
            Some(GeneMeans::fit(whole.epoch_iter(LoaderState::default()).map(to_model))?)
        }
    };
    let fresh = state.step == 0 && last_checkpoint.is_none() && !finetuning;
    if let (true, DecoderBiasInit::Baseline, Some(means)) = (fresh, config.model.decoder_bias_init, &means) {
        model.init_decoder_bias(&means.constants(config.model.loss))?;
    }
    if config.model.loss_gene_weight_power != 0.0 {
        // From the training data at every start, resumed or not (the same data give the same
        // weights); rank 0 holds the constants and sends them to the others.
        let constants = means.as_ref().map(|m| m.constants(config.model.loss)).unwrap_or_default();
        let mut bytes: Vec<u8> = constants.iter().flat_map(|c| c.to_le_bytes()).collect();
        world.broadcast_bytes(&mut bytes, 0)?;
        let constants: Vec<f64> = bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        model.set_loss_gene_weights(&constants, device)?;
    }
    let params = trainable(&vs);
    // Identical seeding already gives every rank the same weights on CPU; this makes it so
    // whatever the device's initialisation does.
    world.broadcast_tensors(&params.iter().map(|(_, t)| t.shallow_clone()).collect::<Vec<_>>(), 0)?;
    let first_step = state.step;
    // The health's kNN labels: the validation samples' values of the label column, read once.
    let labels = match (&val_loader, config.health_label_column(&corpus.summary.obs_columns)?) {
        (Some(_), Some(column)) => {
            let (seed, fraction) = (config.loader.seed, config.loader.validation_fraction);
            corpus
                .obs_labels(&column, |s| Split::of(s, seed, fraction) == Split::Validation)?
                .map(|by_sample| HealthLabels { column, by_sample })
        }
        _ => None,
    };
    let validate = || -> Result<Option<Evaluation>> {
        match (&val_loader, &means) {
            (Some(val), Some(means)) => {
                evaluate(&model, val.eval_iter().map(to_model), means, device, config.eval_batches, autocast, labels.as_ref()).map(Some)
            }
            _ => Ok(None),
        }
    };
    let initial_eval = if finetuning { validate()? } else { None };
    let mut metrics = world.is_root().then(|| MetricsLog::open(&opts.out.join("metrics.jsonl"), first_step)).transpose()?;
    let bar = progress_bar(opts.progress && world.is_root(), total, first_step);

    let stop = opts.stop_at.unwrap_or(total).min(total);
    let mut train_losses = Vec::new();
    let (mut samples, mut train_secs) = (0usize, 0.0f64);
    let mut last_eval = None;
    let mut health_line = String::new();
    // Data-parallel gradient averaging, overlapped with the backward pass.
    let reducer = world
        .is_distributed()
        .then(|| GradReducer::new(world, &params, (config.bucket_mb * (1 << 20) as f64) as usize))
        .transpose()?;
    let mut batches = train_loader.epoch_iter(state.loader);
    // The step's batch is already on its way to the device: each step stages the next one before
    // it reads its own loss (its one host synchronisation), so on a GPU the copy overlaps the
    // step's kernels (double buffering; the host side is pinned).
    let stage = |batches: &mut Batches, at: LoaderState| {
        next_batch(&train_loader, batches, at).map(|b| Staged::new(map.apply(b), device, world, config.micro_batch_size))
    };
    let mut staged = (state.step < stop).then(|| stage(&mut batches, state.loader)).transpose()?;
    while let Some(batch) = staged.take() {
        let started = Instant::now();
        let lr = schedule.lr(state.step);
        tch::manual_seed(rank_step_seed(config.seed, state.step, world.rank));
        // Loss terms and samples of the global batch (host numbers: no device synchronisation).
        let mut global = [batch.terms, batch.n as f64];
        if reducer.is_some() {
            world.all_reduce_sum_f64(&mut global)?;
        }
        // The step's loss is the global batch's masked mean: each micro-batch's masked mean
        // weighed by its share of the loss terms (over the ranks in data-parallel runs, where the
        // reducer then averages the ranks' gradients, hence the world size). The gradients of the
        // slices accumulate; the reducer reads the sum during the last slice's backward pass.
        optimizer.zero_grad();
        let mut loss = tch::Tensor::zeros([], (tch::Kind::Float, device));
        let sliced = batch.parts.len() > 1;
        for (i, &(start, len, terms)) in batch.parts.iter().enumerate() {
            let slice = sliced.then(|| batch.tensors.rows(start, len));
            let part = slice.as_ref().unwrap_or(&batch.tensors);
            // The unweighted reconstruction loss is what is reported; gene weights and the
            // optional CLS term only steer.
            let (part_loss, objective) = with_autocast(device, autocast, || {
                let (loss, pred, cls) = model.forward(part, true);
                let objective = model.objective(&loss, &pred, &cls, part);
                (loss, objective)
            });
            let share = if sliced { terms / batch.terms.max(1.0) } else { 1.0 };
            let weight = if reducer.is_some() { terms * world.size as f64 / global[0].max(1.0) } else { share };
            let last = i + 1 == batch.parts.len();
            if let (true, Some(reducer)) = (last, &reducer) {
                reducer.prepare();
            }
            (&objective * weight).backward();
            if let (true, Some(reducer)) = (last, &reducer) {
                reducer.finish()?;
            }
            loss += part_loss.detach().to_kind(tch::Kind::Float) * share;
        }
        if let Some(max_norm) = config.optimizer.grad_clip {
            let _norm = optimizer.clip_grad_norm(max_norm);
        }
        optimizer.step(lr, weight_decay);
        let epoch = state.loader.epoch;
        state.step += 1;
        state.loader = state.loader.after_batch(batches_per_epoch);
        state.next_lr = schedule.lr(state.step);
        if state.step < stop {
            staged = Some(stage(&mut batches, state.loader)?);
        }
        // Read once the whole step and the next batch's copy are queued. A non-finite loss has
        // reached the weights by now, but they are never checkpointed: the run stops here and
        // keeps its last good checkpoint.
        let loss_value = if reducer.is_some() {
            let mut sum = [loss.double_value(&[]) * batch.terms];
            world.all_reduce_sum_f64(&mut sum)?;
            sum[0] / global[0].max(1.0)
        } else {
            loss.double_value(&[])
        };
        if !loss_value.is_finite() {
            bar.abandon();
            let kept = last_checkpoint.as_ref().map_or("none was written yet".to_string(), |p: &PathBuf| p.display().to_string());
            return Err(Error::Invalid(format!(
                "step {} of {total}: the training loss is {loss_value}; stopped. Last good checkpoint: {kept}",
                state.step
            )));
        }
        train_losses.push(loss_value);
        samples += global[1] as usize;
        train_secs += started.elapsed().as_secs_f64();
        let samples_per_s = samples as f64 / train_secs.max(1e-9);

        let mut record = StepRecord { step: state.step, epoch, lr, train_loss: loss_value, samples_per_s, val_loss: None, val_baseline: None, health: None };
        if (state.step.is_multiple_of(config.eval_every) || state.step == total)
            && let Some(e) = validate()?
        {
            (record.val_loss, record.val_baseline, record.health) = (Some(e.loss), Some(e.baseline), e.health.clone());
            if let Some(h) = &e.health {
                health_line = format!(" · {}", h.summary());
            }
            last_eval = Some(e);
        }
        if let Some(m) = &mut metrics {
            m.append(&record)?;
        }
        // Single-process runs only: ranks stopping on their own would leave the others waiting.
        let go_on = opts.on_step.as_ref().is_none_or(|h| world.is_distributed() || (h.0)(&record, total));
        if state.step.is_multiple_of(config.checkpoint_every) || state.step == stop || !go_on {
            let axes = if state.step == total { final_axes(world, &model, &config, &corpus, &map, device, &bar)? } else { None };
            let snapshot = Snapshot { vs: &vs, optimizer: &optimizer, state: &state, config: &config, vocab: &vocab, axes: axes.as_ref() };
            last_checkpoint = Some(save_checkpoint(world, &opts.out, &snapshot)?);
        }
        bar.set_position(state.step);
        bar.set_message(format!("loss {loss_value:.4} · {samples_per_s:.0} samples/s{health_line}"));
        if !go_on {
            break;
        }
    }
    bar.finish();
    if let Some(m) = metrics {
        drop(m);
        let metrics_path = opts.out.join("metrics.jsonl");
        let records = read_metrics(&metrics_path)?;
        write_loss_curve(&opts.out.join("loss.png"), &records, total)?;
        write_health_curve(&opts.out.join("health.png"), &records)?;
    }
    let checkpoint = match last_checkpoint {
        Some(c) => c,
        // Resumed at the final step: nothing was left to do, the checkpoint is the final one.
        None => {
            let axes = final_axes(world, &model, &config, &corpus, &map, device, &bar)?;
            let snapshot = Snapshot { vs: &vs, optimizer: &optimizer, state: &state, config: &config, vocab: &vocab, axes: axes.as_ref() };
            save_checkpoint(world, &opts.out, &snapshot)?
        }
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

/// A training batch whose tensors are on (or being copied to) the device.
struct Staged {
    tensors: BatchTensors,
    /// Samples in the batch.
    n: usize,
    /// Loss terms (masked target entries) of the whole batch, which weigh the ranks' losses in
    /// data-parallel runs and the micro-batches' within a step; counted only where needed.
    terms: f64,
    /// The micro-batches: `(first row, rows, loss terms)`; one for the whole batch unless
    /// `micro_batch_size` splits it.
    parts: Vec<(usize, usize, f64)>,
}

impl Staged {
    fn new(batch: Batch, device: Device, world: &World, micro_batch_size: Option<usize>) -> Staged {
        let size = micro_batch_size.unwrap_or(batch.n).max(1);
        let count = |rows: std::ops::Range<usize>| batch.target_mask[rows.start * batch.g..rows.end * batch.g].iter().filter(|&&m| m).count() as f64;
        // A single part needs its terms only to weigh the ranks against each other.
        let parts: Vec<(usize, usize, f64)> = if batch.n <= size {
            vec![(0, batch.n, if world.is_distributed() { count(0..batch.n) } else { 0.0 })]
        } else {
            (0..batch.n).step_by(size).map(|start| (start, size.min(batch.n - start), count(start..(start + size).min(batch.n)))).collect()
        };
        let terms = parts.iter().map(|p| p.2).sum();
        Staged { tensors: BatchTensors::from_batch(&batch, device), n: batch.n, terms, parts }
    }
}

/// The next training batch, from the next epoch (whose position `at` is) once this one is over.
fn next_batch(loader: &Loader, batches: &mut Batches, at: LoaderState) -> Result<Batch> {
    if let Some(b) = batches.next() {
        return b;
    }
    *batches = loader.epoch_iter(at);
    batches.next().unwrap_or_else(|| Err(Error::Invalid("the training split yields no batch".into())))
}

/// Rank 0 writes the checkpoint; every rank waits for it at a barrier and returns its folder.
fn save_checkpoint(world: &World, run: &std::path::Path, snapshot: &Snapshot) -> Result<PathBuf> {
    let dir = if world.is_root() { checkpoint::save(run, snapshot)? } else { checkpoint::step_dir(run, snapshot.state.step) };
    world.barrier()?;
    Ok(dir)
}

/// The read-outs' principal axes of the trained `model`, fitted by rank 0 on the training split
/// for the final checkpoint (`config.axes_cells` cells at most; none when 0). The bar says so:
/// on a CPU it takes about as long as embedding that many cells.
fn final_axes(
    world: &World,
    model: &TxFm,
    config: &RunConfig,
    corpus: &Corpus,
    map: &VocabMap,
    device: Device,
    bar: &indicatif::ProgressBar,
) -> Result<Option<ReadoutAxes>> {
    if !world.is_root() || config.axes_cells == 0 {
        return Ok(None);
    }
    let mut shown = |n: u64| bar.set_message(format!("fitting the read-out's principal axes: {n} cells embedded"));
    shown(0);
    fit_axes_on_corpus(model, config, corpus, map, device, config.axes_cells, &mut shown).map(Some)
}

/// Gives libtorch the cores the loader's workers do not use, unless the user chose a thread
/// count (`OMP_NUM_THREADS`). libtorch's default of one thread per core oversubscribes the CPU
/// once the loader runs beside it, and its spinning workers then slow down many-fold (a tiny
/// step went from 50 ms to 700 ms on 2 cores). The setting is process-wide. The `local_ranks`
/// processes of a data-parallel run on this machine share its cores, unless the launcher bound
/// each to its own (then the affinity mask already counts only those).
fn leave_cores_to_the_loader(n_workers: usize, local_ranks: usize) -> Option<crate::runtime::TorchThreads> {
    if std::env::var_os("OMP_NUM_THREADS").is_some() {
        return None;
    }
    let mut cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: sysconf only reads a system setting.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if local_ranks > 1 && cores as i64 == online {
        cores /= local_ranks;
    }
    Some(crate::runtime::TorchThreads::set(cores.saturating_sub(n_workers).max(1)))
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

