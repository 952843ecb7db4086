//! Data-parallel `txfm train` over Open MPI on loopback: two ranks with batch b take the steps one
//! process with batch 2b takes — over a whole epoch, whose last global batch has an odd number of
//! samples, so the ranks' shares (and loss weights) differ — and a two-rank run stopped and
//! resumed ends where an uninterrupted one does. The gradients travel in many small buckets, so
//! the all-reduces overlapped with the backward pass and their rebuilt order are what is tested.
//!
//! Needs `mpirun` (Debian's openmpi-bin, installed by scripts/setup.sh). Without it the test says
//! so loudly and passes, unless `TXFM_REQUIRE_MPI` or `CI` is set (then it fails).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use tch::{Kind, Tensor};
use txfm::corpus::Corpus;
use txfm::simulate::SimConfig;
use txfm::testing::sim_corpus;
use txfm::train::loader::{Loader, Split};
use txfm::train::metrics::read_metrics;
use common::{test_run_config, text};

fn mpirun_available() -> bool {
    let found = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        let message = "mpirun not found: install openmpi-bin and libopenmpi-dev (scripts/setup.sh does)";
        assert!(std::env::var_os("TXFM_REQUIRE_MPI").is_none() && std::env::var_os("CI").is_none(), "{message}");
        eprintln!("\n*** SKIPPED the data-parallel test: {message} ***\n");
    }
    found
}

/// `mpirun -n 2 txfm ARGS` in `cwd`. Loopback only: shared memory without Linux's cross-memory
/// attach (containers forbid its ptrace), idle ranks yield the core (there are only two). A
/// deadlock fails the test after two minutes instead of hanging it.
fn two_ranks(args: &[&str], cwd: &Path) -> Output {
    Command::new("mpirun")
        .args(["-n", "2", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "--timeout", "120"])
        .arg(env!("CARGO_BIN_EXE_txfm"))
        .args(args)
        .current_dir(cwd)
        .envs(mpi_env())
        .output()
        .expect("mpirun runs")
}

fn mpi_env() -> [(&'static str, &'static str); 3] {
    [("OMPI_MCA_btl_vader_single_copy_mechanism", "none"), ("OMPI_MCA_mpi_yield_when_idle", "1"), ("OMP_NUM_THREADS", "1")]
}

fn one_rank(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_txfm")).args(args).current_dir(cwd).envs(mpi_env()).output().expect("txfm runs")
}

fn weights(run: &Path, step: u64) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(run.join(format!("checkpoints/step-{step:07}/model.safetensors"))).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn losses(run: &Path) -> Vec<f64> {
    read_metrics(&run.join("metrics.jsonl")).unwrap().iter().map(|r| r.train_loss).collect()
}

#[test]
fn two_ranks_equal_one_with_twice_the_batch_and_resume_exactly() {
    if !mpirun_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    sim_corpus(dir.path(), "sim", "corpus", &SimConfig { n_cells: 600, ..SimConfig::tiny() }, 3);

    let mut cfg = test_run_config();
    (cfg.checkpoint_every, cfg.eval_every, cfg.eval_batches) = (1, 100, Some(1));
    // Stochastic depth draws per rank (see train::trainer), so the equivalence needs it off.
    cfg.model.drop_path = 0.0;
    // Buckets of 10 KiB: the gradients go in dozens of all-reduces started during the backward
    // pass, in the order rank 0's hooks fired, instead of one after it.
    cfg.bucket_mb = 0.01;
    // One epoch of at least three global batches (the first step has learning rate 0: the warm-up
    // starts there), the last with an odd number ≥ 3 of samples.
    let corpus = Arc::new(Corpus::open(&dir.path().join("corpus")).unwrap());
    let n = Loader::new(corpus, cfg.loader.clone(), Split::Train).unwrap().n_samples(Split::Train) as usize;
    let b = (n / 10..n / 6).find(|&b| n % (2 * b) >= 3 && n % (2 * b) % 2 == 1).expect("a batch size with an odd last batch");
    let steps = n.div_ceil(2 * b) as u64;
    (cfg.steps, cfg.epochs) = (None, Some(1));
    cfg.loader.batch_size = b;
    std::fs::write(dir.path().join("per_rank.toml"), cfg.to_toml()).unwrap();
    cfg.loader.batch_size = 2 * b;
    std::fs::write(dir.path().join("global.toml"), cfg.to_toml()).unwrap();

    let two = two_ranks(&["train", "--corpus", "corpus", "--config", "per_rank.toml", "--out", "two"], dir.path());
    assert!(two.status.success(), "{}", text(&two));
    assert!(text(&two).contains("validation loss"), "rank 0 reports: {}", text(&two));
    let one = one_rank(&["train", "--corpus", "corpus", "--config", "global.toml", "--out", "one"], dir.path());
    assert!(one.status.success(), "{}", text(&one));

    // The same global batches, so the same losses and weights up to float summation order.
    let (l2, l1) = (losses(&dir.path().join("two")), losses(&dir.path().join("one")));
    assert_eq!((l2.len(), l1.len()), (steps as usize, steps as usize));
    for (step, (a, b)) in l2.iter().zip(&l1).enumerate() {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "step {}: loss {a} on two ranks, {b} on one", step + 1);
    }
    // AdamW moves a weight by at most about lr per step whatever its gradient's scale, so weight
    // differences are measured against lr · steps. Summation order changes gradients by float32
    // rounding (~1e-7 relative), which the update amplifies only where |g| is near eps; 1e-4 of
    // the largest possible movement leaves that room, while a rank's gradient lost or counted
    // twice moves weights by O(lr) per step.
    let tolerance = 1e-4 * cfg.optimizer.lr * steps as f64;
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    for ((name, x), (other, y)) in weights(&dir.path().join("two"), steps).iter().zip(&weights(&dir.path().join("one"), steps)) {
        assert_eq!(name, other);
        let diff = (x - y).abs().max().double_value(&[]);
        let scale = y.abs().max().double_value(&[]).max(1e-3);
        (max_abs, max_rel) = (max_abs.max(diff), max_rel.max(diff / scale));
        assert!(diff <= tolerance, "{name}: max |Δw| {diff:e} > {tolerance:e}");
        assert!(x.kind() == Kind::Float && x.isfinite().all().int64_value(&[]) == 1, "{name} is not finite");
    }
    eprintln!(
        "two ranks × {b} vs one × {}: max |Δw| {max_abs:.3e} (tolerance {tolerance:.1e}), max |Δw| / max |w| per tensor {max_rel:.3e}, after {steps} steps (last batch {})",
        2 * b,
        n % (2 * b)
    );

    // Stop after two steps (launched through --world-size), resume on two ranks.
    let first = one_rank(&["train", "--world-size", "2", "--corpus", "corpus", "--config", "per_rank.toml", "--out", "resumed", "--stop-at", "2"], dir.path());
    assert!(first.status.success(), "{}", text(&first));
    let latest = std::fs::read_to_string(dir.path().join("resumed/checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), "step-0000002");
    let rest = two_ranks(&["train", "--corpus", "corpus", "--out", "resumed", "--resume"], dir.path());
    assert!(rest.status.success(), "{}", text(&rest));
    assert_eq!(losses(&dir.path().join("resumed")), l2, "per-step losses of the resumed run");
    for ((name, x), (_, y)) in weights(&dir.path().join("resumed"), steps).iter().zip(&weights(&dir.path().join("two"), steps)) {
        assert!(x.equal(y), "{name} differs after the resume");
    }

    // Failing ranks end the job rather than leave it waiting.
    let nothing = two_ranks(&["train", "--corpus", "corpus", "--out", "nothing", "--resume"], dir.path());
    assert!(!nothing.status.success() && text(&nothing).contains("no checkpoint to resume from"), "{}", text(&nothing));

    // A two-rank run resumes on two ranks only: its global batch depends on it.
    let alone = one_rank(&["train", "--corpus", "corpus", "--out", "two", "--resume"], dir.path());
    assert!(!alone.status.success() && text(&alone).contains(&format!("trained on 2 rank(s) with global batch {}", 2 * b)), "{}", text(&alone));
}
