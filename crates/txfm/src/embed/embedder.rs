//! The embedding loop: a checkpoint's encoder, in evaluation mode (no stochastic depth) and
//! without gradients, turns each input row's visible genes into its embedding (the CLS, or
//! [CLS ; token mean]: [`Readout`]), averaged over `samplings` independent draws of the visible
//! genes, and mapped into the model's principal axes when asked ([`Embedder::use_axes`]).
//!
//! The input is streamed: a reader thread reads row chunks, maps them onto the model's genes and
//! hands them over (two chunks in flight at most) while this thread runs the encoder, so memory
//! is a few chunks whatever `n_obs` is.

use std::path::Path;
use std::sync::mpsc::sync_channel;

use indicatif::ProgressBar;
use tch::{nn, Device, Tensor};

use super::genes::{GeneMap, ModelRows};
use super::sampler::Sampler;
use crate::data::{CsrChunk, ExpressionSource};
use crate::model::{ModelBundle, PrincipalAxes, Readout, TxFm};
use crate::runtime::{autocast_for, with_autocast, AutocastDtype};
use crate::{Error, Result};

/// A loaded model ready to embed.
pub struct Embedder {
    pub bundle: ModelBundle,
    /// Owns the weights `model` reads.
    _vs: nn::VarStore,
    model: TxFm,
    device: Device,
    /// The encoder's precision: on CUDA the autocast its run trained under; on CPU float32 unless
    /// `TXFM_CPU_AUTOCAST=on` ([`autocast_for`]).
    autocast: Option<AutocastDtype>,
    /// What is read from the encoder's output tokens ([`Readout::Cls`] unless set).
    pub readout: Readout,
    /// The read-out's principal axes the embeddings are mapped into; `None` (unless
    /// [`Embedder::use_axes`] set them): the raw read-out.
    pub axes: Option<PrincipalAxes>,
    /// Cells [`Self::axes`] were fitted on.
    pub axes_cells: Option<u64>,
}

impl Embedder {
    /// Loads the model `path` names ([`ModelBundle::open`]: a run, checkpoint or bundle folder)
    /// onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let bundle = ModelBundle::open(path)?;
        let (vs, model) = bundle.load_weights(device)?;
        let autocast = autocast_for(device, bundle.config.requested_autocast())?;
        Ok(Embedder { bundle, _vs: vs, model, device, autocast, readout: Readout::Cls, axes: None, axes_cells: None })
    }

    /// Maps the embeddings of the current [`Self::readout`] into the principal axes the model
    /// carries (fitted on its training corpus at the end of training), if it has them; returns
    /// whether it does. Set the read-out first.
    pub fn use_axes(&mut self) -> Result<bool> {
        let axes = self.bundle.axes()?;
        self.axes_cells = axes.as_ref().map(|a| a.n_cells);
        self.axes = axes.map(|a| a.get(self.readout).clone());
        Ok(self.axes.is_some())
    }

    /// Embedding width: the model's `d_model`, twice that for [`Readout::ClsMean`].
    pub fn dim(&self) -> usize {
        self.readout.width(self.model.config().d_model)
    }

    /// The model's gene ids, in weight order. `[G]`
    pub fn vocab(&self) -> &[String] {
        &self.bundle.var_names
    }

    /// A sampler as the run's loader draws: its K, τ-weighting (`weights`), preprocessing and,
    /// unless `seed` is given, its `loader.seed`. Without an explicit `k`, a run that draws
    /// detected genes first (`loader.zero_weight < 1`) shows each sample all its detected genes,
    /// and at least the model's K: on the quickstart screen this lifted the benchmark average
    /// from 27.8 to 37.6 over the training K, the same weights (docs/experiments.md § 2.4). With an explicit `k`, or a
    /// run drawn the paper's way, each sample shows exactly K genes, as the loader drew them.
    pub fn sampler(&self, seed: Option<u64>, k: Option<usize>, weights: Option<Vec<f64>>) -> Sampler {
        Sampler::of_run(&self.bundle.config, seed, k, weights)
    }

    /// Embeddings ([`Embedder::readout`], in [`Embedder::axes`] if set) of every row of `rows`, averaged over samplings
    /// `0..samplings`, encoded `batch_size` rows at a time. Row-major `[rows.n_rows(), dim()]`.
    pub fn embed_rows(&self, rows: &ModelRows, profiled: &[u32], sampler: &Sampler, samplings: usize, batch_size: usize) -> Vec<f32> {
        let (n, d) = (rows.n_rows(), self.dim());
        let mut out = vec![0.0f32; n * d];
        for s in 0..samplings {
            for start in (0..n).step_by(batch_size.max(1)) {
                let end = (start + batch_size).min(n);
                let visible = sampler.visible(rows, profiled, s as u64, start..end).to_tensors(self.device);
                let cls: Tensor = tch::no_grad(|| with_autocast(self.device, self.autocast, || self.model.embed(&visible, self.readout)));
                let cls: Vec<f32> = Vec::try_from(cls.to_device(Device::Cpu).to_kind(tch::Kind::Float).flatten(0, -1))
                    .expect("a float tensor converts to Vec<f32>");
                for (o, c) in out[start * d..end * d].iter_mut().zip(cls) {
                    *o += c;
                }
            }
        }
        if samplings > 1 {
            let scale = 1.0 / samplings as f32;
            out.iter_mut().for_each(|v| *v *= scale);
        }
        if let Some(axes) = &self.axes {
            assert_eq!(axes.width(), d, "use_axes is called after the read-out is set");
            axes.apply(&mut out);
        }
        out
    }

    /// Embeds every row of `src` in order, `chunk_rows` rows per read, calling `out` with each
    /// chunk as read (columns = input vars) and its embeddings `[chunk rows, d]`.
    #[allow(clippy::too_many_arguments)]
    pub fn embed_source(
        &self,
        src: &mut dyn ExpressionSource,
        genes: &GeneMap,
        sampler: &Sampler,
        samplings: usize,
        batch_size: usize,
        chunk_rows: usize,
        progress: &ProgressBar,
        mut out: impl FnMut(&CsrChunk, &[f32]) -> Result<()>,
    ) -> Result<()> {
        if samplings == 0 || batch_size == 0 || chunk_rows == 0 || sampler.k == 0 {
            return Err(Error::Invalid("samplings, batch size, chunk rows and K must be positive".into()));
        }
        let n = src.n_obs();
        let (tx, rx) = sync_channel::<Result<(CsrChunk, ModelRows)>>(2);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut start = 0;
                while start < n {
                    let end = (start + chunk_rows).min(n);
                    let item = src.read_rows(start, end).map(|chunk| {
                        let rows = genes.rows(chunk.clone());
                        (chunk, rows)
                    });
                    let failed = item.is_err();
                    if tx.send(item).is_err() || failed {
                        return;
                    }
                    start = end;
                }
            });
            // Leaving early drops `rx`, which stops the reader at its next send.
            for item in rx {
                let (chunk, rows) = item?;
                let emb = self.embed_rows(&rows, &genes.profiled, sampler, samplings, batch_size);
                out(&chunk, &emb)?;
                progress.inc(rows.n_rows() as u64);
            }
            Ok(())
        })
    }
}
