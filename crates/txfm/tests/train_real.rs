//! Issue 3's acceptance check on real data: the `tiny` preset trained on a corpus of every real
//! file in ../shared/data has a falling validation loss that ends below the trivial baseline
//! (each gene's mean value).

use std::sync::Arc;

use txfm::corpus::{build_corpus, BuildOptions, Corpus, Manifest};
use txfm::config::RunConfig;
use txfm::train::trainer::{train, TrainOptions};

#[test]
fn tiny_model_learns_the_real_shared_corpus() {
    // The example manifest points at ../shared/data beside the repository; this says clearly
    // when that is missing.
    txfm::testing::shared_data("perturbation/datlinger2017_cropseq_scperturb_testsubset.h5ad");
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shared_corpus.toml");
    let mut m = Manifest::load(&manifest).expect("examples/shared_corpus.toml loads");
    // Fewer cells of the two large screens keep the test short; every dataset stays in.
    for d in &mut m.datasets {
        d.max_samples = Some(1500);
    }
    let dir = tempfile::tempdir().unwrap();
    let corpus_dir = dir.path().join("corpus");
    build_corpus(&m, &corpus_dir, &BuildOptions::default()).unwrap();
    let corpus = Arc::new(Corpus::open(&corpus_dir).unwrap());
    assert_eq!(corpus.summary.datasets.len(), 6);

    let mut cfg = RunConfig::tiny();
    cfg.steps = Some(300);
    let out = train(corpus, &cfg, &TrainOptions::new(dir.path().join("run"))).unwrap();
    let eval = out.eval.expect("final validation");
    assert!(eval.loss < eval.baseline, "validation {} vs per-gene baseline {}", eval.loss, eval.baseline);

    let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
    let val: Vec<f64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get("val_loss")?.as_f64())
        .collect();
    assert!(val.len() >= 3, "{val:?}");
    assert!(val.last() < val.first(), "validation loss falls: {val:?}");
}
