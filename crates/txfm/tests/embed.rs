//! Embedding end to end through the library: a tiny model trained a few steps on a corpus built
//! from a simulated h5ad embeds that h5ad exactly as the training loader presents the corpus's
//! cells (same visible genes, same values, same CLS), whatever the chunk and batch sizes; inputs
//! that profile fewer genes than K are padded; `samplings` averages independent draws.

use std::path::Path;
use std::sync::Arc;

use tch::{Device, Tensor};
use txfm::corpus::Corpus;
use txfm::data::genes::GeneIdKind;
use txfm::data::h5ad::H5adWriter;
use txfm::data::{open_source, CsrChunk, ObsFrame, SourceOptions};
use txfm::embed::sampler::weights_from_corpus;
use txfm::embed::{Embedder, GeneMap, Sampler};
use txfm::model::{BatchTensors, DecoderConfig};
use txfm::simulate::SimConfig;
use txfm::testing::sim_corpus;
use txfm::train::loader::{Loader, LoaderConfig, Split};
use txfm::train::{train, Checkpoint, RunConfig, TrainOptions};

/// A simulated h5ad of 300 cells, its corpus (genes in < 20 cells dropped from the vocabulary,
/// every cell kept, so sample id = row) and a tiny model trained 3 steps on it.
fn fixture(dir: &Path) -> (std::path::PathBuf, Arc<Corpus>, std::path::PathBuf) {
    let h5ad = sim_corpus(dir, "sim", "corpus", &SimConfig { n_cells: 300, ..SimConfig::tiny() }, 20);
    let corpus = Arc::new(Corpus::open(&dir.join("corpus")).unwrap());
    assert_eq!(corpus.n_samples(), 300);
    assert!(corpus.n_vars() < 490, "some genes are left out of the vocabulary: {}", corpus.n_vars());
    let mut c = RunConfig::tiny();
    (c.steps, c.eval_every, c.checkpoint_every) = (Some(3), 3, 3);
    c.model.d_model = 32;
    c.model.decoder = DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 32 };
    (c.model.n_visible, c.loader.k) = (32, 32);
    (c.loader.batch_size, c.loader.seed, c.loader.validation_fraction) = (16, 5, 0.2);
    let run = dir.join("run");
    train(corpus.clone(), &c, &TrainOptions::new(&run)).unwrap();
    (h5ad, corpus, run)
}

/// Embeddings of every row of `input` in memory. `[n_obs, d]`
fn embed(e: &Embedder, input: &Path, sampler: &Sampler, samplings: usize, batch: usize, chunk: usize) -> Vec<f32> {
    let mut src = open_source(input, &SourceOptions::default()).unwrap();
    let genes = GeneMap::new(src.var_names(), GeneIdKind::Auto, e.vocab(), input).unwrap();
    let mut out = Vec::new();
    e.embed_source(src.as_mut(), &genes, sampler, samplings, batch, chunk, &indicatif::ProgressBar::hidden(), |c, emb| {
        assert_eq!(emb.len(), c.n_rows() * e.dim());
        out.extend_from_slice(emb);
        Ok(())
    })
    .unwrap();
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn embedding_the_h5ad_reproduces_the_loaders_view_of_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, corpus, run) = fixture(dir.path());
    let e = Embedder::load(&run, Device::Cpu).unwrap();
    let ckpt = Checkpoint::latest(&run).unwrap().unwrap();
    let (_vs, model) = ckpt.load_model(&corpus, Device::Cpu).unwrap();
    let d = e.dim();
    assert_eq!(d, 32);

    // The paper's uniform draw, τ-weighted, and detected genes first (the CPU recipe's).
    for (tau, zero_weight) in [(0.0, 1.0), (0.7, 1.0), (0.0, 0.0)] {
        let weights = (tau != 0.0).then(|| weights_from_corpus(&corpus, e.vocab(), tau));
        // An explicit K replays the loader (without it, a detected-first run shows every detected gene).
        let mut sampler = e.sampler(None, Some(32), weights);
        sampler.zero_weight = zero_weight;
        assert_eq!((sampler.k, sampler.seed, sampler.all_detected), (32, 5, false), "K and seed of the run");
        let ours = embed(&e, &h5ad, &sampler, 1, 64, 100);
        assert_eq!(ours.len(), 300 * d);
        let cfg = LoaderConfig { tau, zero_weight, ..ckpt.config.loader.clone() };
        let mut compared = 0;
        for split in [Split::Train, Split::Validation] {
            let loader = Loader::new(corpus.clone(), cfg.clone(), split).unwrap();
            for batch in loader.eval_iter() {
                let batch = batch.unwrap();
                let cls = tch::no_grad(|| model.encode(&BatchTensors::from_batch(&batch, Device::Cpu).visible, false));
                let cls: Vec<f32> = Vec::try_from(cls.flatten(0, -1)).unwrap();
                for (i, &s) in batch.sample.iter().enumerate() {
                    let row = &ours[s as usize * d..(s as usize + 1) * d];
                    let diff = max_abs_diff(row, &cls[i * d..(i + 1) * d]);
                    assert!(diff <= 1e-5, "τ = {tau}, zero weight {zero_weight}, cell {s}: CLS differs by {diff}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 300, "every cell compared");
    }
}

#[test]
fn results_do_not_depend_on_chunks_or_batches_and_samplings_average_draws() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, _corpus, run) = fixture(dir.path());
    let e = Embedder::load(&run, Device::Cpu).unwrap();
    // A fixed K: bit for bit the same whatever the batching.
    let sampler = e.sampler(Some(11), Some(32), None);
    let a = embed(&e, &h5ad, &sampler, 1, 256, 4096);
    let b = embed(&e, &h5ad, &sampler, 1, 7, 50);
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, b, "batch size 256 vs 7, one chunk vs chunks of 50");
    // Every detected gene (the default of this detected-first run): each batch is as wide as its
    // widest cell, so the masked padding differs between batchings and so does the float
    // summation order in attention, by rounding only.
    let all = e.sampler(Some(11), None, None);
    assert!(all.all_detected);
    let (x, y) = (embed(&e, &h5ad, &all, 1, 256, 4096), embed(&e, &h5ad, &all, 1, 7, 50));
    assert!(max_abs_diff(&x, &y) <= 1e-5, "{}", max_abs_diff(&x, &y));
    let other_seed = embed(&e, &h5ad, &e.sampler(Some(12), None, None), 1, 256, 4096);
    assert!(max_abs_diff(&a, &other_seed) > 1e-3, "another seed, other visible genes");

    // Two samplings = the mean of sampling 0 (the single-sampling result) and sampling 1.
    let two = embed(&e, &h5ad, &sampler, 2, 64, 4096);
    let mut src = open_source(&h5ad, &SourceOptions::default()).unwrap();
    let genes = GeneMap::new(src.var_names(), GeneIdKind::Auto, e.vocab(), &h5ad).unwrap();
    let rows = genes.rows(src.read_rows(0, 300).unwrap());
    let ckpt = Checkpoint::latest(&run).unwrap().unwrap();
    let (_vs, model) = ckpt.load_weights(Device::Cpu).unwrap();
    let second = tch::no_grad(|| model.encode(&sampler.visible(&rows, &genes.profiled, 1, 0..300).to_tensors(Device::Cpu), false));
    let second: Vec<f32> = Vec::try_from(second.flatten(0, -1)).unwrap();
    let mean: Vec<f32> = a.iter().zip(&second).map(|(x, y)| (x + y) / 2.0).collect();
    assert!(max_abs_diff(&two, &mean) <= 1e-5, "{}", max_abs_diff(&two, &mean));
    assert!(max_abs_diff(&two, &a) > 1e-3, "the second draw changes the average");
}

#[test]
fn an_input_profiling_fewer_genes_than_k_shows_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let (_h5ad, _corpus, run) = fixture(dir.path());
    let e = Embedder::load(&run, Device::Cpu).unwrap();
    // 20 vocabulary genes plus two genes the model does not know, whose counts still count in
    // the library size.
    let mut names: Vec<String> = e.vocab()[..20].to_vec();
    names.extend(["not_a_gene_1".to_string(), "not_a_gene_2".to_string()]);
    let input = dir.path().join("panel.h5ad");
    let mut w = H5adWriter::create(&input, &ObsFrame { names: names.clone(), columns: vec![] }).unwrap();
    let mut x = CsrChunk::new(0, 22);
    for i in 0..40usize {
        x.push_dense_row(&(0..22).map(|j| ((i * 7 + j * 3) % 6) as f32).collect::<Vec<_>>());
    }
    w.append_x(&x).unwrap();
    w.finish(&ObsFrame { names: (0..40).map(|i| format!("c{i}")).collect(), columns: vec![] }).unwrap();

    let src = open_source(&input, &SourceOptions::default()).unwrap();
    let genes = GeneMap::new(src.var_names(), GeneIdKind::Auto, e.vocab(), &input).unwrap();
    assert_eq!((genes.n_profiled(), genes.n_not_in_vocab()), (20, 2));
    assert!(genes.to_string().starts_with("input profiles 20 of the model's"), "{genes}");

    // K = 32 is capped at the 20 profiled genes (no padding slots); K = 20 shows the same 20: the same CLS.
    let padded = embed(&e, &input, &e.sampler(None, None, None), 1, 16, 100);
    let exact = embed(&e, &input, &e.sampler(None, Some(20), None), 1, 16, 100);
    assert!(max_abs_diff(&padded, &exact) <= 1e-5, "{}", max_abs_diff(&padded, &exact));
    // The unknown genes' counts are in the library size: dropping them changes the values.
    let rows = genes.rows(x);
    assert_eq!(rows.library_size[1], (0..22).map(|j| ((7 + j * 3) % 6) as f64).sum::<f64>());
    let spread = Tensor::from_slice(&padded).view([40, 32]).std_dim(0i64, false, false).mean(tch::Kind::Float);
    assert!(spread.double_value(&[]) > 1e-4, "cells get different embeddings");
}
