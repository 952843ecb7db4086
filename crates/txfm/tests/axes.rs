//! The read-out's principal axes end to end: a run's final checkpoint (and only it) carries the
//! axes fitted on its training split; `txfm embed`'s job maps both read-outs into them, so that
//! the training cells' embeddings come out centred with uncorrelated columns of decreasing
//! variance, at the same distances as the raw read-out; a checkpoint without axes embeds the raw
//! read-out and says so; a changed axes file fails its checksum.

use std::path::Path;
use std::sync::Arc;

use txfm::corpus::Corpus;
use txfm::data::{open_source, SourceOptions};
use txfm::embed::{EmbedJob, EmbedOptions};
use txfm::model::{DecoderConfig, ModelBundle, Readout, AXES_FILE};
use txfm::simulate::SimConfig;
use txfm::testing::sim_corpus;
use txfm::train::loader::Split;
use txfm::train::{train, RunConfig, TrainOptions};

/// A simulated h5ad of 300 cells, its corpus (every cell kept, so sample id = row) and a tiny
/// model trained 4 steps with a checkpoint every 2.
fn fixture(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, RunConfig) {
    let h5ad = sim_corpus(dir, "sim", "corpus", &SimConfig { n_cells: 300, ..SimConfig::tiny() }, 20);
    let corpus = Arc::new(Corpus::open(&dir.join("corpus")).unwrap());
    assert_eq!(corpus.n_samples(), 300);
    let mut c = RunConfig::tiny();
    (c.steps, c.eval_every, c.checkpoint_every) = (Some(4), 4, 2);
    c.model.d_model = 16;
    c.model.decoder = DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 16 };
    (c.model.n_visible, c.loader.k) = (32, 32);
    (c.loader.batch_size, c.loader.seed, c.loader.validation_fraction) = (16, 5, 0.2);
    assert!(c.loader.zero_weight < 1.0, "the CPU recipe draws detected genes first, and embedding shows them all");
    let run = dir.join("run");
    train(corpus, &c, &TrainOptions::new(&run)).unwrap();
    (h5ad, run, c)
}

/// Embeddings of every row of `input` through the embedding job. `[n_obs, w]`
fn embed(model: &Path, input: &Path, readout: Readout, principal_axes: bool) -> (Vec<f32>, Option<u64>, String) {
    let src = open_source(input, &SourceOptions::default()).unwrap();
    let opts = EmbedOptions { model: model.to_path_buf(), readout, principal_axes, ..EmbedOptions::default() };
    let job = EmbedJob::prepare_source(opts, src).unwrap();
    let note = job.axes_note();
    let (values, summary) = job.run_to_vec(&indicatif::ProgressBar::hidden()).unwrap();
    (values, summary.axes_cells, note)
}

fn distance(x: &[f32], w: usize, i: usize, j: usize) -> f64 {
    (0..w).map(|c| (x[i * w + c] as f64 - x[j * w + c] as f64).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn the_final_checkpoint_carries_axes_that_embedding_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, run, config) = fixture(dir.path());
    let ckpts = run.join("checkpoints");
    assert!(!ckpts.join("step-0000002").join(AXES_FILE).exists(), "an intermediate checkpoint has no axes");
    let last = ckpts.join("step-0000004");
    assert!(last.join(AXES_FILE).exists(), "the final checkpoint has axes");
    let sums = std::fs::read_to_string(last.join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&format!("  {AXES_FILE}")), "the axes are checksummed: {sums}");

    let train_rows: Vec<usize> = (0..300).filter(|&s| Split::of(s as u64, 5, 0.2) == Split::Train).collect();
    let axes = ModelBundle::open(&run).unwrap().axes().unwrap().expect("axes");
    assert_eq!(axes.n_cells, train_rows.len() as u64, "fitted on the whole training split");

    for readout in [Readout::Cls, Readout::ClsMean] {
        let w = readout.width(config.model.d_model);
        let (raw, none, _) = embed(&run, &h5ad, readout, false);
        let (mapped, cells, note) = embed(&run, &h5ad, readout, true);
        assert_eq!((none, cells), (None, Some(axes.n_cells)));
        assert!(note.contains("principal axes") && note.contains(&axes.n_cells.to_string()), "{note}");
        assert_eq!(mapped.len(), 300 * w);
        // The fit saw each training cell exactly as embedding shows it (every detected gene,
        // the run's seed): over those cells the mapped columns are centred and uncorrelated,
        // with the variances the fit recorded, in decreasing order.
        let a = axes.get(readout);
        let n = train_rows.len() as f64;
        let mean: Vec<f64> = (0..w).map(|c| train_rows.iter().map(|&r| mapped[r * w + c] as f64).sum::<f64>() / n).collect();
        let top = a.variance[0];
        assert!(top > 0.0 && a.variance.windows(2).all(|v| v[0] >= v[1]), "{readout}: {:?}", a.variance);
        for c in 0..w {
            assert!(mean[c].abs() < 1e-3 * top.sqrt(), "{readout}: column {c} has mean {}", mean[c]);
            for e in c..w {
                let cov = train_rows.iter().map(|&r| (mapped[r * w + c] as f64 - mean[c]) * (mapped[r * w + e] as f64 - mean[e])).sum::<f64>() / (n - 1.0);
                let want = if c == e { a.variance[c] } else { 0.0 };
                assert!((cov - want).abs() < 1e-3 * top, "{readout}: cov[{c},{e}] = {cov}, fitted {want}");
            }
        }
        // A shift and a rotation: every cell's distances are the raw read-out's.
        for (i, j) in [(0, 1), (5, 299), (120, 37)] {
            let (before, after) = (distance(&raw, w, i, j), distance(&mapped, w, i, j));
            assert!((before - after).abs() <= 1e-4 * before.max(1e-6), "{readout}: distance {i}-{j}: {before} vs {after}");
        }
        assert!(raw.iter().zip(&mapped).any(|(x, y)| (x - y).abs() > 1e-3), "{readout}: the map changes the coordinates");
    }

    // The step-2 checkpoint has no axes: the raw read-out, and the note says why.
    let early = ckpts.join("step-0000002");
    let (raw_early, cells, note) = embed(&early, &h5ad, Readout::Cls, true);
    assert_eq!(cells, None);
    assert!(note.contains("no principal axes"), "{note}");
    assert_eq!(raw_early, embed(&early, &h5ad, Readout::Cls, false).0);

    // A changed axes file fails the checksum when the model is opened.
    let mut bytes = std::fs::read(last.join(AXES_FILE)).unwrap();
    let end = bytes.len() - 1;
    bytes[end] ^= 0x40;
    std::fs::write(last.join(AXES_FILE), bytes).unwrap();
    let err = ModelBundle::open(&run).unwrap_err().to_string();
    assert!(err.contains(AXES_FILE) && err.contains("SHA-256"), "{err}");
}
