//! `txfm train` end to end: a run killed with SIGKILL mid-way and resumed with `--resume` logs the
//! same per-step losses and ends with the same weights as an uninterrupted run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tch::Tensor;
use txfm::model::bundle::MODEL_FILE;
use txfm::simulate::SimConfig;
use txfm::testing::sim_corpus;
use txfm::train::checkpoint::step_dir;
use txfm::train::metrics::read_metrics;
use txfm::train::RunConfig;
use common::{test_run_config, text, txfm};

/// The weights of `run`'s checkpoint at `step`, by name.
fn weights(run: &Path, step: u64) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(step_dir(run, step).join(MODEL_FILE)).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn a_killed_run_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    sim_corpus(dir.path(), "sim", "corpus", &SimConfig { n_cells: 800, ..SimConfig::tiny() }, 3);
    let mut cfg = test_run_config();
    (cfg.steps, cfg.checkpoint_every, cfg.eval_every) = (Some(300), 10, 100);
    std::fs::write(dir.path().join("run.toml"), cfg.to_toml()).unwrap();

    let args = |out: &'static str| ["train", "--corpus", "corpus", "--config", "run.toml", "--out", out];
    let straight = txfm(&args("a"), dir.path());
    assert!(straight.status.success(), "{}", text(&straight));
    assert!(text(&straight).contains("validation loss"), "{}", text(&straight));

    let mut child = Command::new(env!("CARGO_BIN_EXE_txfm"))
        .args(args("b"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let latest = dir.path().join("b/checkpoints/latest");
    let start = Instant::now();
    while !latest.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint after a minute");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = std::fs::read_to_string(&latest).unwrap();
    assert_ne!(at_kill.trim(), "step-0000300", "the run finished before it was killed");

    let resumed = txfm(&["train", "--corpus", "corpus", "--out", "b", "--resume"], dir.path());
    assert!(resumed.status.success(), "{}", text(&resumed));
    let losses = |run: &str| -> Vec<f64> { read_metrics(&dir.path().join(run).join("metrics.jsonl")).unwrap().iter().map(|r| r.train_loss).collect() };
    let (a, b) = (losses("a"), losses("b"));
    assert_eq!(a.len(), 300);
    assert_eq!(b.len(), 300);
    // serde_json's default float parsing may be an ulp off, hence the tolerance.
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-12 * x.abs()), "per-step losses differ");
    for ((name, x), (_, y)) in weights(&dir.path().join("a"), 300).iter().zip(&weights(&dir.path().join("b"), 300)) {
        assert!(x.equal(y), "{name} differs");
    }
    // A fresh run into a folder that holds one is refused.
    let again = txfm(&args("b"), dir.path());
    assert!(!again.status.success() && text(&again).contains("resume it"), "{}", text(&again));
}

/// `--resume` with another corpus of the same genes passes the vocabulary check; it proceeds, as
/// it may be meant, but says so. The run's own corpus resumes without the warning.
#[test]
fn resuming_on_another_corpus_with_the_same_genes_warns() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConfig { n_cells: 300, ..SimConfig::tiny() };
    sim_corpus(dir.path(), "sim", "corpus", &sim, 3);
    sim_corpus(dir.path(), "other", "other_corpus", &sim, 3);
    let mut cfg = test_run_config();
    (cfg.steps, cfg.checkpoint_every, cfg.eval_every) = (Some(6), 2, 6);
    std::fs::write(dir.path().join("run.toml"), cfg.to_toml()).unwrap();
    let o = txfm(&["train", "--corpus", "corpus", "--config", "run.toml", "--out", "run", "--stop-at", "2"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = txfm(&["train", "--corpus", "corpus", "--out", "run", "--resume", "--stop-at", "4"], dir.path());
    assert!(o.status.success() && !text(&o).contains("warning: resuming"), "{}", text(&o));
    let o = txfm(&["train", "--corpus", "other_corpus", "--out", "run", "--resume"], dir.path());
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(msg.contains("warning: resuming") && msg.contains("another corpus") && msg.contains("of sim;") && msg.contains("of other)"), "{msg}");
    // Six steps do not leave the per-gene baseline, and the command says so.
    assert!(msg.contains("has not left the per-gene baseline"), "{msg}");
}

/// `--seed N` is the run of a config with `seed = N` and `loader.seed = N`: the same saved config
/// and the same weights, while the config's own seed gives other weights. The Jurkat example's
/// training seeds go through it.
#[test]
fn the_seed_flag_seeds_the_model_and_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    sim_corpus(dir.path(), "sim", "corpus", &SimConfig { n_cells: 300, ..SimConfig::tiny() }, 3);
    let mut cfg = test_run_config();
    (cfg.steps, cfg.checkpoint_every, cfg.eval_every, cfg.axes_cells) = (Some(6), 6, 6, 0);
    std::fs::write(dir.path().join("run.toml"), cfg.to_toml()).unwrap();
    let mut seeded = cfg.clone();
    seeded.reseed(3);
    std::fs::write(dir.path().join("seeded.toml"), seeded.to_toml()).unwrap();
    for (config, seed, out) in [("run.toml", Some("3"), "flag"), ("seeded.toml", None, "file"), ("run.toml", None, "own")] {
        let mut args = vec!["train", "--corpus", "corpus", "--config", config, "--out", out];
        args.extend(seed.iter().flat_map(|s| ["--seed", *s]));
        let o = txfm(&args, dir.path());
        assert!(o.status.success(), "{}", text(&o));
    }
    let config = |run: &str| RunConfig::load(&dir.path().join(run).join("config.toml")).unwrap();
    assert_eq!((config("flag").seed, config("flag").loader.seed), (3, 3));
    assert_eq!(config("flag"), config("file"));
    let at_end = |run: &str| weights(&dir.path().join(run), 6);
    let (flag, file, own) = (at_end("flag"), at_end("file"), at_end("own"));
    assert!(flag.iter().zip(&file).all(|((_, x), (_, y))| x.equal(y)), "--seed 3 and a config seeded 3 trained different weights");
    assert!(flag.iter().zip(&own).any(|((_, x), (_, y))| !x.equal(y)), "--seed 3 trained the weights of seed 0");
}

/// A one-step run is the untrained model, the random-weights control of docs/experiments.md § 29:
/// the one-cycle schedule warms up for at least one step from 0, so the first update has learning
/// rate 0 (and weight decay scaled by it) whatever the peak and warm-up, and the run saves its
/// initialisation; a second step moves it.
#[test]
fn a_one_step_run_saves_the_initial_weights() {
    let dir = tempfile::tempdir().unwrap();
    sim_corpus(dir.path(), "sim", "corpus", &SimConfig { n_cells: 300, ..SimConfig::tiny() }, 3);
    let mut cfg = test_run_config();
    (cfg.checkpoint_every, cfg.eval_every, cfg.axes_cells) = (1, 1, 0);
    for (out, steps, lr, warmup) in [("slow", 1, 3e-3, 0.1), ("fast", 1, 1.0, 0.0), ("two", 2, 3e-3, 0.0)] {
        let mut run = cfg.clone();
        (run.steps, run.optimizer.lr, run.optimizer.warmup_fraction) = (Some(steps), lr, warmup);
        std::fs::write(dir.path().join(format!("{out}.toml")), run.to_toml()).unwrap();
        let o = txfm(&["train", "--corpus", "corpus", "--config", &format!("{out}.toml"), "--out", out], dir.path());
        assert!(o.status.success(), "{}", text(&o));
    }
    let (slow, fast) = (weights(&dir.path().join("slow"), 1), weights(&dir.path().join("fast"), 1));
    assert_eq!(slow.len(), fast.len());
    assert!(slow.iter().zip(&fast).all(|((a, x), (b, y))| a == b && x.equal(y)), "the first step changed the weights");
    let two = weights(&dir.path().join("two"), 2);
    assert!(two.iter().zip(&fast).any(|((_, x), (_, y))| !x.equal(y)), "the second step left the weights as they were");
}
