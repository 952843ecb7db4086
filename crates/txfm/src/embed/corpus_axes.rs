//! Fitting a model's read-out axes ([`ReadoutAxes`]) on its training corpus: the training split's
//! cells are embedded as `txfm embed` embeds a file with this model's defaults (its K, seed,
//! preprocessing and sampling weights; every detected gene visible for a run that draws detected
//! genes first), one draw each, and the moments of their `[CLS ; token mean]` give both
//! read-outs' axes. Shards are read a row group at a time, so memory does not grow with the
//! corpus; `max_cells` bounds the time on a large one by a fixed, seeded subsample.
//!
//! Training does this for its final checkpoint; [`write_axes_bundle`] (`txfm axes`) does it for
//! any model — one trained before txfm fitted axes, or an intermediate checkpoint — into a new
//! bundle folder, leaving the model's own folder as it was.

use std::path::Path;

use tch::Device;

use super::sampler::{weights_from_corpus, HostVisible, Sampler};
use crate::config::RunConfig;
use crate::corpus::Corpus;
use crate::atomic::temp_dir_beside;
use crate::model::bundle::{write_sums, BUNDLE_FILES, CONFIG_FILE, GENES_FILE, MODEL_FILE};
use crate::model::{AxesAccumulator, ModelBundle, Readout, ReadoutAxes, TxFm, AXES_FILE};
use crate::runtime::{autocast_for, with_autocast, DeviceSpec};
use crate::train::loader::{sample_uniform, Split};
use crate::train::vocab::{VocabMap, Vocabulary};
use crate::{Error, Result};

/// Samples per forward pass at most.
const BATCH: usize = 256;
/// Token slots (rows × the widest row's visible genes) per forward pass at most. A corpus mixing
/// shallow cells with deep cells or bulk profiles (thousands of detected genes, all visible)
/// would otherwise pad every row of a batch to its deepest one: on the shared corpus that made
/// the fit take 3 minutes after a 4-minute training run. Rows are also grouped by width.
const BATCH_TOKENS: usize = 1 << 16;

/// Whether training sample `sample` is among the ones fitted when a fraction `keep` of them is:
/// a hash of (seed, sample) on a stream of its own, independent of the split's.
fn kept(sample: u64, seed: u64, keep: f64) -> bool {
    const AXES_STREAM: u64 = 0xA7E5_0F17_5EED_0001;
    keep >= 1.0 || sample_uniform(AXES_STREAM, seed, sample) < keep
}

/// Fits the read-out axes of `model` (of run `config`, whose vocabulary `to_model` maps `corpus`
/// onto) on up to `max_cells` cells of the corpus's training split. `on_cells` is called with
/// the cells embedded so far.
pub fn fit_axes_on_corpus(
    model: &TxFm,
    config: &RunConfig,
    corpus: &Corpus,
    to_model: &VocabMap,
    device: Device,
    max_cells: usize,
    on_cells: &mut dyn FnMut(u64),
) -> Result<ReadoutAxes> {
    // Embedding's defaults, with the weights over the corpus's vocabulary (as the loader's).
    let tau = config.loader.tau;
    let weights = (tau != 0.0).then(|| weights_from_corpus(corpus, &corpus.var_names, tau));
    let sampler = Sampler::of_run(config, None, None, weights);
    let (seed, fraction) = (config.loader.seed, config.loader.validation_fraction);
    let n_train = (corpus.n_samples() as f64 * (1.0 - fraction)).max(1.0);
    // A little over the share, so that the cap, not the hash, usually decides the count.
    let keep = 1.05 * max_cells as f64 / n_train;
    let autocast = autocast_for(device, config.requested_autocast())?;
    let mut acc = AxesAccumulator::new(config.model.d_model);
    let mut embed_batch = |draws: &[(Vec<u32>, Vec<f32>)], acc: &mut AxesAccumulator| -> Result<()> {
        let mut host = HostVisible::from_draws(draws);
        for g in host.genes.iter_mut() {
            *g = to_model.model_gene(*g as u32);
        }
        let visible = host.to_tensors(device);
        let out = tch::no_grad(|| with_autocast(device, autocast, || model.embed(&visible, Readout::ClsMean)));
        let rows: Vec<f32> = Vec::try_from(out.to_device(Device::Cpu).to_kind(tch::Kind::Float).flatten(0, -1))?;
        if let Some(bad) = rows.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "corpus {}: an embedding is not finite ({}) while fitting the read-out's principal axes",
                corpus.dir.display(),
                rows[bad]
            )));
        }
        acc.add(&rows);
        on_cells(acc.n_rows());
        Ok(())
    };
    // Embeds the pending draws, narrowest first, in batches of at most BATCH rows and
    // BATCH_TOKENS padded token slots (a row wider than that goes alone).
    let mut embed = |draws: &mut Vec<(Vec<u32>, Vec<f32>)>, acc: &mut AxesAccumulator| -> Result<()> {
        draws.sort_by_key(|d| d.0.len());
        let mut start = 0;
        while start < draws.len() {
            let mut end = start + 1;
            while end < draws.len() && end - start < BATCH && (end + 1 - start) * draws[end].0.len() <= BATCH_TOKENS {
                end += 1;
            }
            embed_batch(&draws[start..end], acc)?;
            start = end;
        }
        draws.clear();
        Ok(())
    };
    // A row group's draws are embedded together: sorting them by width keeps the padding small.
    let mut draws: Vec<(Vec<u32>, Vec<f32>)> = Vec::new();
    'shards: for shard in 0..corpus.shard_paths().len() {
        let reader = corpus.shard(shard)?;
        for group in 0..reader.n_row_groups() {
            let raw = reader.read_row_groups(vec![group])?;
            let counts = corpus.to_vocab(&raw);
            for i in 0..counts.n_rows() {
                let sample = raw.sample[i];
                if Split::of(sample, seed, fraction) != Split::Train || !kept(sample, seed, keep) {
                    continue;
                }
                if acc.n_rows() as usize + draws.len() >= max_cells {
                    break 'shards;
                }
                let dataset = raw.dataset[i] as usize;
                let profiled = corpus.profiled.get(dataset).ok_or_else(|| {
                    Error::format(&corpus.shard_paths()[shard], format!("sample {sample}: dataset {dataset} not in corpus.json"))
                })?;
                let (genes, values) = counts.row(i);
                draws.push(sampler.draw(profiled, genes, values, raw.library_size[i], 0, sample));
            }
            embed(&mut draws, &mut acc)?;
        }
    }
    embed(&mut draws, &mut acc)?;
    acc.finish().map_err(|e| Error::Invalid(format!("corpus {}: {e}", corpus.dir.display())))
}

/// Fits the read-out axes of the model `model` names (a run, checkpoint or bundle folder) on up
/// to `max_cells` training-split cells of the corpus in `corpus` (the model's own training corpus
/// for the axes its run would have fitted; every corpus gene must be in the model's vocabulary)
/// and writes a bundle into the new folder `out`: the model's weights, config and genes, the axes
/// and their checksums. `out` must not exist; it appears whole or not at all.
pub fn write_axes_bundle(model: &Path, corpus: &Path, out: &Path, max_cells: usize, device: DeviceSpec, on_cells: &mut dyn FnMut(u64)) -> Result<ReadoutAxes> {
    if out.exists() {
        return Err(Error::Invalid(format!("{}: already exists; choose a new folder for the bundle with axes", out.display())));
    }
    if max_cells < 2 {
        return Err(Error::Invalid(format!("principal axes need at least 2 cells, got a cap of {max_cells}")));
    }
    let bundle = ModelBundle::open(model)?;
    let corpus = Corpus::open(corpus)?;
    let vocab = Vocabulary { names: bundle.var_names.clone(), symbols: bundle.var_symbols.clone() };
    let map = VocabMap::new(&vocab, &corpus, &bundle.dir.join(GENES_FILE).display().to_string())?;
    let device = device.resolve()?;
    let (_vs, txfm) = bundle.load_weights(device)?;
    let axes = fit_axes_on_corpus(&txfm, &bundle.config, &corpus, &map, device, max_cells, on_cells)?;
    let tmp = temp_dir_beside(out)?;
    for name in [MODEL_FILE, CONFIG_FILE, GENES_FILE] {
        let (from, to) = (bundle.dir.join(name), tmp.path().join(name));
        std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
    }
    axes.save(&tmp.path().join(AXES_FILE))?;
    write_sums(tmp.path(), BUNDLE_FILES)?;
    std::fs::rename(tmp.keep(), out).map_err(|e| Error::io(out, e))?;
    Ok(axes)
}

#[cfg(test)]
mod tests {
    use super::kept;

    #[test]
    fn the_subsample_keeps_about_its_share() {
        let n = (0..20_000u64).filter(|&s| kept(s, 3, 0.25)).count();
        assert!((4_700..5_300).contains(&n), "{n} of 20000 at 25%");
        assert!((0..100u64).all(|s| kept(s, 3, 1.0)));
        assert_ne!((0..64u64).filter(|&s| kept(s, 3, 0.5)).collect::<Vec<_>>(), (0..64u64).filter(|&s| kept(s, 4, 0.5)).collect::<Vec<_>>(), "seeded");
    }
}
