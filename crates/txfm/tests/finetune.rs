//! Fine-tuning end to end: a model pretrained on one simulated corpus is fine-tuned on another
//! whose genes overlap it partly. The vocabulary is the pretrained one plus the new genes, the
//! pretrained rows arrive unchanged, fine-tuning lowers the target's validation loss, and the run
//! folder resumes and reloads like any other.
//!
//! Training seeds libtorch's one global generator, so this file is its own test binary.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use tch::{Device, Tensor};
use txfm::corpus::Corpus;
use txfm::model::DecoderConfig;
use txfm::simulate::SimConfig;
use txfm::testing::sim_corpus;
use txfm::train::{resume, train, Checkpoint, Finetune, RunConfig, TrainOptions};

fn corpus(dir: &Path, name: &str, sim: SimConfig) -> Arc<Corpus> {
    sim_corpus(dir, name, name, &sim, 3);
    Arc::new(Corpus::open(&dir.join(name)).unwrap())
}

/// The narrow tiny model of `tests/train.rs`.
fn config(steps: u64) -> RunConfig {
    let mut c = RunConfig::tiny();
    (c.steps, c.eval_every, c.checkpoint_every) = (Some(steps), steps, steps);
    c.optimizer.lr = 1e-2;
    c.model.d_model = 32;
    c.model.decoder = DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 32 };
    (c.model.n_visible, c.loader.k) = (32, 32);
    c.loader.validation_fraction = 0.1;
    c
}

fn weights(ckpt: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(ckpt.join("model.safetensors")).unwrap().into_iter().collect()
}

#[test]
fn finetuning_extends_the_vocabulary_keeps_pretrained_rows_and_lowers_the_target_loss() {
    let dir = tempfile::tempdir().unwrap();
    let a = corpus(dir.path(), "a", SimConfig { n_cells: 1_000, ..SimConfig::tiny() });
    // Gene ids are numbered, so 700 genes include the first corpus's 500; another seed and the
    // gene filter make the overlap partial both ways.
    let b = corpus(dir.path(), "b", SimConfig { n_cells: 600, n_genes: 700, seed: 1, ..SimConfig::tiny() });
    let pretrained = dir.path().join("pretrained");
    train(a.clone(), &config(150), &TrainOptions::new(&pretrained)).unwrap();

    let plan = Finetune::new(&pretrained, &b).unwrap();
    let (in_a, in_b): (HashSet<&String>, HashSet<&String>) = (a.var_names.iter().collect(), b.var_names.iter().collect());
    let o = plan.overlap;
    assert_eq!(o.in_vocab, in_b.intersection(&in_a).count());
    assert_eq!(o.new, in_b.difference(&in_a).count());
    assert_eq!(o.unprofiled, in_a.difference(&in_b).count());
    assert!(o.in_vocab > 0 && o.new > 0 && o.unprofiled > 0, "{o:?}");
    assert_eq!(plan.vocab.names[..a.n_vars()], a.var_names[..]);
    assert_eq!(plan.vocab.len(), a.n_vars() + o.new);

    // Step 0: the pretrained tensors, with fresh rows for the new genes.
    let (g_old, g_new) = (a.n_vars() as i64, plan.vocab.len() as i64);
    let vocab = plan.vocab.names.clone();
    let run = dir.path().join("finetuned");
    let config = RunConfig { steps: Some(60), eval_every: 60, checkpoint_every: 60, ..plan.config() };
    let start = plan.run(b.clone(), &config, &TrainOptions { stop_at: Some(0), ..TrainOptions::new(&run) }).unwrap();
    let before = start.initial_eval.unwrap().loss;
    let (old, new) = (weights(&Checkpoint::latest(&pretrained).unwrap().unwrap().dir), weights(&start.checkpoint));
    assert_eq!(old.len(), new.len());
    for (name, w) in &old {
        let n = &new[name];
        if n.size() == w.size() {
            assert!(n.equal(w), "{name} changed");
        } else {
            assert_eq!((w.size()[0], n.size()[0]), (g_old, g_new), "{name}");
            assert!(n.narrow(0, 0, g_old).equal(w), "{name}: pretrained rows changed");
        }
    }
    let fresh = new["encoder.gene_embedding"].narrow(0, g_old, g_new - g_old);
    let (std, init) = (fresh.std(true).double_value(&[]), config.model.gene_embedding_std);
    assert!((std - init).abs() < 0.25 * init, "new embedding rows: std {std}, initialised at {init}");
    assert_eq!(new["decoder.out.weight"].size()[0], g_new);
    assert_eq!(new["decoder.out.bias"].narrow(0, g_old, g_new - g_old).abs().sum(tch::Kind::Float).double_value(&[]), 0.0);

    // The run folder resumes like any other and fine-tuning lowers the target's loss.
    let rest = resume(b.clone(), &TrainOptions::new(&run), None).unwrap();
    assert_eq!((rest.first_step, rest.step), (0, 60));
    let after = rest.eval.unwrap().loss;
    eprintln!("validation loss on the target: {before:.4} → {after:.4}");
    assert!(after < before, "fine-tuning did not lower the validation loss: {before} → {after}");
    let ckpt = Checkpoint::latest(&run).unwrap().unwrap();
    assert_eq!(ckpt.var_names, vocab);
    assert_eq!(ckpt.config.model, config.model);
    ckpt.load_model(&b, Device::Cpu).unwrap();
    assert!(!ckpt.vocab_map(&b).unwrap().is_identity());
    // The pretrained run itself still refuses the target corpus.
    assert!(Checkpoint::latest(&pretrained).unwrap().unwrap().load_model(&b, Device::Cpu).is_err());
    assert!(resume(b, &TrainOptions::new(&pretrained), None).is_err());
}


/// Fine-tuning onto a corpus that shares no gene with the pretrained vocabulary is refused with
/// both sides' gene IDs shown (it used to proceed, every gene a fresh row).
#[test]
fn a_corpus_sharing_no_gene_is_refused() {
    use txfm::corpus::{build_corpus, BuildOptions, DatasetSpec, Filters, Manifest};
    use txfm::data::genes::GeneIdKind;
    let dir = tempfile::tempdir().unwrap();
    let a = corpus(dir.path(), "a", SimConfig { n_cells: 400, ..SimConfig::tiny() });
    let pretrained = dir.path().join("pretrained");
    train(a, &config(5), &TrainOptions::new(&pretrained)).unwrap();

    let h5ad = dir.path().join("other.h5ad");
    let genes: Vec<String> = (0..30).map(|j| format!("OTHER{j:03}")).collect();
    txfm::testing::write_dense_h5ad(&h5ad, &genes, 100, |i| (0..30).map(|j| ((i + 2 * j) % 4) as f32).collect());
    let m = Manifest::new(vec![DatasetSpec::new("other", &h5ad, GeneIdKind::Raw)], Filters::none());
    build_corpus(&m, &dir.path().join("other"), &BuildOptions::default()).unwrap();
    let other = Corpus::open(&dir.path().join("other")).unwrap();
    let err = Finetune::new(&pretrained, &other).unwrap_err().to_string();
    assert!(err.contains("shares no gene") && err.contains("OTHER000") && err.contains("SIMG"), "{err}");
}
