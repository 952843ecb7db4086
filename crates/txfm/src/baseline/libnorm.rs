//! The paper's "(Lib+Log)Norm" baseline: each sample's log1p(library-normalised counts) as its
//! embedding, `obsm['X_libnorm']` (dense `[n_obs, n_genes kept]`).
//!
//! A dense row per sample over 20,000+ genes would make the embedding larger than the counts, and
//! most of those genes are near-constant noise to a nearest-neighbour or linear probe, so wide
//! inputs keep their `n_top_genes` (default 2,000, scanpy's customary number) Seurat-flavour
//! highly variable genes; inputs no wider than that keep every gene. The genes kept are written
//! beside the h5ad (`<out>.genes.tsv`), in column order.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hvg::{highly_variable_seurat, GeneStats, DEFAULT_BINS};
use super::input::CountInput;
use super::output::ObsmSink;
use crate::atomic::Staged;
use crate::preprocess::Preprocess;
use crate::{Error, Result};

pub const OBSM_KEY: &str = "X_libnorm";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LibNormConfig {
    pub target_sum: f64,
    /// Keep this many highly variable genes when the input has more; `None` keeps all.
    pub n_top_genes: Option<usize>,
}

impl Default for LibNormConfig {
    fn default() -> Self {
        LibNormConfig { target_sum: super::pca::SCANPY_TARGET_SUM, n_top_genes: Some(2000) }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibNormSummary {
    pub h5ad: PathBuf,
    pub genes: PathBuf,
    pub n_obs: usize,
    pub n_vars_input: usize,
    /// Embedding width: genes kept.
    pub n_genes: usize,
    pub config: LibNormConfig,
    pub warnings: Vec<String>,
}

/// The genes LibNorm keeps for `input`: its HVGs when it has more than `n_top_genes`, else all
/// (one statistics pass in the first case). Input var indices, increasing.
fn kept_genes(input: &mut CountInput, config: &LibNormConfig, on_rows: &mut dyn FnMut(usize)) -> Result<Vec<usize>> {
    if !(config.target_sum.is_finite() && config.target_sum > 0.0) {
        return Err(Error::Invalid(format!("target_sum must be positive, got {}", config.target_sum)));
    }
    Ok(match config.n_top_genes {
        Some(n) if n < input.n_vars() => {
            let stats = GeneStats::compute(input, config.target_sum)?;
            on_rows(stats.n_obs);
            highly_variable_seurat(&stats, n, DEFAULT_BINS).selected
        }
        _ => (0..input.n_vars()).collect(),
    })
}

/// Streams `input`'s LibNorm rows over the genes `keep`: `emit(rows)` with row-major
/// `[chunk rows, keep.len()]` blocks, in order.
fn libnorm_rows(
    input: &mut CountInput,
    config: &LibNormConfig,
    keep: &[usize],
    on_rows: &mut dyn FnMut(usize),
    emit: &mut dyn FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    let p = keep.len();
    let mut col = vec![usize::MAX; input.n_vars()];
    for (k, &j) in keep.iter().enumerate() {
        col[j] = k;
    }
    let pre = Preprocess::LibNormLog1p { target_sum: config.target_sum };
    let mut dense = Vec::new();
    input.for_each_chunk(|chunk, lib| {
        dense.clear();
        dense.resize(lib.len() * p, 0.0f32);
        for (i, &l) in lib.iter().enumerate() {
            let (idx, val) = chunk.row(i);
            for (&j, &c) in idx.iter().zip(val) {
                let k = col[j as usize];
                if k != usize::MAX {
                    dense[i * p + k] = pre.value(c, l);
                }
            }
        }
        on_rows(lib.len());
        emit(&dense)
    })
}

/// LibNorm in memory: the genes kept (input var indices) and the features, row-major
/// `[n_obs, genes kept]` — what [`write_libnorm`] writes, for a caller that holds the data.
pub fn libnorm_features(input: &mut CountInput, config: &LibNormConfig, on_rows: &mut dyn FnMut(usize)) -> Result<(Vec<usize>, Vec<f32>)> {
    let keep = kept_genes(input, config, on_rows)?;
    let mut out = Vec::with_capacity(input.n_obs() * keep.len());
    libnorm_rows(input, config, &keep, on_rows, &mut |rows| {
        out.extend_from_slice(rows);
        Ok(())
    })?;
    Ok((keep, out))
}

/// Writes `out` with `obsm['X_libnorm']` for `input` (a copy of an h5ad input unless
/// `embedding_only`). `on_rows` reports progress over one or two passes of `n_obs` rows.
pub fn write_libnorm(
    input: &mut CountInput,
    config: &LibNormConfig,
    out: &Path,
    embedding_only: bool,
    on_rows: &mut dyn FnMut(usize),
) -> Result<LibNormSummary> {
    let keep = kept_genes(input, config, on_rows)?;
    let p = keep.len();
    let (ids, symbols) = (input.var_names.clone(), input.var_symbols.clone());
    // The gene list is staged first and renamed after the h5ad: both outputs appear, or neither.
    let genes = out.with_extension("genes.tsv");
    crate::atomic::refuse_folders(&[out, &genes])?;
    let mut tsv = String::from("gene_id\tsymbol\n");
    for &j in &keep {
        let _ = writeln!(tsv, "{}\t{}", ids[j], symbols[j]);
    }
    let staged = Staged::text(&genes, &tsv)?;
    let mut sink = ObsmSink::create(input, out, OBSM_KEY, embedding_only, &ids, &symbols)?;
    libnorm_rows(input, config, &keep, on_rows, &mut |rows| sink.append(OBSM_KEY, p, rows))?;
    let warnings = sink.finish()?;
    staged.commit()?;
    Ok(LibNormSummary {
        h5ad: out.to_path_buf(),
        genes,
        n_obs: input.n_obs(),
        n_vars_input: input.n_vars(),
        n_genes: p,
        config: *config,
        warnings,
    })
}
