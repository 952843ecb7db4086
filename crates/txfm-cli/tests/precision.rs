//! Where a run that asks for autocast gets it on CPU: `TXFM_CPU_AUTOCAST=on` runs training and
//! embedding in bfloat16, `off` (the default) in float32, and a value it cannot read stops the
//! command naming the variable. The bfloat16 numbers must differ from the float32 ones (else the
//! setting did nothing) and stay close to them.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use txfm::embed::npy::NpyRows;
use txfm::simulate::SimConfig;
use txfm::testing::sim_corpus;
use common::{test_run_config, text};

/// `txfm args` with `TXFM_CPU_AUTOCAST=policy` (`default`: the variable unset).
fn txfm_with(policy: &str, args: &[&str], cwd: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_txfm"));
    cmd.args(args).current_dir(cwd);
    match policy {
        "default" => cmd.env_remove("TXFM_CPU_AUTOCAST"),
        p => cmd.env("TXFM_CPU_AUTOCAST", p),
    };
    cmd.output().expect("txfm runs")
}

/// The last validation loss of a run's metrics.jsonl.
fn last_val_loss(run: &Path) -> f64 {
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    metrics
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["val_loss"].as_f64())
        .expect("the run evaluated")
}

fn rows(path: &Path) -> Vec<Vec<f32>> {
    let npy = NpyRows::open(path).unwrap();
    let all = npy.read_rows(0..npy.n_obs).unwrap();
    all.chunks(npy.d).map(<[f32]>::to_vec).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn cpu_autocast_trains_and_embeds_in_bfloat16_close_to_float32() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sim_corpus(d, "sim", "corpus", &SimConfig { n_cells: 300, ..SimConfig::tiny() }, 3);
    let mut cfg = test_run_config();
    cfg.autocast = true;
    (cfg.steps, cfg.checkpoint_every, cfg.eval_every) = (Some(4), 4, 4);
    std::fs::write(d.join("run.toml"), cfg.to_toml()).unwrap();

    let mut val = Vec::new();
    for policy in ["on", "off"] {
        let out = format!("run_{policy}");
        let o = txfm_with(policy, &["train", "--corpus", "corpus", "--config", "run.toml", "--out", &out], d);
        assert!(o.status.success(), "{}", text(&o));
        let noted = text(&o).contains("training runs under bfloat16 autocast on this CPU");
        assert_eq!(noted, policy == "on", "the run says when the CPU runs it in bfloat16: {}", text(&o));
        val.push(last_val_loss(&d.join(&out)));
    }
    let (on, off) = (val[0], val[1]);
    assert!(on.is_finite() && off.is_finite());
    assert!(on != off, "bfloat16 training gave float32's validation loss to the bit ({on}): autocast did not apply");
    assert!((on - off).abs() <= 1e-2 * off.abs(), "bfloat16 {on} vs float32 {off}");

    // One model, embedded in both precisions: the raw read-out, since four steps leave the CLS
    // nearly the same for every cell and its principal axes would whiten bfloat16's rounding up to
    // the size of those differences (on a trained model, BENCHMARKS.md: cosine ≥ 0.998 in axes).
    for policy in ["on", "off", "default"] {
        let npy = format!("emb_{policy}.npy");
        let o = txfm_with(policy, &["embed", "--model", "run_off", "--input", "sim.h5ad", "--no-axes", "--output", &npy], d);
        assert!(o.status.success(), "{}", text(&o));
    }
    let (on, off) = (rows(&d.join("emb_on.npy")), rows(&d.join("emb_off.npy")));
    assert_eq!(on.len(), 300);
    assert!(rows(&d.join("emb_default.npy")) == off, "by default a CPU embeds in float32");
    assert!(on != off, "the bfloat16 embedding equals the float32 one: autocast did not apply");
    let worst = on.iter().zip(&off).map(|(a, b)| cosine(a, b)).fold(f64::INFINITY, f64::min);
    assert!(worst > 0.999, "lowest per-cell cosine between the bfloat16 and float32 embeddings: {worst}");

    let o = txfm_with("sometimes", &["embed", "--model", "run_off", "--input", "sim.h5ad", "--output", "bad.npy"], d);
    assert!(!o.status.success());
    assert!(text(&o).contains("TXFM_CPU_AUTOCAST=sometimes: expected on or off"), "{}", text(&o));
    assert!(!d.join("bad.npy").exists(), "nothing written on a bad setting");
}
