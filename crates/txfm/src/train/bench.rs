//! The training-step benchmark (`txfm bench train|embed`), the twin of `bench/torch_reference.py`:
//! the same synthetic batches, bit for bit (a splitmix64 counter hash, no RNG), the same per-step
//! work (forward in training mode, Poisson loss, backward, gradient-norm clipping, AdamW with
//! [`OptimizerConfig::default`]'s hyper-parameters and the `decays()` split), and the same timing:
//! `warmup` untimed steps, then `steps` timed ones; samples/s = batch · steps / timed seconds.
//!
//! Batches are built and moved to the device before the clock starts, as in the script.

use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, nn};

use super::batch::Batch;
use crate::config::OptimizerConfig;
use super::optim::AdamW;
use crate::model::{flops, BatchTensors, CountActivation, DecoderConfig, LossKind, ModelConfig, TxFm, num_parameters};
use crate::runtime::device_memory::{peak_memory, reset_peak_memory};
use crate::runtime::{autocast_for, with_autocast, AutocastDtype, DeviceSpec};
use crate::{Error, Result};

/// What to time: the flags of `bench/torch_reference.py`, with the same defaults.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub model: ModelConfig,
    /// Vocabulary size `G`.
    pub genes: usize,
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before timing.
    pub warmup: usize,
    /// Step `i` (warm-up included) uses batch `i mod distinct_batches`.
    pub distinct_batches: usize,
    pub lr: f64,
    /// `None`: `1 / (lr · (warmup + steps))`, the trainer's `weight_decay_for(total_steps)`.
    pub weight_decay: Option<f64>,
    /// Global gradient-norm clip; `None` does not clip.
    pub grad_clip: Option<f64>,
    /// Forward-only CLS embedding (eval mode, no grad) instead of training steps.
    pub embed: bool,
    /// libtorch intra-op threads; `None` leaves libtorch's setting (`OMP_NUM_THREADS` or one per
    /// core).
    pub threads: Option<i32>,
    pub device: DeviceSpec,
    /// Reduced type of the forward pass under autocast (`None`: float32); on CPU only with
    /// `TXFM_CPU_AUTOCAST=on`, as in training and embedding ([`autocast_for`]).
    pub autocast: Option<AutocastDtype>,
    pub seed: u64,
    /// The device's peak dense TFLOP/s at the run's precision; with it the result has an MFU.
    pub peak_tflops: Option<f64>,
}

/// Deterministic fingerprint of batch 0, printed by both sides to show they see the same data.
#[derive(Debug, Clone, Serialize)]
pub struct BatchCheck {
    /// Σ target (f64 accumulation of the f32 values).
    pub target_sum: f64,
    /// Σ visible gene indices.
    pub genes_sum: i64,
    /// Σ (j + 1) · gene[s, j]: also pins the order of the visible genes.
    pub genes_weighted: i64,
    /// Σ visible values (f64 accumulation).
    pub values_sum: f64,
}

/// One benchmark run; `bench/torch_reference.py --json` prints the same fields.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    pub mode: &'static str,
    pub samples_per_s: f64,
    pub params: usize,
    pub elapsed_s: f64,
    pub median_step_ms: Option<f64>,
    pub min_step_ms: Option<f64>,
    pub max_step_ms: Option<f64>,
    pub d_model: usize,
    pub blocks: usize,
    pub heads: usize,
    pub mlp_ratio: usize,
    pub k: usize,
    pub genes: usize,
    pub decoder_layers: usize,
    pub decoder_hidden: usize,
    pub batch: usize,
    pub steps: usize,
    pub warmup: usize,
    pub distinct_batches: usize,
    pub weight_decay: Option<f64>,
    pub grad_clip: Option<f64>,
    pub threads: i32,
    pub device: String,
    /// The forward pass's autocast type where it applied (`bf16`, `f16`), `None` for float32.
    pub autocast: Option<AutocastDtype>,
    pub last_loss: Option<f64>,
    pub check: BatchCheck,
    /// Matmul FLOPs per sample of the timed work ([`crate::model::flops`]).
    pub flops_per_sample: f64,
    /// `flops_per_sample · samples/s`, in TFLOP/s.
    pub achieved_tflops: f64,
    /// Model FLOPs utilisation: `achieved_tflops / peak_tflops`, when the peak was given.
    pub mfu: Option<f64>,
    /// Peak GPU memory held by tensors over warm-up and timed steps (CUDA only), in MiB.
    pub peak_memory_mib: Option<f64>,
}

/// The splitmix64 finaliser.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `h(stream, b, s, j) = splitmix64(splitmix64(4·seed + stream) XOR ((b·n + s)·G + j))`, for the
/// `n × g` entries of batch `b`, row-major.
fn hashes(seed: u64, stream: u64, b: usize, n: usize, g: usize) -> Vec<u64> {
    let base = splitmix64(seed.wrapping_mul(4).wrapping_add(stream));
    let mut out = Vec::with_capacity(n * g);
    for s in 0..n {
        let row = ((b * n + s) as u64).wrapping_mul(g as u64);
        out.extend((0..g as u64).map(|j| splitmix64((row.wrapping_add(j)) ^ base)));
    }
    out
}

/// Synthetic batch `b` of `n` samples, `k` visible genes each, over `g` genes: exactly
/// `synthetic_batch` of `bench/torch_reference.py` (see `bench/README.md`). The 70% zeros,
/// log1p-like target, K distinct visible genes of smallest stream-1 hash, no padding, every gene
/// profiled.
pub fn synthetic_batch(seed: u64, b: usize, n: usize, k: usize, g: usize) -> Batch {
    assert!(k <= g, "K must not exceed G");
    const ZERO_FRACTION: f64 = 0.7;
    let target: Vec<f32> = hashes(seed, 0, b, n, g)
        .into_iter()
        .map(|h| {
            let u = (h >> 11) as f64 * 2f64.powi(-53);
            if u < ZERO_FRACTION {
                0.0
            } else {
                (1000.0 * ((u - ZERO_FRACTION) / (1.0 - ZERO_FRACTION)).max(0.0)).ln_1p() as f32
            }
        })
        .collect();
    let h1 = hashes(seed, 1, b, n, g);
    let mut visible_genes = Vec::with_capacity(n * k);
    let mut visible_values = Vec::with_capacity(n * k);
    let mut order: Vec<u32> = Vec::with_capacity(g);
    for s in 0..n {
        let row = &h1[s * g..(s + 1) * g];
        order.clear();
        order.extend(0..g as u32);
        // Stable argsort by hash: ties by gene index.
        let key = |&j: &u32| (row[j as usize], j);
        if k < g {
            order.select_nth_unstable_by_key(k, key);
        }
        order[..k].sort_unstable_by_key(key);
        for &j in &order[..k] {
            visible_genes.push(j as i64);
            visible_values.push(target[s * g + j as usize]);
        }
    }
    Batch {
        n,
        k,
        g,
        sample: (0..n as u64).map(|s| (b * n) as u64 + s).collect(),
        library_size: vec![1e4; n],
        visible_genes,
        visible_values,
        visible_pad: vec![false; n * k],
        target,
        target_mask: vec![true; n * g],
    }
}

/// The fingerprint of a batch (see [`BatchCheck`]).
pub fn batch_check(batch: &Batch) -> BatchCheck {
    let weighted = batch.visible_genes.iter().enumerate().map(|(i, &gene)| (i % batch.k + 1) as i64 * gene).sum();
    BatchCheck {
        target_sum: batch.target.iter().map(|&v| v as f64).sum(),
        genes_sum: batch.visible_genes.iter().sum(),
        genes_weighted: weighted,
        values_sum: batch.visible_values.iter().map(|&v| v as f64).sum(),
    }
}

/// Parses an activation or loss name as the config files spell it (`rectified_tanh`, `poisson`).
pub fn parse_name<T: serde::de::DeserializeOwned>(name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.into()))
        .map_err(|e| Error::Invalid(format!("unknown name '{name}': {e}")))
}

/// The script's model config: paper-preset defaults, a residual decoder of `decoder_layers`
/// layers (0: linear) of width `decoder_hidden`.
#[allow(clippy::too_many_arguments)]
pub fn model_config(
    d_model: usize,
    blocks: usize,
    heads: usize,
    mlp_ratio: usize,
    k: usize,
    decoder_layers: usize,
    decoder_hidden: Option<usize>,
    drop_path: f64,
    layer_scale_init: f64,
    library_size: f64,
    activation: CountActivation,
    loss: LossKind,
) -> ModelConfig {
    let decoder = if decoder_layers == 0 {
        DecoderConfig::Linear
    } else {
        DecoderConfig::ResidualMlp { n_layers: decoder_layers, d_hidden: decoder_hidden.unwrap_or(d_model) }
    };
    ModelConfig {
        d_model,
        value_encoding: Default::default(),
        gene_embedding_std: ModelConfig::tiny().gene_embedding_std,
        decoder_bias_init: Default::default(),
        cls_variance_weight: 0.0,
        loss_gene_weight_power: 0.0,
        cls_init_std: ModelConfig::tiny().cls_init_std,
        n_blocks: blocks,
        n_heads: heads,
        mlp_ratio,
        n_visible: k,
        sampling_tau: 0.0,
        drop_path,
        layer_scale_init,
        decoder,
        activation,
        library_size,
        loss,
    }
}

fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Runs the benchmark.
pub fn run(config: &BenchConfig) -> Result<BenchResult> {
    let m = &config.model;
    if config.distinct_batches == 0 || config.batch == 0 {
        return Err(Error::Invalid("batch and distinct batches must be at least 1".into()));
    }
    if m.n_visible > config.genes {
        return Err(Error::Invalid("K must not exceed G".into()));
    }
    if let Some(t) = config.threads {
        tch::set_num_threads(t);
    }
    let device = config.device.resolve()?;
    tch::manual_seed(config.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = TxFm::new(&vs.root(), m, config.genes)?;
    let params: usize = vs.trainable_variables().iter().map(|t| t.numel()).sum();
    let expected = num_parameters(m, config.genes);
    if params != expected {
        return Err(Error::Invalid(format!("parameter count {params} != num_parameters {expected}")));
    }

    let host: Vec<Batch> = (0..config.distinct_batches)
        .map(|b| synthetic_batch(config.seed, b, config.batch, m.n_visible, config.genes))
        .collect();
    let check = batch_check(&host[0]);
    let batches: Vec<BatchTensors> = host.iter().map(|b| BatchTensors::from_batch(b, device)).collect();
    drop(host);
    reset_peak_memory(device);

    let total = config.warmup + config.steps;
    let autocast = autocast_for(device, config.autocast)?;
    let opt_config = OptimizerConfig::default();
    let weight_decay = config.weight_decay.unwrap_or_else(|| 1.0 / (config.lr * total.max(1) as f64));
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };

    let mut step_s = Vec::with_capacity(config.steps);
    let mut last_loss = None;
    let elapsed;
    if config.embed {
        let step = |i: usize| {
            let _ = tch::no_grad(|| with_autocast(device, autocast, || model.encode(&batches[i % batches.len()].visible, false)));
        };
        for i in 0..config.warmup {
            step(i);
        }
        sync();
        let start = Instant::now();
        for i in config.warmup..total {
            let t0 = Instant::now();
            step(i);
            sync();
            step_s.push(t0.elapsed().as_secs_f64());
        }
        elapsed = start.elapsed().as_secs_f64();
    } else {
        let mut optimizer = AdamW::new(&vs, opt_config.betas, opt_config.eps);
        let mut step = |i: usize| -> tch::Tensor {
            let (loss, _, _) = with_autocast(device, autocast, || model.forward(&batches[i % batches.len()], true));
            optimizer.backward_step(&loss, config.grad_clip, config.lr, weight_decay);
            loss.detach()
        };
        let mut out = None;
        for i in 0..config.warmup {
            out = Some(step(i));
        }
        sync();
        let start = Instant::now();
        for i in config.warmup..total {
            let t0 = Instant::now();
            out = Some(step(i));
            sync();
            step_s.push(t0.elapsed().as_secs_f64());
        }
        elapsed = start.elapsed().as_secs_f64();
        last_loss = out.map(|l| l.to_kind(Kind::Double).double_value(&[]));
    }

    let ms = |x: Option<f64>| x.map(|s| round(1e3 * s, 2));
    let samples_per_s = (config.batch * config.steps) as f64 / elapsed.max(1e-12);
    let flops_per_sample = if config.embed { flops::embed_flops(m) } else { flops::train_flops(m, config.genes) };
    let achieved_tflops = flops_per_sample * samples_per_s / 1e12;
    Ok(BenchResult {
        implementation: "rust",
        mode: if config.embed { "embed" } else { "train" },
        samples_per_s: round(samples_per_s, 2),
        params,
        elapsed_s: round(elapsed, 3),
        median_step_ms: ms(median(&step_s)),
        min_step_ms: ms(step_s.iter().copied().reduce(f64::min)),
        max_step_ms: ms(step_s.iter().copied().reduce(f64::max)),
        d_model: m.d_model,
        blocks: m.n_blocks,
        heads: m.n_heads,
        mlp_ratio: m.mlp_ratio,
        k: m.n_visible,
        genes: config.genes,
        decoder_layers: match m.decoder {
            DecoderConfig::Linear => 0,
            DecoderConfig::ResidualMlp { n_layers, .. } => n_layers,
        },
        decoder_hidden: m.decoder.width(m.d_model),
        batch: config.batch,
        steps: config.steps,
        warmup: config.warmup,
        distinct_batches: config.distinct_batches,
        weight_decay: (!config.embed).then_some(weight_decay),
        grad_clip: if config.embed { None } else { config.grad_clip },
        threads: tch::get_num_threads(),
        device: format!("{device:?}"),
        autocast,
        last_loss,
        check,
        flops_per_sample,
        achieved_tflops: round(achieved_tflops, 3),
        mfu: config.peak_tflops.map(|p| round(achieved_tflops / p, 4)),
        peak_memory_mib: peak_memory(device).map(|p| round(p.allocated_bytes as f64 / (1u64 << 20) as f64, 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_batches_match_the_documented_check_values() {
        // bench/README.md: seed 0, batch 1, n 2, G 10, K 4.
        let base = splitmix64(0);
        assert_eq!(splitmix64(base ^ (2 * 10)), 0x7e5560b376b0fc59);
        let b = synthetic_batch(0, 1, 2, 4, 10);
        assert_eq!(b.visible_genes, vec![8, 9, 1, 6, 1, 6, 0, 4]);
        for (i, &gene) in b.visible_genes.iter().enumerate() {
            assert_eq!(b.visible_values[i], b.target[(i / 4) * 10 + gene as usize]);
        }
        let zeros = b.target.iter().filter(|&&v| v == 0.0).count();
        assert!(zeros > 0 && b.target.iter().all(|&v| (0.0..1001f32.ln()).contains(&v)));
    }
}
