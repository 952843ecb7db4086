//! `txfm finetune` end to end: a run pretrained on one simulated corpus is fine-tuned on another
//! with partly different genes, reports the overlap, and leaves a run folder `--resume` accepts.

use std::path::Path;
use std::process::{Command, Output};

use txfm::corpus::{build_corpus, BuildOptions, DatasetSpec, Filters, Manifest};
use txfm::data::genes::GeneIdKind;
use txfm::model::DecoderConfig;
use txfm::simulate::{simulate_to_h5ad, SimConfig};
use txfm::train::metrics::read_metrics;
use txfm::train::{Checkpoint, RunConfig};

fn txfm(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_txfm")).args(args).current_dir(cwd).output().expect("txfm runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn corpus(dir: &Path, name: &str, sim: SimConfig) {
    let h5ad = dir.join(format!("{name}.h5ad"));
    simulate_to_h5ad(&sim, &h5ad, &indicatif::ProgressBar::hidden()).unwrap();
    let m = Manifest::new(vec![DatasetSpec::new(name, &h5ad, GeneIdKind::Raw)], Filters { min_cells_per_gene: 3, min_genes_per_cell: 0 });
    build_corpus(&m, &dir.join(name), &BuildOptions::default()).unwrap();
}

#[test]
fn finetune_reports_the_overlap_and_writes_a_resumable_run() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path(), "a", SimConfig { n_cells: 600, ..SimConfig::tiny() });
    corpus(dir.path(), "b", SimConfig { n_cells: 400, n_genes: 700, seed: 1, ..SimConfig::tiny() });
    let mut cfg = RunConfig::tiny();
    (cfg.steps, cfg.checkpoint_every, cfg.eval_every) = (Some(20), 20, 20);
    cfg.model.d_model = 32;
    cfg.model.decoder = DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 32 };
    (cfg.model.n_visible, cfg.loader.k) = (32, 32);
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
