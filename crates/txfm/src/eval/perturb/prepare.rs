//! The embeddings a benchmark compares, computed on the benchmark's own file in one call: the
//! CLS embedding of a trained model (`X_txfm`), PCA (`X_pca`) and (Lib+Log)Norm (`X_libnorm`), by
//! the same code as `txfm embed` and `txfm baseline`. This is what lets `txfm bench perturb
//! --model RUN --baseline pca --baseline libnorm` (and the quickstart) go from raw counts to the
//! full table in one command.
//!
//! Each stage reads the input and writes its embedding alone (an `.npy`, or an `.h5ad` without X);
//! one streamed pass then copies the input (obs, var, X, its obsm) with every new key added. The
//! input's X is read once per stage and written once, however many stages there are.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::baseline::scvi::{model_dir_beside, write_scvi};
use crate::baseline::{fit_pca, write_libnorm, CountInput, LibNormConfig, PcaConfig, PcaOutputs};
use crate::data::h5ad::obsm::{H5adCopy, ObsmReader};
use crate::data::SourceOptions;
use crate::embed::npy::{obs_sidecar_path, NpyRows};
use crate::embed::{EmbedJob, EmbedOptions, EmbedSummary, OutputFormat};
use crate::model::{PrincipalAxes, Readout};
use crate::{Error, Result};

/// Where [`prepare`] puts the `[CLS ; token mean]` read-out ([`Readout::ClsMean`]), beside the
/// CLS in `X_txfm`.
pub const CLS_MEAN_KEY: &str = "X_txfm_cls_mean";

/// A baseline embedding computed from the input's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// `X_pca`: 50 principal components of LibNorm(1e4)+log1p, as scanpy's `pp.pca`.
    Pca,
    /// `X_libnorm`: LibNorm(1e4)+log1p of the 2,000 most variable genes (all, if fewer).
    Libnorm,
    /// `X_scvi`: scVI's posterior mean, fitted on the input (scvi-tools' defaults, the batches
    /// as its covariate).
    Scvi,
}

impl Baseline {
    pub fn obsm_key(self) -> &'static str {
        match self {
            Baseline::Pca => crate::baseline::pca::OBSM_KEY,
            Baseline::Libnorm => crate::baseline::libnorm::OBSM_KEY,
            Baseline::Scvi => crate::baseline::scvi::OBSM_KEY,
        }
    }
}

impl std::str::FromStr for Baseline {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pca" => Ok(Baseline::Pca),
            "libnorm" => Ok(Baseline::Libnorm),
            "scvi" => Ok(Baseline::Scvi),
            _ => Err(Error::Invalid(format!("baseline '{s}': expected pca, libnorm or scvi"))),
        }
    }
}

/// What to add to the input.
#[derive(Debug, Clone, Default)]
pub struct Prepare {
    /// A run or checkpoint folder whose embedding goes into `obsm['X_txfm']`, with these options
    /// (its `model`, `input`, `output` and `key` are set here). With `embed.readout` =
    /// [`Readout::ClsMean`], `X_txfm` holds the CLS and [`CLS_MEAN_KEY`] `[CLS ; token mean]`.
    pub model: Option<PathBuf>,
    pub embed: EmbedOptions,
    pub baselines: Vec<Baseline>,
    /// The h5ad matrix holding raw counts; must be `None` (X), which the copy carries.
    pub layer: Option<String>,
    /// scVI's settings and its batch covariate (the benchmark's batch column).
    pub scvi: crate::baseline::scvi::ScviConfig,
    pub batch_key: Option<String>,
}

/// What [`prepare`] wrote.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The h5ad holding the input's obs, var, X and obsm plus the new keys.
    pub h5ad: PathBuf,
    /// The keys added, in the order computed.
    pub keys: Vec<String>,
    pub embed: Option<EmbedSummary>,
    /// Total explained-variance ratio of the PCA components, if PCA was computed.
    pub pca_variance: Option<f64>,
    pub warnings: Vec<String>,
}

/// Adds the requested embeddings to a copy of `input` written at `output` (`output` must differ
/// from `input`; each stage writes a temporary file beside `output`, removed at the end, also on
/// error). PCA loadings and explained variance land beside `output` as `<stem>.pca.pcs.tsv` /
/// `<stem>.pca.pca.json`, LibNorm's genes as `<stem>.libnorm.genes.tsv`.
pub fn prepare(input: &Path, output: &Path, what: &Prepare, progress: &indicatif::ProgressBar) -> Result<Prepared> {
    if input == output {
        return Err(Error::Invalid(format!("{}: the prepared copy needs a path other than the input's", output.display())));
    }
    if let Some(layer) = &what.layer {
        // The copy carries X, obs, var and obsm, not layers: the benchmark would read X where the
        // counts are not.
        return Err(Error::format(
            input,
            format!("raw counts in layer '{layer}': adding embeddings needs them in X (in Python: adata.X = adata.layers['{layer}'])"),
        ));
    }
    if what.model.is_none() && what.baselines.is_empty() {
        return Err(Error::Invalid("nothing to prepare: give a model or a baseline".into()));
    }
    let mut temporaries = Vec::new();
    let outcome = prepare_stages(input, output, what, progress, &mut temporaries);
    for t in temporaries.iter().filter(|t| t.exists()) {
        // A leftover temporary is untidy but harms nothing; the outcome is what matters.
        let _ = std::fs::remove_file(t);
    }
    outcome
}

/// One stage's embedding, read back row block by row block for the final copy.
enum StageRows {
    Npy(NpyRows),
    /// The leading `usize` columns of an `.npy`: the CLS half of a `[CLS ; token mean]` embedding.
    NpyLeading(NpyRows, usize),
    Obsm(ObsmReader),
    /// Another stage's rows in a read-out's principal axes.
    Axes(Box<StageRows>, PrincipalAxes),
}

impl StageRows {
    fn dim(&self) -> usize {
        match self {
            StageRows::Npy(r) => r.d,
            StageRows::NpyLeading(_, d) => *d,
            StageRows::Obsm(r) => r.dim(),
            StageRows::Axes(r, _) => r.dim(),
        }
    }

    fn read_rows(&self, rows: std::ops::Range<usize>) -> Result<Vec<f32>> {
        match self {
            StageRows::Npy(r) => r.read_rows(rows),
            StageRows::NpyLeading(r, d) => Ok(r.read_rows(rows)?.chunks(r.d).flat_map(|row| &row[..*d]).copied().collect()),
            StageRows::Obsm(r) => r.read_rows(rows),
            StageRows::Axes(r, axes) => {
                let mut out = r.read_rows(rows)?;
                axes.apply(&mut out);
                Ok(out)
            }
        }
    }
}

/// Rows per block of the final copy.
const COPY_ROWS: usize = 8192;

fn prepare_stages(input: &Path, output: &Path, what: &Prepare, progress: &indicatif::ProgressBar, temporaries: &mut Vec<PathBuf>) -> Result<Prepared> {
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "cells".into());
    let stage = |name: &str| output.with_file_name(format!("{stem}.{name}"));
    let source = SourceOptions::default();
    let mut out = Prepared { h5ad: output.to_path_buf(), keys: vec![], embed: None, pca_variance: None, warnings: vec![] };
    let mut stages: Vec<StageRows> = Vec::new();

    if let Some(model) = &what.model {
        let npy = stage("txfm.npy");
        temporaries.extend([npy.clone(), obs_sidecar_path(&npy)]);
        let opts = EmbedOptions {
            model: model.clone(),
            input: input.to_path_buf(),
            output: npy.clone(),
            format: Some(OutputFormat::Npy),
            key: "X_txfm".into(),
            source: source.clone(),
            ..what.embed.clone()
        };
        if what.embed.readout == Readout::ClsMean {
            // One pass gives both: the CLS is the first half of the raw [CLS ; token mean], bit
            // for bit, so the paper's embedding stays X_txfm and the wider read-out sits beside
            // it, each then mapped into its own principal axes.
            let job = EmbedJob::prepare(EmbedOptions { principal_axes: false, ..opts })?;
            let axes = if what.embed.principal_axes { job.embedder.bundle.axes()? } else { None };
            let mut summary = job.run(progress)?;
            summary.files = vec![output.to_path_buf()];
            summary.axes_cells = axes.as_ref().map(|a| a.n_cells);
            let (cls, both) = (StageRows::NpyLeading(NpyRows::open(&npy)?, summary.dim / 2), StageRows::Npy(NpyRows::open(&npy)?));
            match axes {
                Some(a) => stages.extend([StageRows::Axes(Box::new(cls), a.cls), StageRows::Axes(Box::new(both), a.cls_mean)]),
                None => stages.extend([cls, both]),
            }
            out.keys.extend(["X_txfm".into(), CLS_MEAN_KEY.into()]);
            out.embed = Some(summary);
        } else {
            let mut summary = EmbedJob::prepare(opts)?.run(progress)?;
            summary.files = vec![output.to_path_buf()];
            stages.push(StageRows::Npy(NpyRows::open(&npy)?));
            out.keys.push("X_txfm".into());
            out.embed = Some(summary);
        }
    }
    for &baseline in &what.baselines {
        let next = match baseline {
            Baseline::Pca => stage("pca.h5ad"),
            Baseline::Libnorm => stage("libnorm.h5ad"),
            Baseline::Scvi => stage("scvi.h5ad"),
        };
        temporaries.push(next.clone());
        let mut counts = CountInput::open(input, &source)?;
        match baseline {
            Baseline::Pca => {
                let pca = fit_pca(&mut counts, &PcaConfig::default(), &mut |_| {})?;
                pca.write(&mut counts, &PcaOutputs::beside(&next), true)?;
                out.pca_variance = Some(pca.explained_variance_ratio.iter().sum());
                out.warnings.extend(pca.convergence_warning());
            }
            Baseline::Libnorm => {
                write_libnorm(&mut counts, &LibNormConfig::default(), &next, true, &mut |_| {})?;
            }
            Baseline::Scvi => {
                // Fitted on the screen itself with scvi-tools' defaults, the batches as its
                // covariate; the model folder stays beside the output (`<stem>.scvi/`).
                let device = what.embed.device.resolve()?;
                write_scvi(&mut counts, &what.scvi, what.batch_key.as_deref(), None, device, &next, true, &mut |_, _| {})?;
                let keep = model_dir_beside(output);
                if keep.exists() {
                    std::fs::remove_dir_all(&keep).map_err(|e| Error::io(&keep, e))?;
                }
                std::fs::rename(model_dir_beside(&next), &keep).map_err(|e| Error::io(&keep, e))?;
            }
        }
        stages.push(StageRows::Obsm(ObsmReader::open(&next, baseline.obsm_key())?));
        out.keys.push(baseline.obsm_key().into());
    }

    let keys: Vec<&str> = out.keys.iter().map(String::as_str).collect();
    let mut copy = H5adCopy::create(input, output, &keys)?;
    let n = copy.n_obs();
    let mut start = 0;
    while start < n {
        let rows = start..(start + COPY_ROWS).min(n);
        let values = stages.iter().map(|s| s.read_rows(rows.clone())).collect::<Result<Vec<_>>>()?;
        let entries: Vec<(&str, usize, &[f32])> = keys.iter().zip(&stages).zip(&values).map(|((k, s), v)| (*k, s.dim(), v.as_slice())).collect();
        copy.append(rows.len(), &entries)?;
        start = rows.end;
    }
    out.warnings.extend(copy.warnings().iter().cloned());
    copy.finish()?;
    Ok(out)
}
