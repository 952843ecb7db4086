//! Training end to end on a simulated corpus: the tiny model beats the per-gene baseline, an
//! interrupted and resumed run equals an uninterrupted one, a diverging run stops at its step
//! with its last good checkpoint, and a checkpoint refuses a corpus with other genes.
//!
//! Training seeds libtorch's one global generator, so these tests take turns (`LOCK`); they live
//! in their own test binary so no other test draws from it meanwhile.

mod train {
    use std::path::Path;
    use std::sync::{Arc, Mutex, MutexGuard};

    use tch::{Device, Tensor};
    use txfm::corpus::{build_corpus, BuildOptions, Corpus, DatasetSpec, Filters, Manifest};
    use txfm::data::genes::GeneIdKind;
    use txfm::model::DecoderConfig;
    use txfm::simulate::{simulate_to_h5ad, SimConfig};
    use txfm::train::metrics::read_metrics;
    use txfm::train::{resume, train, Checkpoint, RunConfig, TrainOptions};

    static LOCK: Mutex<()> = Mutex::new(());

    fn lock() -> MutexGuard<'static, ()> {
        LOCK.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A corpus of 1,200 simulated cells; `min_cells_per_gene` trims the vocabulary.
    fn simulated_corpus(dir: &Path, min_cells_per_gene: u64) -> Arc<Corpus> {
        let h5ad = dir.join("sim.h5ad");
        if !h5ad.exists() {
            let sim = SimConfig { n_cells: 1_200, ..SimConfig::tiny() };
            simulate_to_h5ad(&sim, &h5ad, &indicatif::ProgressBar::hidden()).unwrap();
        }
        let mut m = Manifest::new(vec![DatasetSpec::new("sim", &h5ad, GeneIdKind::Raw)], Filters { min_cells_per_gene, min_genes_per_cell: 0 });
        m.shard_rows = 300;
        let out = dir.join(format!("corpus-{min_cells_per_gene}"));
        build_corpus(&m, &out, &BuildOptions::default()).unwrap();
        Arc::new(Corpus::open(&out).unwrap())
    }

    /// The tiny preset, narrower still so the tests take seconds, at the peak learning rate
    /// that trains this narrower model fastest.
    fn config(steps: u64) -> RunConfig {
        let mut c = RunConfig::tiny();
        c.steps = Some(steps);
        c.optimizer.lr = 1e-2;
        c.model.d_model = 32;
        c.model.decoder = DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 32 };
        (c.model.n_visible, c.loader.k) = (32, 32);
        c.loader.validation_fraction = 0.1;
        c
    }

    fn tensors(path: &Path) -> Vec<(String, Tensor)> {
        let mut t = Tensor::read_safetensors(path).unwrap();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    }

    #[test]
    fn the_tiny_model_beats_the_per_gene_mean_baseline() {
        let _g = lock();
        let dir = tempfile::tempdir().unwrap();
        let corpus = simulated_corpus(dir.path(), 3);
        let run = dir.path().join("run");
        let mut cfg = config(400);
        cfg.eval_every = 200;
        let out = train(corpus, &cfg, &TrainOptions::new(&run)).unwrap();
        let e = out.eval.unwrap();
        eprintln!("val {:.4} vs baseline {:.4}; {:.0} samples/s", e.loss, e.baseline, out.samples_per_s);
        assert!(e.loss < e.baseline, "validation loss {} does not beat the per-gene mean {}", e.loss, e.baseline);
        let first: f64 = out.train_losses[..10].iter().sum::<f64>() / 10.0;
        let last: f64 = out.train_losses[390..].iter().sum::<f64>() / 10.0;
        assert!(last < first, "training loss {first} → {last}");
        // The run folder: the config before step 0, a record per step, a final checkpoint.
        assert_eq!(RunConfig::load(&run.join("config.toml")).unwrap(), cfg);
        let metrics = read_metrics(&run.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.len(), 400);
        assert_eq!(metrics.iter().filter(|r| r.val_loss.is_some()).count(), 2);
        let ckpt = Checkpoint::latest(&run).unwrap().unwrap();
        assert_eq!(ckpt.dir, run.join("checkpoints/step-0000400"));
        assert_eq!(ckpt.state.step, 400);
        assert!(run.join("checkpoints/step-0000200/model.safetensors").exists());
        assert!(std::fs::read(run.join("loss.png")).unwrap().starts_with(b"\x89PNG"));
        // A second fresh run into the same folder is refused.
        assert!(train(Arc::new(Corpus::open(&dir.path().join("corpus-3")).unwrap()), &cfg, &TrainOptions::new(&run)).is_err());
    }

    #[test]
    fn a_resumed_run_equals_an_uninterrupted_one() {
        let _g = lock();
        let dir = tempfile::tempdir().unwrap();
        let corpus = simulated_corpus(dir.path(), 3);
        let mut cfg = config(60);
        (cfg.checkpoint_every, cfg.eval_every) = (20, 25);
        // Small batches so the 60 steps cross an epoch boundary.
        cfg.loader.batch_size = 24;
        let straight = train(corpus.clone(), &cfg, &TrainOptions::new(dir.path().join("a"))).unwrap();

        let b = dir.path().join("b");
        let first = train(corpus.clone(), &cfg, &TrainOptions { stop_at: Some(30), ..TrainOptions::new(&b) }).unwrap();
        assert_eq!(first.step, 30);
        let rest = resume(corpus, &TrainOptions::new(&b), None).unwrap();
        assert_eq!((rest.first_step, rest.step), (30, 60));

        let resumed: Vec<f64> = first.train_losses.iter().chain(&rest.train_losses).copied().collect();
        assert_eq!(resumed, straight.train_losses, "per-step training losses differ");
        let logged: Vec<f64> = read_metrics(&b.join("metrics.jsonl")).unwrap().iter().map(|r| r.train_loss).collect();
        // serde_json's default float parsing may be an ulp off, hence the tolerance.
        assert_eq!(logged.len(), 60);
        assert!(logged.iter().zip(&straight.train_losses).all(|(a, b)| (a - b).abs() <= 1e-12 * b.abs()));
        assert_eq!(rest.eval, straight.eval);
        for file in ["model.safetensors", "optimizer.safetensors"] {
            let (x, y) = (tensors(&straight.checkpoint.join(file)), tensors(&rest.checkpoint.join(file)));
            assert_eq!(x.len(), y.len());
            for ((n, a), (_, b)) in x.iter().zip(&y) {
                assert!(a.equal(b), "{file}: {n} differs");
            }
        }
    }

    /// A checkpoint damaged after it was written (a flipped byte, a truncated file) fails its
    /// recorded SHA-256 when opened; resume then falls back to the newest intact checkpoint, also
    /// with `latest` gone, says what it skipped, and ends where an uninterrupted run does.
    #[test]
    fn a_damaged_checkpoint_is_detected_and_resume_falls_back_to_an_intact_one() {
        let _g = lock();
        let dir = tempfile::tempdir().unwrap();
        let corpus = simulated_corpus(dir.path(), 3);
        let mut cfg = config(60);
        (cfg.checkpoint_every, cfg.eval_every) = (20, 30);
        let straight = train(corpus.clone(), &cfg, &TrainOptions::new(dir.path().join("a"))).unwrap();

        let b = dir.path().join("b");
        train(corpus.clone(), &cfg, &TrainOptions { stop_at: Some(40), ..TrainOptions::new(&b) }).unwrap();
        let step40 = b.join("checkpoints/step-0000040");
        let model = step40.join("model.safetensors");
        let mut bytes = std::fs::read(&model).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&model, &bytes).unwrap();
        let err = Checkpoint::open(&step40).unwrap_err().to_string();
        assert!(err.contains("model.safetensors") && err.contains("SHA-256"), "{err}");
        std::fs::remove_file(b.join("checkpoints/latest")).unwrap();

        let (found, skipped) = Checkpoint::latest_intact(&b).unwrap().unwrap();
        assert_eq!(found.state.step, 20);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("latest") && skipped[0].contains("missing"), "{skipped:?}");
        assert!(skipped[1].contains("step-0000040") && skipped[1].contains("SHA-256"), "{skipped:?}");

        let rest = resume(corpus, &TrainOptions::new(&b), None).unwrap();
        assert_eq!((rest.first_step, rest.step), (20, 60));
        assert_eq!(rest.train_losses, straight.train_losses[20..], "the resumed steps differ");

        // A truncated file fails the same way.
        let optimizer = rest.checkpoint.join("optimizer.safetensors");
        let len = std::fs::metadata(&optimizer).unwrap().len();
        std::fs::File::options().write(true).open(&optimizer).unwrap().set_len(len / 2).unwrap();
        let err = Checkpoint::open(&rest.checkpoint).unwrap_err().to_string();
        assert!(err.contains("optimizer.safetensors") && err.contains("SHA-256"), "{err}");
    }

    /// Gradient accumulation changes where the activations live, not the update: slices of 7
    /// (the last one 4) of each 32-sample batch, each weighed by its share of the loss terms,
    /// step the model as the whole batch does, up to float summation order.
    #[test]
    fn micro_batches_make_the_update_of_the_whole_batch() {
        let _g = lock();
        let dir = tempfile::tempdir().unwrap();
        let corpus = simulated_corpus(dir.path(), 3);
        let mut cfg = config(6);
        // Stochastic depth draws per slice, which would make the two runs differ by design.
        cfg.model.drop_path = 0.0;
        let whole = train(corpus.clone(), &cfg, &TrainOptions::new(dir.path().join("whole"))).unwrap();
        cfg.micro_batch_size = Some(7);
        let sliced = train(corpus, &cfg, &TrainOptions::new(dir.path().join("sliced"))).unwrap();
        for (a, b) in whole.train_losses.iter().zip(&sliced.train_losses) {
            assert!((a - b).abs() <= 1e-5 * a.abs(), "training losses {a} vs {b}");
        }
        let (x, y) = (tensors(&whole.checkpoint.join("model.safetensors")), tensors(&sliced.checkpoint.join("model.safetensors")));
        assert_eq!((whole.train_losses.len(), sliced.train_losses.len()), (6, 6));
        for ((n, a), (_, b)) in x.iter().zip(&y) {
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff <= 2e-4, "{n}: the sliced run's weights differ by {diff}");
        }
    }

    #[test]
    fn a_diverging_run_stops_at_its_step_and_keeps_the_last_good_checkpoint() {
        let _g = lock();
        let dir = tempfile::tempdir().unwrap();
        let corpus = simulated_corpus(dir.path(), 3);
        let mut cfg = config(40);
        cfg.optimizer.lr = 1e30;
        cfg.optimizer.grad_clip = None;
        cfg.checkpoint_every = 1;
        let run = dir.path().join("run");
        let err = train(corpus.clone(), &cfg, &TrainOptions::new(&run)).unwrap_err().to_string();
        let ckpt = Checkpoint::latest(&run).unwrap().expect("a checkpoint before the divergence");
        let failed = ckpt.state.step + 1;
        assert!(err.contains(&format!("step {failed} of 40")), "{err}");
        assert!(err.contains(&ckpt.dir.display().to_string()), "{err}");
        assert_eq!(read_metrics(&run.join("metrics.jsonl")).unwrap().len() as u64, ckpt.state.step);
        ckpt.load_model(&corpus, Device::Cpu).unwrap();
    }

    #[test]
    fn a_checkpoint_refuses_a_corpus_with_other_genes() {
        let _g = lock();
        let dir = tempfile::tempdir().unwrap();
        let corpus = simulated_corpus(dir.path(), 3);
        let run = dir.path().join("run");
        let mut cfg = config(2);
        cfg.eval_batches = Some(1);
        train(corpus.clone(), &cfg, &TrainOptions::new(&run)).unwrap();
        let ckpt = Checkpoint::latest(&run).unwrap().unwrap();
        assert_eq!(ckpt.var_names, corpus.var_names);
        ckpt.load_model(&corpus, Device::Cpu).unwrap();

        let smaller = simulated_corpus(dir.path(), 300);
        let missing: Vec<&String> = corpus.var_names.iter().filter(|g| !smaller.var_names.contains(g)).collect();
        assert!(missing.len() > 5);
        let err = ckpt.load_model(&smaller, Device::Cpu).unwrap_err().to_string();
        let first = missing[..5].iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        assert!(err.contains(&format!("{} of its {} genes are missing", missing.len(), corpus.var_names.len())), "{err}");
        assert!(err.contains(&format!("first: {first}")), "{err}");
        assert!(resume(smaller, &TrainOptions::new(&run), None).is_err());
    }
}
