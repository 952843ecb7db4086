//! Every ablation axis of the paper runs end to end through the trainer: each variant is a config
//! diff from the `tiny` preset, trains two steps on a simulated corpus and evaluates, with finite
//! losses. (The model tests check each activation × loss lowers the loss in one optimiser step.)

use std::sync::Arc;

use txfm::corpus::{build_corpus, BuildOptions, Corpus, DatasetSpec, Filters, Manifest};
use txfm::data::genes::GeneIdKind;
use txfm::model::{CountActivation, DecoderConfig, LossKind};
use txfm::preprocess::Preprocess;
use txfm::simulate::{simulate_to_h5ad, SimConfig};
use txfm::config::RunConfig;
use txfm::train::trainer::{train, TrainOptions};

#[test]
fn every_ablation_axis_trains_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let h5ad = dir.path().join("sim.h5ad");
    simulate_to_h5ad(&SimConfig { n_cells: 400, ..SimConfig::tiny() }, &h5ad, &indicatif::ProgressBar::hidden()).unwrap();
    let m = Manifest::new(vec![DatasetSpec::new("sim", &h5ad, GeneIdKind::Raw)], Filters::none());
    build_corpus(&m, &dir.path().join("corpus"), &BuildOptions::default()).unwrap();
    let corpus = Arc::new(Corpus::open(&dir.path().join("corpus")).unwrap());

    let base = || {
        let mut c = RunConfig::tiny();
        (c.steps, c.eval_every, c.checkpoint_every, c.eval_batches) = (Some(2), 2, 2, Some(1));
        c
    };
    let mut variants: Vec<(&str, RunConfig)> = Vec::new();
    for (name, decoder) in [
        ("decoder linear", DecoderConfig::Linear),
        ("decoder 1 layer", DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 64 }),
        ("decoder 4 layers", DecoderConfig::ResidualMlp { n_layers: 4, d_hidden: 64 }),
        ("decoder 8 layers", DecoderConfig::ResidualMlp { n_layers: 8, d_hidden: 64 }),
    ] {
        let mut c = base();
        c.model.decoder = decoder;
        variants.push((name, c));
    }
    for (name, activation) in [
        ("rectified tanh", CountActivation::RectifiedTanh),
        ("relu", CountActivation::Relu),
        ("clamped relu", CountActivation::ClampedRelu),
        ("softmax", CountActivation::Softmax),
    ] {
        let mut c = base();
        c.model.activation = activation;
        variants.push((name, c));
    }
    for (name, loss) in [
        ("poisson", LossKind::Poisson),
        ("mse", LossKind::Mse),
        ("smooth l1", LossKind::SmoothL1),
        ("negative binomial", LossKind::NegativeBinomial),
    ] {
        let mut c = base();
        c.model.loss = loss;
        variants.push((name, c));
    }
    let mut c = base();
    c.loader.preprocess = Preprocess::Log1p;
    variants.push(("log1p only", c));
    for tau in [0.5, -0.5] {
        let mut c = base();
        (c.model.sampling_tau, c.loader.tau) = (tau, tau);
        variants.push((if tau > 0.0 { "frequency-weighted τ=0.5" } else { "frequency-weighted τ=-0.5" }, c));
    }

    for (i, (name, cfg)) in variants.iter().enumerate() {
        cfg.validate("ablation").unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = train(corpus.clone(), cfg, &TrainOptions::new(dir.path().join(format!("run{i}"))))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.step, 2, "{name}");
        assert!(out.train_losses.iter().all(|l| l.is_finite()), "{name}: {:?}", out.train_losses);
        let eval = out.eval.unwrap_or_else(|| panic!("{name}: no evaluation"));
        assert!(eval.loss.is_finite() && eval.baseline.is_finite(), "{name}: {eval:?}");
    }
}
