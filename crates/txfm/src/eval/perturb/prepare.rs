//! The embeddings a benchmark compares, computed on the benchmark's own file in one call: the
//! CLS embedding of a trained model (`X_txfm`), PCA (`X_pca`) and (Lib+Log)Norm (`X_libnorm`),
//! each added to a copy of the h5ad by the same code as `txfm embed` and `txfm baseline`. This is
//! what lets `txfm bench perturb --model RUN --baseline pca --baseline libnorm` (and the
//! quickstart) go from raw counts to the full table in one command.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::baseline::{fit_pca, write_libnorm, CountInput, LibNormConfig, PcaConfig, PcaOutputs};
use crate::data::SourceOptions;
use crate::embed::{EmbedJob, EmbedOptions, EmbedSummary};
use crate::{Error, Result};

/// A baseline embedding computed from the input's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// `X_pca`: 50 principal components of LibNorm(1e4)+log1p, as scanpy's `pp.pca`.
    Pca,
    /// `X_libnorm`: LibNorm(1e4)+log1p of the 2,000 most variable genes (all, if fewer).
    Libnorm,
}

impl Baseline {
    pub fn obsm_key(self) -> &'static str {
        match self {
            Baseline::Pca => crate::baseline::pca::OBSM_KEY,
            Baseline::Libnorm => crate::baseline::libnorm::OBSM_KEY,
        }
    }
}

impl std::str::FromStr for Baseline {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pca" => Ok(Baseline::Pca),
            "libnorm" => Ok(Baseline::Libnorm),
            _ => Err(Error::Invalid(format!("baseline '{s}': expected pca or libnorm"))),
        }
    }
}

/// What to add to the input.
#[derive(Debug, Clone, Default)]
pub struct Prepare {
    /// A run or checkpoint folder whose embedding goes into `obsm['X_txfm']`, with these options
    /// (its `model`, `input`, `output` and `key` are set here).
    pub model: Option<PathBuf>,
    pub embed: EmbedOptions,
    pub baselines: Vec<Baseline>,
    /// The h5ad matrix holding raw counts; must be `None` (X), which every copy carries.
    pub layer: Option<String>,
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
/// from `input`; each stage writes a temporary copy beside `output`, removed at the end). PCA
/// loadings and explained variance land beside `output` as `<stem>.pca.pcs.tsv` /
/// `<stem>.pca.pca.json`.
pub fn prepare(input: &Path, output: &Path, what: &Prepare, progress: &indicatif::ProgressBar) -> Result<Prepared> {
    if input == output {
        return Err(Error::Invalid(format!("{}: the prepared copy needs a path other than the input's", output.display())));
    }
    if let Some(layer) = &what.layer {
        // The copies carry X, obs, var and obsm, not layers: later stages and the benchmark
        // would read X where the counts are not.
        return Err(Error::format(
            input,
            format!("raw counts in layer '{layer}': adding embeddings needs them in X (in Python: adata.X = adata.layers['{layer}'])"),
        ));
    }
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "cells".into());
    let stage = |name: &str| output.with_file_name(format!("{stem}.{name}.h5ad"));
    let source = SourceOptions::default();
    let mut current = input.to_path_buf();
    let mut temporaries = Vec::new();
    let mut out = Prepared { h5ad: output.to_path_buf(), keys: vec![], embed: None, pca_variance: None, warnings: vec![] };

    if let Some(model) = &what.model {
        let next = stage("txfm");
        let opts = EmbedOptions {
            model: model.clone(),
            input: current.clone(),
            output: next.clone(),
            format: None,
            key: "X_txfm".into(),
            source: source.clone(),
            ..what.embed.clone()
        };
        out.embed = Some(EmbedJob::prepare(opts)?.run(progress)?);
        out.keys.push("X_txfm".into());
        temporaries.push(next.clone());
        current = next;
    }
    for &baseline in &what.baselines {
        let next = match baseline {
            Baseline::Pca => stage("pca"),
            Baseline::Libnorm => stage("libnorm"),
        };
        let mut counts = CountInput::open(&current, &source)?;
        match baseline {
            Baseline::Pca => {
                let pca = fit_pca(&mut counts, &PcaConfig::default(), &mut |_| {})?;
                out.warnings.extend(pca.write(&mut counts, &PcaOutputs::beside(&next), false)?);
                out.pca_variance = Some(pca.explained_variance_ratio.iter().sum());
            }
            Baseline::Libnorm => {
                let summary = write_libnorm(&mut counts, &LibNormConfig::default(), &next, false, &mut |_| {})?;
                out.warnings.extend(summary.warnings);
            }
        }
        out.keys.push(baseline.obsm_key().into());
        temporaries.push(next.clone());
        current = next;
    }
    if current == input {
        return Err(Error::Invalid("nothing to prepare: give a model or a baseline".into()));
    }
    std::fs::rename(&current, output).map_err(|e| Error::io(output, e))?;
    for t in temporaries.iter().filter(|t| **t != current) {
        std::fs::remove_file(t).map_err(|e| Error::io(t, e))?;
    }
    Ok(out)
}
