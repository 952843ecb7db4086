//! `txfm axes` end to end: the axes it fits for a run's final checkpoint are the ones training
//! saved there (the same cells, seen the same way), so `txfm embed` gives the same numbers from
//! its bundle; it gives an older checkpoint axes without touching its folder, and refuses an
//! existing output and a corpus with genes the model lacks, writing nothing.

mod common;

use std::path::Path;

use txfm::model::{DecoderConfig, ModelBundle, AXES_FILE};
use txfm::simulate::SimConfig;
use txfm::testing::sim_corpus;
use txfm::train::RunConfig;
use common::{text, txfm};

/// sim.h5ad (300 cells), its corpus, and run/ trained 4 steps by the CLI (a checkpoint every 2).
fn trained(dir: &Path) {
    sim_corpus(dir, "sim", "corpus", &SimConfig { n_cells: 300, ..SimConfig::tiny() }, 3);
    let mut cfg = RunConfig::tiny();
    (cfg.steps, cfg.checkpoint_every, cfg.eval_every) = (Some(4), 2, 4);
    cfg.model.d_model = 16;
    cfg.model.decoder = DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 16 };
    (cfg.model.n_visible, cfg.loader.k) = (32, 32);
    std::fs::write(dir.join("run.toml"), cfg.to_toml()).unwrap();
    let train = txfm(&["train", "--corpus", "corpus", "--config", "run.toml", "--out", "run"], dir);
    assert!(train.status.success(), "{}", text(&train));
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = txfm(args, dir);
    assert!(o.status.success(), "txfm {}: {}", args.join(" "), text(&o));
    text(&o)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn axes_refits_what_training_saved_and_leaves_the_model_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained(d);
    let log = ok(d, &["axes", "--model", "run", "--corpus", "corpus", "--out", "refit"]);
    assert!(log.contains("wrote refit with the principal axes fitted on"), "{log}");
    let (saved, refit) = (ModelBundle::open(&d.join("run")).unwrap(), ModelBundle::open(&d.join("refit")).unwrap());
    assert_eq!(refit.axes().unwrap(), saved.axes().unwrap(), "the same fit as training's");
    assert!(refit.axes().unwrap().is_some());
    ok(d, &["embed", "--model", "run", "--input", "sim.h5ad", "--output", "a.npy", "--readout", "cls_mean"]);
    let log = ok(d, &["embed", "--model", "refit", "--input", "sim.h5ad", "--output", "b.npy", "--readout", "cls_mean"]);
    assert!(log.contains("in the model's principal axes"), "{log}");
    assert_eq!(std::fs::read(d.join("a.npy")).unwrap(), std::fs::read(d.join("b.npy")).unwrap());

    // An intermediate checkpoint has none; `txfm axes` gives it some in a new folder.
    let early = d.join("run/checkpoints/step-0000002");
    let before = listing(&early);
    assert!(!before.contains(&AXES_FILE.to_string()));
    let log = ok(d, &["embed", "--model", "run/checkpoints/step-0000002", "--input", "sim.h5ad", "--output", "c.npy"]);
    assert!(log.contains("carries no principal axes"), "{log}");
    ok(d, &["axes", "--model", "run/checkpoints/step-0000002", "--corpus", "corpus", "--out", "early", "--cells", "100"]);
    assert_eq!(listing(&early), before, "the checkpoint's folder is unchanged");
    let axes = ModelBundle::open(&d.join("early")).unwrap().axes().unwrap().expect("axes");
    assert!((80..=100).contains(&axes.n_cells), "about --cells cells, never more: {}", axes.n_cells);

    // An existing output is refused, and so is a corpus with genes the model does not know.
    let o = txfm(&["axes", "--model", "run", "--corpus", "corpus", "--out", "early"], d);
    assert!(!o.status.success() && text(&o).contains("already exists"), "{}", text(&o));
    sim_corpus(d, "other", "other_corpus", &SimConfig { n_cells: 50, n_genes: 600, ..SimConfig::tiny() }, 1);
    let o = txfm(&["axes", "--model", "run", "--corpus", "other_corpus", "--out", "other"], d);
    assert!(!o.status.success() && text(&o).contains("not in the model's vocabulary"), "{}", text(&o));
    assert!(!d.join("other").exists());
}
