//! `txfm train`: pretrain a model on a corpus, or resume a run, in one process or data-parallel
//! on several (`--world-size N`, or started by `mpirun -n N`).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context};
use txfm::corpus::Corpus;
use txfm::runtime::dist;
use txfm::runtime::DeviceSpec;
use txfm::train::{resume, train, RunConfig, TrainOptions};

/// Train a TxFM model on a corpus; checkpoints, metrics.jsonl and config.toml go to --out.
#[derive(clap::Args)]
pub struct Args {
    /// A corpus folder (from `txfm corpus build`).
    #[arg(long)]
    corpus: PathBuf,
    /// Run preset: tiny (CPU tests), small (the CPU recipe the quickstart trains), medium (the GPU
    /// recipe: the small choices at the S shape), s, b or l (the paper's).
    #[arg(long, default_value = "tiny", conflicts_with = "config")]
    preset: String,
    /// A run config (TOML or JSON) instead of a preset, e.g. a run's config.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its latest checkpoint, with that checkpoint's config.
    #[arg(long, conflicts_with_all = ["config", "steps", "batch_size", "micro_batch_size", "seed"])]
    resume: bool,
    /// cpu, cuda, cuda:N or auto (overrides the config's). With several ranks, cuda and auto mean
    /// the GPU of each process's local rank.
    #[arg(long)]
    device: Option<String>,
    /// Total steps (overrides the config's steps or epochs).
    #[arg(long)]
    steps: Option<u64>,
    /// Seed of the run: the model's initialisation and the loader's split, order and visible
    /// genes (overrides the config's seed and loader.seed). Repeat a recipe over seeds with it.
    #[arg(long)]
    seed: Option<u64>,
    /// Checkpoint and exit once this many steps are done (resume later with --resume).
    #[arg(long)]
    stop_at: Option<u64>,
    /// Samples per step and process (overrides loader.batch_size).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: Option<u64>,
    /// Run each step's batch in slices of at most this many samples and accumulate their
    /// gradients (overrides micro_batch_size): the same update in less device memory.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    micro_batch_size: Option<u64>,
    /// Train data-parallel on N processes of this machine (one per GPU): re-runs this command under
    /// `mpirun -n N` ($TXFM_MPIRUN to use another). The global batch is N × loader.batch_size.
    /// For several machines, start the processes with mpirun yourself (see README) and leave
    /// this out, or give the launcher's N.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    world_size: Option<u64>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let launched = dist::launcher_world_size();
    if let (Some(n), None) = (a.world_size, launched)
        && n > 1
    {
        return relaunch(n);
    }
    let world = dist::world()?;
    if let Some(n) = a.world_size
        && n as usize != world.size
    {
        bail!("--world-size {n}, but the launcher started {} process(es)", world.size);
    }
    train_rank(a, world.is_root())?;
    dist::finalize()?;
    Ok(())
}

fn train_rank(a: Args, root: bool) -> anyhow::Result<()> {
    let corpus = Arc::new(Corpus::open(&a.corpus).with_context(|| format!("opening corpus {}", a.corpus.display()))?);
    let opts = TrainOptions { out: a.out.clone(), progress: root && std::io::stderr().is_terminal(), stop_at: a.stop_at, on_step: None };
    let device = a.device.as_deref().map(str::parse::<DeviceSpec>).transpose()?;
    let outcome = if a.resume {
        resume(corpus, &opts, device)?
    } else {
        let mut config = match &a.config {
            Some(path) => RunConfig::load(path)?,
            None => RunConfig::preset(&a.preset)?,
        };
        if let Some(d) = &a.device {
            config.device = d.clone();
        }
        if let Some(s) = a.steps {
            (config.steps, config.epochs) = (Some(s), None);
        }
        if let Some(s) = a.seed {
            config.reseed(s);
        }
        if let Some(b) = a.batch_size {
            config.loader.batch_size = b as usize;
        }
        if let Some(m) = a.micro_batch_size {
            config.micro_batch_size = Some(m as usize);
        }
        train(corpus, &config, &opts).with_context(|| format!("training into {}", a.out.display()))?
    };
    if !root {
        return Ok(());
    }
    eprintln!(
        "steps {}..{} of {} at {:.0} samples/s; checkpoint {}",
        outcome.first_step,
        outcome.step,
        outcome.total_steps,
        outcome.samples_per_s,
        outcome.checkpoint.display()
    );
    if let Some(e) = outcome.eval {
        println!("validation loss {:.4} (per-gene baseline {:.4}) on {} samples", e.loss, e.baseline, e.n_samples);
        if e.at_baseline() {
            eprintln!(
                "warning: the model has not left the per-gene baseline: its embeddings carry no information yet. \
                 Train longer, or see docs/experiments.md § 7 (every recipe starts on this plateau)"
            );
        }
    }
    Ok(())
}

/// Runs this same command as `n` processes under mpirun, without `--world-size`. Processes are
/// not bound to cores (`--bind-to none`): Open MPI binds each to a single core by default for two
/// processes, which would leave libtorch and the loader one core each.
fn relaunch(n: u64) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the txfm executable")?;
    let mpirun = std::env::var_os("TXFM_MPIRUN").unwrap_or_else(|| "mpirun".into());
    let mut cmd = Command::new(&mpirun);
    cmd.args(["-n", &n.to_string(), "--bind-to", "none", "--oversubscribe"]);
    if is_root_user() {
        // Open MPI refuses to run as root unless told; containers and CI often are root.
        cmd.arg("--allow-run-as-root");
    }
    cmd.arg(exe).args(without_world_size(std::env::args_os().skip(1)));
    let status = cmd.status().with_context(|| {
        format!("starting {} (install Open MPI: apt-get install openmpi-bin libopenmpi-dev)", mpirun.to_string_lossy())
    })?;
    if !status.success() {
        bail!("{} -n {n} ended with {status}", mpirun.to_string_lossy());
    }
    Ok(())
}

fn is_root_user() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The arguments with `--world-size N` / `--world-size=N` taken out.
fn without_world_size(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = args;
    while let Some(arg) = args.next() {
        if arg == "--world-size" {
            args.next();
        } else if !arg.to_string_lossy().starts_with("--world-size=") {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relaunched_command_drops_world_size() {
        let args = ["train", "--world-size", "2", "--out", "run", "--world-size=4", "--resume"].map(OsString::from);
        assert_eq!(without_world_size(args.into_iter()), ["train", "--out", "run", "--resume"].map(OsString::from));
    }
}
