//! PCA baseline: scanpy's `normalize_total` → `log1p` → (optionally `highly_variable_genes`,
//! Seurat flavour) → `pca`, out of core.
//!
//! Pass 1 streams the counts for the normalised-count statistics that HVG selection ranks by. The
//! log values of the genes used are then materialised once as a sparse matrix
//! ([`super::log_cache`]: in memory up to `cache_budget_bytes`, else in an anonymous temporary
//! file) — by pass 1 itself when every gene is used, by a second pass over the input after HVG
//! selection — and their column sums give the means to centre on and the variances for the
//! explained-variance ratio. The SVD of the implicitly centred values is exact where that is cheap
//! (the smaller side a few thousand or less: [`super::exact_svd`], what scikit-learn's full solver
//! gives), else randomized ([`super::randomized_svd`], passes until a residual test holds); the
//! centred matrix is never formed. Memory:
//! O(n_obs·l + n_vars·l) with l = n_comps + oversample, plus the matrix when it fits the budget
//! (8 bytes per non-zero of the genes used).
//!
//! `target_sum` defaults to 1e4, scanpy's customary `normalize_total(target_sum=1e4)` in PCA
//! workflows, so results compare with `sc.pp.pca` directly; the model's own preprocessing uses
//! the paper's 1e5 ([`crate::preprocess::DEFAULT_TARGET_SUM`]).
//!
//! Outputs: `obsm['X_pca']` (`[n_obs, n_comps]`) in an `.h5ad`, the loadings as a TSV
//! (`gene_id`, `symbol`, `PC1`…: scanpy's `varm['PCs']`, over the genes used) and a JSON summary
//! with the explained variance and ratio (scanpy's `uns['pca']`). The h5ad writer has no `varm`
//! or `uns` yet, so those two stay beside the h5ad.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::hvg::{highly_variable_seurat, variances, GeneStats, DEFAULT_BINS};
use super::input::CountInput;
use super::log_cache::{LogCacheBuilder, DEFAULT_CACHE_BUDGET_BYTES};
use super::output::ObsmSink;
use super::progress::FitProgress;
use super::exact_svd::{exact_svd, ExactPlan, EXACT_MAX_DIM};
use super::randomized_svd::{randomized_svd, RowBlocks, Svd, SvdConfig, SvdSolver};
use crate::atomic::Staged;
use crate::data::CsrChunk;
use crate::preprocess::Preprocess;
use crate::{Error, Result};

/// scanpy's customary `normalize_total` target in PCA workflows.
pub const SCANPY_TARGET_SUM: f64 = 1e4;
/// The obsm key scanpy uses.
pub const OBSM_KEY: &str = "X_pca";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PcaConfig {
    /// Library size every sample is scaled to before log1p.
    pub target_sum: f64,
    /// Restrict to this many Seurat-flavour highly variable genes; `None` uses every gene.
    pub n_top_genes: Option<usize>,
    pub svd: SvdConfig,
    /// Most bytes the SVD's matrix (8 per non-zero of the genes used) may take in memory; a larger
    /// one is spilled to an anonymous file in the system temp dir (`TMPDIR`) and streamed from it
    /// on every pass. 0 always spills.
    #[serde(default = "default_cache_budget")]
    pub cache_budget_bytes: u64,
}

fn default_cache_budget() -> u64 {
    DEFAULT_CACHE_BUDGET_BYTES
}

impl Default for PcaConfig {
    fn default() -> Self {
        PcaConfig {
            target_sum: SCANPY_TARGET_SUM,
            n_top_genes: None,
            svd: SvdConfig::default(),
            cache_budget_bytes: DEFAULT_CACHE_BUDGET_BYTES,
        }
    }
}

/// A fitted PCA. Genes are those used (all, or the HVGs), in input order.
#[derive(Debug, Clone)]
pub struct Pca {
    pub config: PcaConfig,
    pub n_obs: usize,
    /// Input vars used. `[p]`
    pub var_indices: Vec<usize>,
    pub var_names: Vec<String>,
    pub var_symbols: Vec<String>,
    /// Mean log1p value per gene used. `[p]`
    pub mean: Vec<f64>,
    /// Principal axes, row-major `[n_comps, p]` (scikit-learn's `components_`).
    pub components: Vec<f64>,
    /// `[n_comps]`, descending.
    pub singular_values: Vec<f64>,
    /// σ² / (n_obs − 1). `[n_comps]`
    pub explained_variance: Vec<f64>,
    /// Share of the total variance (sum of the genes' variances, ddof 1). `[n_comps]`
    pub explained_variance_ratio: Vec<f64>,
    pub total_variance: f64,
    /// `obsm['X_pca']`, row-major `[n_obs, n_comps]`.
    pub scores: Vec<f32>,
    /// Size of the matrix the SVD worked on, and whether it was over the budget and on disk.
    pub matrix_bytes: u64,
    pub matrix_spilled: bool,
    /// Wall seconds of the statistics pass with building the SVD's matrix, and of the SVD passes.
    pub seconds_stats: f64,
    pub seconds_svd: f64,
    /// The solver that ran, its passes over the matrix and its last residual test (see [`Svd`]).
    pub solver: SvdSolver,
    pub passes: usize,
    pub residual: Option<f64>,
}

/// The log1p values of the genes used, chunk by chunk, and their sums for the column moments.
struct LogValues {
    pre: Preprocess,
    /// Input var → column, `u32::MAX` for genes left out. `[n_vars]`
    col: Vec<u32>,
    /// Σ x and Σ x² per column. `[p]` each
    sum: Vec<f64>,
    sumsq: Vec<f64>,
}

impl LogValues {
    /// `used`: input vars used, increasing; `n_vars` in all.
    fn new(target_sum: f64, used: &[usize], n_vars: usize) -> Self {
        let mut col = vec![u32::MAX; n_vars];
        for (k, &j) in used.iter().enumerate() {
            col[j] = k as u32;
        }
        let p = used.len();
        LogValues { pre: Preprocess::LibNormLog1p { target_sum }, col, sum: vec![0.0; p], sumsq: vec![0.0; p] }
    }

    /// `chunk: [rows, n_vars]` counts, `lib: [rows]` → `[rows, p]` log values.
    fn block(&mut self, chunk: &CsrChunk, lib: &[f64]) -> CsrChunk {
        let mut out = CsrChunk::new(chunk.row_start, self.sum.len());
        for (i, &l) in lib.iter().enumerate() {
            let (idx, val) = chunk.row(i);
            out.push_row(idx.iter().zip(val).filter_map(|(&j, &c)| {
                let k = self.col[j as usize];
                (k != u32::MAX).then(|| {
                    let x = self.pre.value(c, l);
                    self.sum[k as usize] += x as f64;
                    self.sumsq[k as usize] += x as f64 * x as f64;
                    (k, x)
                })
            }));
        }
        out
    }
}

/// Fits PCA on `input`. `progress` hears each stage (statistics, the SVD) with the passes over the
/// `n_obs` rows it expects, and each block of rows done ([`FitProgress::apply`] drives a bar).
pub fn fit_pca(input: &mut CountInput, config: &PcaConfig, progress: &mut dyn FnMut(FitProgress)) -> Result<Pca> {
    if !(config.target_sum.is_finite() && config.target_sum > 0.0) {
        return Err(Error::Invalid(format!("target_sum must be positive, got {}", config.target_sum)));
    }
    let t0 = Instant::now();
    let n_vars = input.n_vars();
    let spill_dir = std::env::temp_dir();
    let mut stats = GeneStats::new(n_vars, config.target_sum);
    let (var_indices, log, cache) = match config.n_top_genes {
        Some(n) if n < n_vars => {
            progress(FitProgress::Stage { passes: 2, name: "statistics, then the HVGs' values".into() });
            input.for_each_chunk(|chunk, lib| {
                stats.add(chunk, lib);
                progress(FitProgress::Rows(lib.len()));
                Ok(())
            })?;
            stats.check(input)?;
            let selected = highly_variable_seurat(&stats, n, DEFAULT_BINS).selected;
            let mut log = LogValues::new(config.target_sum, &selected, n_vars);
            let mut cache = LogCacheBuilder::new(selected.len(), config.cache_budget_bytes, &spill_dir);
            input.for_each_chunk(|chunk, lib| {
                progress(FitProgress::Rows(lib.len()));
                cache.push(&log.block(chunk, lib))
            })?;
            (selected, log, cache)
        }
        _ => {
            // Every gene is used, so nothing waits on the statistics: one pass does both.
            progress(FitProgress::Stage { passes: 1, name: "statistics and log values".into() });
            let all: Vec<usize> = (0..n_vars).collect();
            let mut log = LogValues::new(config.target_sum, &all, n_vars);
            let mut cache = LogCacheBuilder::new(n_vars, config.cache_budget_bytes, &spill_dir);
            input.for_each_chunk(|chunk, lib| {
                stats.add(chunk, lib);
                progress(FitProgress::Rows(lib.len()));
                cache.push(&log.block(chunk, lib))
            })?;
            stats.check(input)?;
            (all, log, cache)
        }
    };
    let mut cache = cache.finish()?;
    let seconds_stats = t0.elapsed().as_secs_f64();
    let n_obs = input.n_obs();
    let mean: Vec<f64> = log.sum.iter().map(|&s| s / n_obs as f64).collect();
    let total_variance: f64 = variances(&log.sum, &log.sumsq, n_obs).iter().sum();
    // No variance (an all-zero matrix, or every sample alike) leaves no direction to find: the
    // components would be arbitrary and their explained shares 0/0.
    if !(total_variance.is_finite() && total_variance > 0.0) {
        return Err(Error::Invalid(format!(
            "PCA: the {} samples have no variance over the genes used (total {total_variance}): an all-zero matrix, or every sample alike",
            n_obs
        )));
    }
    let var_names = var_indices.iter().map(|&j| input.var_names[j].clone()).collect();
    let var_symbols = var_indices.iter().map(|&j| input.var_symbols[j].clone()).collect();

    let t1 = Instant::now();
    let (matrix_bytes, matrix_spilled) = (cache.bytes(), cache.is_spilled());
    let svd = solve(&mut cache, &mean, &config.svd, progress)?;
    drop(cache);
    let explained_variance: Vec<f64> = svd.singular_values.iter().map(|s| s * s / (n_obs as f64 - 1.0)).collect();
    let explained_variance_ratio = explained_variance.iter().map(|v| v / total_variance).collect();
    Ok(Pca {
        config: *config,
        n_obs,
        var_indices,
        var_names,
        var_symbols,
        mean,
        components: svd.components,
        singular_values: svd.singular_values,
        explained_variance,
        explained_variance_ratio,
        total_variance,
        scores: svd.scores,
        matrix_bytes,
        matrix_spilled,
        seconds_stats,
        seconds_svd: t1.elapsed().as_secs_f64(),
        solver: svd.solver,
        passes: svd.passes,
        residual: svd.residual,
    })
}

/// Runs the configured solver; `Auto` takes the exact one where [`ExactPlan::is_cheap`] says so.
fn solve(x: &mut dyn RowBlocks, mean: &[f64], cfg: &SvdConfig, progress: &mut dyn FnMut(FitProgress)) -> Result<Svd> {
    let (n, p) = (x.n_rows(), x.n_cols());
    let plan = match cfg.solver {
        SvdSolver::Randomized => None,
        SvdSolver::Exact => Some(ExactPlan::of(x)?),
        SvdSolver::Auto if n.min(p) <= EXACT_MAX_DIM => Some(ExactPlan::of(x)?).filter(|plan| plan.is_cheap(n, p)),
        SvdSolver::Auto => None,
    };
    match plan {
        Some(plan) => exact_svd(x, mean, cfg.n_components, cfg.worker_threads(), &plan, progress),
        None => randomized_svd(x, mean, cfg, progress),
    }
}

/// What `pca.json` holds: the fit's settings and scanpy's `uns['pca']` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaSummary {
    pub input: PathBuf,
    pub n_obs: usize,
    pub n_vars_input: usize,
    pub n_vars_used: usize,
    pub config: PcaConfig,
    pub singular_values: Vec<f64>,
    pub explained_variance: Vec<f64>,
    pub explained_variance_ratio: Vec<f64>,
    pub total_variance: f64,
    #[serde(default)]
    pub matrix_bytes: u64,
    #[serde(default)]
    pub matrix_spilled: bool,
    pub seconds_stats: f64,
    pub seconds_svd: f64,
    #[serde(default)]
    pub solver: SvdSolver,
    #[serde(default)]
    pub passes: usize,
    #[serde(default)]
    pub residual: Option<f64>,
}

/// The files a PCA run writes, named after the `.h5ad` output.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaOutputs {
    pub h5ad: PathBuf,
    /// `<out>.pcs.tsv`: loadings.
    pub loadings: PathBuf,
    /// `<out>.pca.json`: [`PcaSummary`].
    pub summary: PathBuf,
}

impl PcaOutputs {
    pub fn beside(h5ad: &Path) -> Self {
        PcaOutputs {
            h5ad: h5ad.to_path_buf(),
            loadings: h5ad.with_extension("pcs.tsv"),
            summary: h5ad.with_extension("pca.json"),
        }
    }
}

impl Pca {
    pub fn n_comps(&self) -> usize {
        self.singular_values.len()
    }

    /// Set when the randomized solver ran out of passes before its residual test passed: the
    /// explained variances are then close, the trailing components' directions may not be.
    pub fn convergence_warning(&self) -> Option<String> {
        let r = self.residual?;
        (self.config.svd.tol > 0.0 && r > self.config.svd.tol).then(|| {
            format!(
                "PCA: the randomized SVD stopped after {} passes with a residual of {r:.1e} (bound {:.0e}): the trailing \
                 components may differ from the exact PCA's. Raise --n-iter or --oversample, or use --svd-solver exact",
                self.passes, self.config.svd.tol
            )
        })
    }

    pub fn summary(&self, input: &CountInput) -> PcaSummary {
        PcaSummary {
            input: input.path().to_path_buf(),
            n_obs: self.n_obs,
            n_vars_input: input.n_vars(),
            n_vars_used: self.var_indices.len(),
            config: self.config,
            singular_values: self.singular_values.clone(),
            explained_variance: self.explained_variance.clone(),
            explained_variance_ratio: self.explained_variance_ratio.clone(),
            total_variance: self.total_variance,
            matrix_bytes: self.matrix_bytes,
            matrix_spilled: self.matrix_spilled,
            seconds_stats: self.seconds_stats,
            seconds_svd: self.seconds_svd,
            solver: self.solver,
            passes: self.passes,
            residual: self.residual,
        }
    }

    /// The loadings table: `gene_id`, `symbol`, `PC1`… one row per gene used.
    pub fn loadings_tsv(&self) -> String {
        let (k, p) = (self.n_comps(), self.var_names.len());
        let mut out = String::from("gene_id\tsymbol");
        for c in 1..=k {
            let _ = write!(out, "\tPC{c}");
        }
        out.push('\n');
        for j in 0..p {
            let _ = write!(out, "{}\t{}", self.var_names[j], self.var_symbols[j]);
            for c in 0..k {
                let _ = write!(out, "\t{:e}", self.components[c * p + j] as f32);
            }
            out.push('\n');
        }
        out
    }

    /// Writes the h5ad with `obsm['X_pca']`, the loadings and the summary. `input` is the input
    /// fitted (read again for an h5ad copy's X). Returns the copy's warnings.
    pub fn write(&self, input: &mut CountInput, out: &PcaOutputs, embedding_only: bool) -> Result<Vec<String>> {
        let k = self.n_comps();
        crate::atomic::refuse_folders(&[&out.h5ad, &out.loadings, &out.summary])?;
        // The three outputs appear together: the small two are written first under temporary
        // names and renamed only after the h5ad is in place.
        let loadings = Staged::text(&out.loadings, &self.loadings_tsv())?;
        let json = serde_json::to_string_pretty(&self.summary(input)).expect("the summary serialises");
        let summary = Staged::text(&out.summary, &json)?;
        let (ids, symbols) = (input.var_names.clone(), input.var_symbols.clone());
        let mut sink = ObsmSink::create(input, &out.h5ad, OBSM_KEY, embedding_only, &ids, &symbols)?;
        for rows in self.scores.chunks(4096 * k) {
            sink.append(OBSM_KEY, k, rows)?;
        }
        let warnings = sink.finish()?;
        loadings.commit()?;
        summary.commit()?;
        Ok(warnings)
    }
}

/// A loadings table read back: genes × components.
#[derive(Debug, Clone, PartialEq)]
pub struct Loadings {
    pub gene_ids: Vec<String>,
    pub symbols: Vec<String>,
    /// Row-major `[n_genes, n_comps]`.
    pub values: Vec<f32>,
    pub n_comps: usize,
}

impl Loadings {
    /// Reads a `gene_id<TAB>symbol<TAB>PC1…` table as [`Pca::loadings_tsv`] writes it.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
        if header.len() < 3 || header[0] != "gene_id" || header[1] != "symbol" {
            return Err(Error::format(path, "expected the header 'gene_id<TAB>symbol<TAB>PC1…'"));
        }
        let k = header.len() - 2;
        let mut l = Loadings { gene_ids: Vec::new(), symbols: Vec::new(), values: Vec::new(), n_comps: k };
        for (i, line) in lines.enumerate().filter(|(_, s)| !s.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != k + 2 {
                return Err(Error::format(path, format!("line {}: {} fields, expected {}", i + 2, f.len(), k + 2)));
            }
            l.gene_ids.push(f[0].to_string());
            l.symbols.push(f[1].to_string());
            for v in &f[2..] {
                l.values.push(v.parse().map_err(|_| Error::format(path, format!("line {}: `{v}` is not a number", i + 2)))?);
            }
        }
        Ok(l)
    }
}
