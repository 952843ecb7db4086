//! `txfm finetune` end to end: a run pretrained on one simulated corpus is fine-tuned on another
//! with partly different genes, reports the overlap, and leaves a run folder `--resume` accepts.

mod common;

use std::path::Path;

use txfm::simulate::SimConfig;
use txfm::testing::sim_corpus;
use txfm::train::metrics::read_metrics;
use txfm::train::Checkpoint;
use common::{test_run_config, text, txfm};

fn corpus(dir: &Path, name: &str, sim: SimConfig) {
    sim_corpus(dir, name, name, &sim, 3);
}

#[test]
fn finetune_reports_the_overlap_and_writes_a_resumable_run() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path(), "a", SimConfig { n_cells: 600, ..SimConfig::tiny() });
    corpus(dir.path(), "b", SimConfig { n_cells: 400, n_genes: 700, seed: 1, ..SimConfig::tiny() });
    let mut cfg = test_run_config();
    (cfg.steps, cfg.checkpoint_every, cfg.eval_every) = (Some(20), 20, 20);
    std::fs::write(dir.path().join("run.toml"), cfg.to_toml()).unwrap();
    let pretrain = txfm(&["train", "--corpus", "a", "--config", "run.toml", "--out", "pre"], dir.path());
    assert!(pretrain.status.success(), "{}", text(&pretrain));

    let ft = txfm(&["finetune", "--from", "pre", "--corpus", "b", "--out", "ft", "--steps", "15", "--lr", "0.005"], dir.path());
    let out = text(&ft);
    assert!(ft.status.success(), "{out}");
    assert!(out.contains("are in the pretrained vocabulary") && out.contains("pretrained genes are not profiled"), "{out}");
    assert!(out.contains("validation loss before fine-tuning"), "{out}");
    let ckpt = Checkpoint::latest(&dir.path().join("ft")).unwrap().unwrap();
    assert_eq!(ckpt.state.step, 15);
    assert_eq!(ckpt.config.model, cfg.model);
    assert_eq!(ckpt.config.optimizer.lr, 0.005);
    let pretrained = std::fs::canonicalize(dir.path().join("pre/checkpoints/step-0000020")).unwrap();
    assert_eq!(ckpt.config.finetuned_from, Some(pretrained));
    assert_eq!(read_metrics(&dir.path().join("ft/metrics.jsonl")).unwrap().len(), 15);

    let resumed = txfm(&["train", "--corpus", "b", "--out", "ft", "--resume"], dir.path());
    assert!(resumed.status.success(), "{}", text(&resumed));
    let refused = txfm(&["train", "--corpus", "b", "--out", "pre", "--resume"], dir.path());
    assert!(!refused.status.success() && text(&refused).contains("do not match"), "{}", text(&refused));
}
