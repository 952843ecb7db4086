//! The benchmark as users ask for it, shared by `txfm bench perturb` and the Python package's
//! `txfm.bench.perturb`: settings → (optionally) embed the input and fit baselines into a copy →
//! read labels, embeddings and expression → run → write `report.json`, `report.md` and the plots.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::guides::load_guide_labels;
use super::input::{labels_from_obs, load_assigned, InputConfig, PerturbInput};
use super::postprocess::PostProcess;
use super::prepare::{prepare, Baseline, Prepare, Prepared};
use super::report::PerturbReport;
use super::run::{run, PerturbConfig};
use crate::data::{open_source, SourceOptions};
use crate::embed::EmbedOptions;
use crate::model::Readout;
use crate::eval::annotations::load_paths;
use crate::{Error, Result};

/// The benchmark's settings as the command line and the Python package take them; each set field
/// overrides the base config (`config_file`, else the reference or the quick settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchSettings {
    /// A JSON file of [`PerturbConfig`] fields.
    pub config_file: Option<PathBuf>,
    /// Short probe and decoder training (a quick look, not the reference settings).
    pub quick: bool,
    /// Seeds (splits) 0..seeds.
    pub seeds: usize,
    pub postprocess: Vec<PostProcess>,
    /// Compute inv (the decoder, the slowest metric).
    pub inv: bool,
    /// Device for embedding and for the probes and decoders: cpu, cuda, cuda:N or auto.
    pub device: String,
    pub knn_k: Option<usize>,
    pub perplexity: Option<usize>,
    pub probe_epochs: Option<usize>,
    pub inv_epochs: Option<usize>,
    /// The inv decoder under bfloat16 autocast (not the reference's float32; see
    /// [`super::reconstruct::ReconstructConfig::autocast`]).
    pub inv_bf16: bool,
}

impl Default for BenchSettings {
    fn default() -> Self {
        BenchSettings {
            config_file: None,
            quick: false,
            seeds: 3,
            postprocess: vec![PostProcess::None, PostProcess::Center, PostProcess::Scale, PostProcess::Tvn],
            inv: true,
            device: "auto".into(),
            knn_k: None,
            perplexity: None,
            probe_epochs: None,
            inv_epochs: None,
            inv_bf16: false,
        }
    }
}

impl BenchSettings {
    pub fn config(&self) -> Result<PerturbConfig> {
        if self.seeds == 0 {
            return Err(Error::Invalid("the benchmark needs at least one seed".into()));
        }
        let mut cfg = match &self.config_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                serde_json::from_str::<PerturbConfig>(&text).map_err(|e| Error::format(p, format!("invalid benchmark config: {e}")))?
            }
            None if self.quick => PerturbConfig::quick(),
            None => PerturbConfig::default(),
        };
        cfg = cfg.with_seeds(self.seeds);
        cfg.postprocess = self.postprocess.clone();
        cfg.inv &= self.inv;
        cfg.device = self.device.clone();
        if self.knn_k.is_some() {
            cfg.knn_k = self.knn_k;
        }
        if let Some(p) = self.perplexity {
            cfg.lisi.perplexity = p;
        }
        if let Some(e) = self.probe_epochs {
            cfg.probe.fit.epochs = e;
        }
        if let Some(e) = self.inv_epochs {
            cfg.reconstruct.fit.epochs = e;
        }
        if self.inv_bf16 {
            cfg.reconstruct.autocast = Some(crate::runtime::AutocastDtype::Bf16);
        }
        Ok(cfg)
    }
}

/// What to compute besides the embeddings already in `obsm`.
#[derive(Debug, Clone, Default)]
pub struct Additions {
    /// Embed the input with this run (or checkpoint, or model bundle) as `X_txfm`.
    pub model: Option<PathBuf>,
    /// [`Readout::ClsMean`] also adds `X_txfm_cls_mean` ([`super::prepare::CLS_MEAN_KEY`]).
    pub readout: Readout,
    pub baselines: Vec<Baseline>,
    /// Epochs of the scVI baseline (default: scvi-tools' rule).
    pub scvi_max_epochs: Option<usize>,
}

/// A finished benchmark and the files it wrote.
#[derive(Debug, Clone)]
pub struct BenchOutcome {
    pub report: PerturbReport,
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub plots: Vec<PathBuf>,
    /// With [`Additions`]: the copy of the input holding the new embeddings (`OUT/cells.h5ad`).
    pub prepared: Option<Prepared>,
}

/// The benchmark of an `.h5ad` file: `input.obsm_keys` plus what `add` computes (embedded and
/// fitted into `out/cells.h5ad`, which is then benchmarked). `status` hears each stage.
#[allow(clippy::too_many_arguments)]
pub fn bench_file(
    path: &Path,
    input: &InputConfig,
    add: &Additions,
    settings: &BenchSettings,
    annotations: &[PathBuf],
    out: &Path,
    status: &mut dyn FnMut(&str),
    progress: &ProgressBar,
) -> Result<BenchOutcome> {
    let cfg = settings.config()?;
    let dbs = load_paths(annotations)?;
    let mut input = input.clone();
    let mut input_path = path.to_path_buf();
    let mut prepared = None;
    let mut assigned = None;
    if add.model.is_some() || !add.baselines.is_empty() {
        // Check the labels before spending minutes on embeddings. The guide matrix's assignment
        // is kept for the copy benchmarked below, which has the same cells in the same order.
        match &input.guides {
            Some(g) => {
                assigned = Some(load_guide_labels(path, g, &input.control)?);
            }
            None => {
                let src = open_source(path, &SourceOptions::default())?;
                labels_from_obs(src.obs(), &input, path)?;
            }
        }
        let what = Prepare {
            model: add.model.clone(),
            embed: EmbedOptions { device: settings.device.parse()?, readout: add.readout, ..EmbedOptions::default() },
            baselines: add.baselines.clone(),
            layer: input.layer.clone(),
            scvi: crate::baseline::scvi::ScviConfig { max_epochs: add.scvi_max_epochs, ..Default::default() },
            batch_key: Some(input.batch_key.clone()),
        };
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let cells = out.join("cells.h5ad");
        status(&format!("adding {} to {} ...", if what.model.is_some() { "X_txfm and baselines" } else { "baselines" }, cells.display()));
        let done = prepare(path, &cells, &what, &ProgressBar::hidden())?;
        for k in &done.keys {
            if !input.obsm_keys.contains(k) {
                input.obsm_keys.push(k.clone());
            }
        }
        input_path = cells;
        prepared = Some(done);
    }
    if input.obsm_keys.is_empty() {
        return Err(Error::Invalid("nothing to evaluate: give an obsm key, a model or a baseline (pca, libnorm, scvi)".into()));
    }
    status(&format!("reading {} ...", input_path.display()));
    let loaded = load_assigned(&input_path, &input, assigned)?;
    let mut outcome = bench_loaded(&loaded, &cfg, &dbs, out, progress)?;
    outcome.prepared = prepared;
    Ok(outcome)
}

/// Runs the benchmark on an input already read (from a file by [`load`], or from memory by
/// [`super::input::load_in_memory`]) and writes `report.json`, `report.md` and the plots to `out`.
pub fn bench_loaded(
    input: &PerturbInput,
    cfg: &PerturbConfig,
    dbs: &[crate::eval::annotations::PairDatabase],
    out: &Path,
    progress: &ProgressBar,
) -> Result<BenchOutcome> {
    let report = run(input, dbs, cfg, progress)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let (json, markdown) = (out.join("report.json"), out.join("report.md"));
    report.write_json(&json)?;
    report.write_markdown(&markdown)?;
    let plots = super::plots::write_plots(&report, out)?;
    Ok(BenchOutcome { report, json, markdown, plots, prepared: None })
}
