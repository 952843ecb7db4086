//! `txfm bench …`: the evaluation benchmarks (`perturb`, `genes`, each in its own file) and the speed
//! benchmarks `train|embed`, which time training steps or forward-only embeddings of one model
//! config on synthetic batches, the twin of `bench/torch_reference.py` (same flags, defaults and
//! batches; see `bench/README.md`).

use anyhow::Context;
use txfm::runtime::{AutocastDtype, DeviceSpec};
use txfm::train::bench::{self, BenchConfig, BenchResult};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Time training steps: forward (drop path on), loss, backward, gradient clipping, AdamW.
    Train(Args),
    /// Time forward-only CLS embeddings (eval mode, no grad).
    Embed(Args),
    /// The perturbation benchmark (Bendidi et al. 2024) over embeddings in an h5ad's obsm.
    Perturb(super::bench_perturb::Args),
    /// Gene-relationship recall from a checkpoint's gene embeddings and decoder weights.
    Genes(super::bench_genes::Args),
}

/// The flags of `bench/torch_reference.py`, with its defaults.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    #[arg(long, default_value_t = 2)]
    blocks: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 4)]
    mlp_ratio: usize,
    /// Visible genes per sample (K).
    #[arg(long, default_value_t = 256)]
    k: usize,
    /// Vocabulary size (G).
    #[arg(long, default_value_t = 2000)]
    genes: usize,
    /// Residual decoder layers; 0 = linear decoder.
    #[arg(long, default_value_t = 4)]
    decoder_layers: usize,
    /// Decoder width (default: d_model).
    #[arg(long)]
    decoder_hidden: Option<usize>,
    #[arg(long, default_value_t = 0.1)]
    drop_path: f64,
    #[arg(long, default_value_t = 0.1)]
    layer_scale_init: f64,
    #[arg(long, default_value_t = 1e5)]
    library_size: f64,
    /// rectified_tanh, relu, clamped_relu or softmax.
    #[arg(long, default_value = "rectified_tanh")]
    activation: String,
    /// poisson, mse, smooth_l1 or negative_binomial.
    #[arg(long, default_value = "poisson")]
    loss: String,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps before timing.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Step i (warm-up included) uses batch i mod this.
    #[arg(long, default_value_t = 4)]
    distinct_batches: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Default 1 / (lr · (warmup + steps)), the trainer's 1 / (lr · total_steps).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Global gradient-norm clip (0: none).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// libtorch intra-op threads (default: libtorch's own, OMP_NUM_THREADS or one per core).
    #[arg(long)]
    threads: Option<i32>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Autocast type: bf16 (the trainer's default) or f16. On CPU it applies only with
    /// TXFM_CPU_AUTOCAST=on, as in txfm train and embed.
    #[arg(long, default_value = "bf16")]
    autocast_dtype: String,
    /// Float32 (no autocast) on every device.
    #[arg(long)]
    no_autocast: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The device's peak dense TFLOP/s at the run's precision, to report model FLOPs utilisation
    /// (MFU); H100 and H200 SXM in bf16: 989.
    #[arg(long)]
    peak_tflops: Option<f64>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(c: Command) -> anyhow::Result<()> {
    let (args, embed) = match c {
        Command::Train(a) => (a, false),
        Command::Embed(a) => (a, true),
        Command::Perturb(a) => return super::bench_perturb::run(a),
        Command::Genes(a) => return super::bench_genes::run(a),
    };
    if args.d_model < 2 || args.heads == 0 || args.d_model % args.heads != 0 {
        anyhow::bail!("heads must divide d_model (≥ 2)");
    }
    let model = bench::model_config(
        args.d_model,
        args.blocks,
        args.heads,
        args.mlp_ratio,
        args.k,
        args.decoder_layers,
        args.decoder_hidden,
        args.drop_path,
        args.layer_scale_init,
        args.library_size,
        bench::parse_name(&args.activation).context("--activation")?,
        bench::parse_name(&args.loss).context("--loss")?,
    );
    let config = BenchConfig {
        model,
        genes: args.genes,
        batch: args.batch,
        steps: args.steps,
        warmup: args.warmup,
        distinct_batches: args.distinct_batches,
        lr: args.lr,
        weight_decay: args.weight_decay,
        grad_clip: (args.grad_clip > 0.0).then_some(args.grad_clip),
        embed,
        threads: args.threads,
        device: args.device.parse::<DeviceSpec>()?,
        autocast: if args.no_autocast { None } else { Some(parse_autocast(&args.autocast_dtype)?) },
        seed: args.seed,
        peak_tflops: args.peak_tflops,
    };
    let r = bench::run(&config)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print_text(&r);
    }
    Ok(())
}

fn parse_autocast(s: &str) -> anyhow::Result<AutocastDtype> {
    match s {
        "bf16" | "bfloat16" => Ok(AutocastDtype::Bf16),
        "f16" | "float16" => Ok(AutocastDtype::F16),
        _ => anyhow::bail!("--autocast-dtype {s}: expected bf16 or f16"),
    }
}

fn print_text(r: &BenchResult) {
    let mode = if r.mode == "embed" { "embedding (forward, eval)" } else { "training (fwd + bwd + AdamW)" };
    println!(
        "txfm {mode}: {} params (= num_parameters), batch {}, {} steps in {:.2} s, median step {} ms, {} thread(s), {}",
        r.params,
        r.batch,
        r.steps,
        r.elapsed_s,
        r.median_step_ms.map_or("-".to_string(), |m| m.to_string()),
        r.threads,
        r.autocast.map_or("float32".to_string(), |d| format!("{} autocast", d.name()))
    );
    let c = &r.check;
    println!(
        "batch 0 check: target_sum {:.6}, values_sum {:.6}, genes_sum {}, genes_weighted {}",
        c.target_sum, c.values_sum, c.genes_sum, c.genes_weighted
    );
    println!("samples/s: {:.2}", r.samples_per_s);
    let mfu = r.mfu.map_or(String::new(), |m| format!(", MFU {:.1}%", 100.0 * m));
    let memory = r.peak_memory_mib.map_or(String::new(), |m| format!(", peak memory {m:.0} MiB allocated"));
    println!("model FLOPs: {:.1} GFLOP/sample, {:.2} TFLOP/s{mfu}{memory}", r.flops_per_sample / 1e9, r.achieved_tflops);
}
