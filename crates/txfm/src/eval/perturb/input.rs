//! The benchmark's input from one `.h5ad`: the embeddings in `obsm[KEY]` (one or more keys), the
//! perturbation and batch labels from `obs`, and from `X` (raw counts, streamed in row chunks) what
//! two metrics need of the expression itself:
//!
//! - p.cst (Tx-Evaluation variant) needs to know which perturbations target *unexpressed* genes:
//!   genes whose mean normalise_total(1e4) + log1p expression over all cells is below
//!   `unexpressed_threshold` (default 0.15; Tx-Evaluation thresholds the mean of `X` as stored at
//!   0.15, and at 0.43 after this same normalisation for L1000 — we always normalise, so the cut
//!   means the same on every file). A label finds its gene by name in `var_names`, else through
//!   the corpus's gene-ID harmoniser (a symbol label finds an Ensembl var, a renamed symbol its
//!   current one); a label that finds no measured gene is treated as expressed, as the
//!   reference's list lookup does, and the report says how many found one.
//! - inv decodes expression: the normalise_total(1e4) + log1p values of all genes when there are at
//!   most `max_expression_genes` (default 2,000), else of the that many genes of highest variance
//!   across cells (of the normalised values; a plain variance ranking, not scanpy's binned
//!   dispersion). The matrix is dense `[n_obs, ≤ max_expression_genes]` f32 (8 kB per cell at 2,000).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::data::{Expression, PerturbData};
use super::guides::{load_guide_labels, GuideConfig, GuideLabels};
use crate::data::h5ad::obsm::read_obsm;
use crate::data::{ExpressionSource, ObsFrame, SourceOptions, open_source};
use crate::{Error, Result};

/// Which columns and matrices to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// `obsm` keys of the embeddings to compare.
    pub obsm_keys: Vec<String>,
    /// `obs` column of perturbation labels (gene symbols, as the pair databases use).
    pub pert_key: String,
    /// `obs` column of batches.
    pub batch_key: String,
    /// The label of control cells in `pert_key`.
    pub control: String,
    /// Read `X` for the unexpressed-gene null and the reconstruction target (off: p.cst's
    /// Tx-Evaluation variant and inv are not computed).
    pub expression: bool,
    /// h5ad matrix holding raw counts: `X` (default), `raw` or a layer name.
    pub layer: Option<String>,
    pub max_expression_genes: usize,
    pub unexpressed_threshold: f64,
    /// Rows per streamed chunk of `X`.
    pub chunk_rows: usize,
    /// Take the perturbation labels from a guide-count matrix in `obsm` instead of `pert_key`
    /// ([`super::guides`]: cells with exactly one guide are kept).
    pub guides: Option<GuideConfig>,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            obsm_keys: Vec::new(),
            pert_key: "perturbation".into(),
            batch_key: "batch".into(),
            control: "control".into(),
            expression: true,
            layer: None,
            max_expression_genes: 2_000,
            unexpressed_threshold: 0.15,
            chunk_rows: 4_096,
            guides: None,
        }
    }
}

/// Everything the benchmark reads from the file.
#[derive(Debug, Clone)]
pub struct PerturbInput {
    pub path: PathBuf,
    /// The `obs` columns the labels came from.
    pub pert_key: String,
    pub batch_key: String,
    /// One embedding per `obsm` key, in the order asked, all with the same labels.
    pub embeddings: Vec<(String, PerturbData)>,
    /// Per perturbation code: its target is an unexpressed gene (all false without expression).
    pub unexpressed: Vec<bool>,
    /// Perturbation labels (the control excluded) whose target is a measured gene; `None`
    /// without expression.
    pub targets_measured: Option<usize>,
    /// The reconstruction target of inv, if expression was read.
    pub expression: Option<Expression>,
    /// With labels from a guide matrix: how many cells it gave a label and how many it left out.
    pub guides: Option<GuideCounts>,
}

/// What [`super::guides`] made of the guide matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GuideCounts {
    pub n_guides: usize,
    pub n_obs_input: usize,
    pub kept: usize,
    pub no_guide: usize,
    pub several_guides: usize,
}

impl PerturbInput {
    /// The labels alone (an embedding of width 0).
    pub fn labels(&self) -> &PerturbData {
        &self.embeddings[0].1
    }
}

/// Reads `path` as [`InputConfig`] says.
pub fn load(path: &Path, cfg: &InputConfig) -> Result<PerturbInput> {
    load_assigned(path, cfg, None)
}

/// [`load`] with the guide matrix's assignment already made by [`load_guide_labels`] on a file
/// with the same cells in the same order (the benchmark assigns the input's cells before it adds
/// embeddings, and benchmarks the copy it wrote them to): a high-MOI screen's cells × guides
/// matrix is then read once. `None` with `cfg.guides` set reads it as [`load`] does.
pub fn load_assigned(path: &Path, cfg: &InputConfig, assigned: Option<GuideLabels>) -> Result<PerturbInput> {
    if cfg.obsm_keys.is_empty() {
        return Err(Error::Invalid("no obsm key given: name at least one embedding (e.g. --obsm X_pca)".into()));
    }
    let opts = SourceOptions { layer: cfg.layer.clone(), ..Default::default() };
    let mut src = open_source(path, &opts)?;
    assemble(src.as_mut(), cfg, assigned, &mut |key| read_obsm(path, key))
}

/// The benchmark's input from data in memory (an AnnData in a notebook): labels from the
/// source's `obs`, expression from its matrix, and `embeddings` (`(key, dim, row-major
/// [n_obs, dim])`, in the order given) instead of `obsm` in a file; `cfg.obsm_keys` is ignored.
/// Guide matrices are read from files only.
pub fn load_in_memory(src: &mut dyn ExpressionSource, embeddings: Vec<(String, usize, Vec<f32>)>, cfg: &InputConfig) -> Result<PerturbInput> {
    if embeddings.is_empty() {
        return Err(Error::Invalid("no embedding given: name at least one obsm key (e.g. obsm=['X_pca'])".into()));
    }
    if cfg.guides.is_some() {
        return Err(Error::Invalid("guide-count labels are read from an .h5ad file: give the file (or a backed AnnData)".into()));
    }
    let cfg = InputConfig { obsm_keys: embeddings.iter().map(|e| e.0.clone()).collect(), ..cfg.clone() };
    let mut given: HashMap<String, (usize, Vec<f32>)> = embeddings.into_iter().map(|(k, d, x)| (k, (d, x))).collect();
    let n = src.n_obs();
    assemble(src, &cfg, None, &mut |key| {
        let (dim, x) = given.remove(key).ok_or_else(|| Error::Invalid(format!("obsm key {key} given twice")))?;
        Ok((if dim == 0 { n } else { x.len() / dim }, dim, x))
    })
}

/// [`load`]'s work once the expression source is open: `read_embedding(key)` gives
/// `(rows, dim, row-major values)` of each of `cfg.obsm_keys`; `assigned`, the guide matrix's
/// assignment when the caller has made it already.
fn assemble(
    src: &mut dyn ExpressionSource,
    cfg: &InputConfig,
    assigned: Option<GuideLabels>,
    read_embedding: &mut dyn FnMut(&str) -> Result<(usize, usize, Vec<f32>)>,
) -> Result<PerturbInput> {
    let path = src.path().to_path_buf();
    let path = path.as_path();
    let n_input = src.obs().n_obs();
    // Labels from obs, or from the guide matrix for the cells it assigns (`keep`).
    let (labels, keep, guides) = match &cfg.guides {
        None => (labels_from_obs(src.obs(), cfg, path)?, None, None),
        Some(g) => {
            let assigned = match assigned {
                Some(a) => a,
                None => load_guide_labels(path, g, &cfg.control)?,
            };
            if n_input != assigned.keep.len() + assigned.n_none + assigned.n_multiple {
                return Err(Error::format(path, format!("obsm['{}'] does not have obs's {} rows", g.obsm_key, n_input)));
            }
            let labels = labels_from_guides(src.obs(), &assigned, cfg, path)?;
            let counts = GuideCounts {
                n_guides: assigned.n_guides,
                n_obs_input: n_input,
                kept: assigned.keep.len(),
                no_guide: assigned.n_none,
                several_guides: assigned.n_multiple,
            };
            (labels, Some(assigned.keep), Some(counts))
        }
    };
    let mut embeddings = Vec::new();
    for key in &cfg.obsm_keys {
        let (n, dim, x) = read_embedding(key)?;
        if n != n_input || x.len() != n * dim {
            return Err(Error::format(path, format!("obsm/{key} has {n} rows but obs has {n_input}")));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::format(path, format!("obsm/{key} holds non-finite values")));
        }
        let x = match &keep {
            Some(rows) => rows.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect(),
            None => x,
        };
        embeddings.push((key.clone(), labels.with_x(dim, x)));
    }
    let (unexpressed, targets_measured, expression) = if cfg.expression {
        let (means, expr) = read_expression(src, cfg, keep.as_deref())?;
        let targets = label_genes(&labels.pert_names, labels.control as usize, src.var_names());
        let unexpressed = targets.iter().map(|t| t.is_some_and(|g| means[g] < cfg.unexpressed_threshold)).collect();
        (unexpressed, Some(targets.iter().flatten().count()), Some(expr))
    } else {
        (vec![false; labels.n_perts()], None, None)
    };
    Ok(PerturbInput {
        path: path.to_path_buf(),
        pert_key: match &cfg.guides {
            Some(g) => format!("obsm['{}'] (guides)", g.obsm_key),
            None => cfg.pert_key.clone(),
        },
        batch_key: cfg.batch_key.clone(),
        embeddings,
        unexpressed,
        targets_measured,
        expression,
        guides,
    })
}

/// Labels of the cells a guide matrix assigned (`assigned.keep`), with their batches from `obs`.
fn labels_from_guides(obs: &ObsFrame, assigned: &GuideLabels, cfg: &InputConfig, path: &Path) -> Result<PerturbData> {
    let (batch_all, batch_names) = obs.codes(&cfg.batch_key, path)?;
    let (pert, pert_names) = crate::data::obs::first_seen_codes(&assigned.labels);
    let control = pert_names.iter().position(|p| *p == cfg.control).ok_or_else(|| {
        Error::format(
            path,
            format!(
                "no kept cell has a control guide (a name starting with non-targeting, NTC, safe-targeting, ... or the control \
                 label `{}`); set the control label (--control)",
                cfg.control
            ),
        )
    })? as u32;
    let batch = assigned.keep.iter().map(|&i| batch_all[i]).collect();
    Ok(PerturbData { n_obs: assigned.keep.len(), dim: 0, x: Vec::new(), pert, pert_names, batch, batch_names, control })
}

/// The var index of each perturbation label's target gene (`None` for the control and for a
/// label no measured gene answers to): by exact name first, else through the gene-ID harmoniser
/// on both sides, so that labels written as symbols find a screen whose `var_names` are Ensembl
/// IDs (versioned or not) and an outdated symbol finds its gene.
pub fn label_genes(labels: &[String], control: usize, var_names: &[String]) -> Vec<Option<usize>> {
    use crate::data::genes::{harmonise, GeneIdKind, GeneTable};
    let exact: HashMap<&str, usize> = var_names.iter().enumerate().map(|(i, g)| (g.as_str(), i)).rev().collect();
    let table = GeneTable::human();
    let vars = harmonise(var_names, GeneIdKind::Auto, table);
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (v, g) in vars.source_to_gene.iter().enumerate() {
        if let Some(g) = g {
            by_id.entry(vars.ids[*g as usize].as_str()).or_insert(v);
        }
    }
    let named = harmonise(labels, GeneIdKind::Symbol, table);
    labels
        .iter()
        .enumerate()
        .map(|(p, name)| {
            if p == control {
                return None;
            }
            exact.get(name.as_str()).copied().or_else(|| named.source_to_gene[p].and_then(|g| by_id.get(named.ids[g as usize].as_str()).copied()))
        })
        .collect()
}

/// The normalise_total(1e4) + log1p expression of `path` over the genes [`load`] keeps for inv
/// (the "(Lib+Log)Norm" view of the counts), without labels or embeddings.
pub fn load_expression(path: &Path, cfg: &InputConfig) -> Result<Expression> {
    let opts = SourceOptions { layer: cfg.layer.clone(), ..Default::default() };
    let mut src = open_source(path, &opts)?;
    Ok(read_expression(src.as_mut(), cfg, None)?.1)
}

/// Perturbation and batch codes from `obs` (an embedding of width 0). Errors name the file and the
/// column: a missing column, a missing value, or a control label that never occurs.
pub fn labels_from_obs(obs: &ObsFrame, cfg: &InputConfig, path: &Path) -> Result<PerturbData> {
    let (pert, pert_names) = obs.codes(&cfg.pert_key, path)?;
    let (batch, batch_names) = obs.codes(&cfg.batch_key, path)?;
    let control = pert_names.iter().position(|p| *p == cfg.control).ok_or_else(|| {
        let seen: Vec<&str> = pert_names.iter().take(8).map(String::as_str).collect();
        Error::format(
            path,
            format!(
                "obs['{}'] has no control label `{}` (labels include: {}); set the control label (--control)",
                cfg.pert_key,
                cfg.control,
                seen.join(", ")
            ),
        )
    })? as u32;
    Ok(PerturbData { n_obs: obs.n_obs(), dim: 0, x: Vec::new(), pert, pert_names, batch, batch_names, control })
}

/// normalise_total(1e4) + log1p of one CSR row, in place.
fn normalise_row(values: &mut [f32]) {
    let total: f64 = values.iter().map(|&v| v as f64).sum();
    if total > 0.0 {
        let s = 1e4 / total;
        values.iter_mut().for_each(|v| *v = ((*v as f64) * s).ln_1p() as f32);
    }
}

/// Two streamed passes over the counts: per-gene mean (and variance) of the normalised values, then
/// the dense reconstruction target over the genes kept. Returns `(mean per gene, expression)`.
/// Means over cells (the unexpressed-gene null) and the inv target, over the rows `keep` (in
/// that order; every row when `None`): a benchmark of the cells a guide matrix kept is the
/// benchmark of a file holding only those cells.
fn read_expression(src: &mut dyn ExpressionSource, cfg: &InputConfig, keep: Option<&[usize]>) -> Result<(Vec<f64>, Expression)> {
    let (n_file, n_vars) = (src.n_obs(), src.n_vars());
    // The output row of each file row, `usize::MAX` for rows left out.
    let out_row: Vec<usize> = match keep {
        None => (0..n_file).collect(),
        Some(rows) => {
            let mut at = vec![usize::MAX; n_file];
            for (k, &i) in rows.iter().enumerate() {
                at[i] = k;
            }
            at
        }
    };
    let n_obs = keep.map_or(n_file, <[usize]>::len);
    let chunk = cfg.chunk_rows.max(1);
    let mut sum = vec![0.0f64; n_vars];
    let mut sum_sq = vec![0.0f64; n_vars];
    for start in (0..n_file).step_by(chunk) {
        let mut c = src.read_rows(start, start + chunk)?;
        for r in (0..c.n_rows()).filter(|&r| out_row[start + r] != usize::MAX) {
            let (a, b) = (c.indptr[r] as usize, c.indptr[r + 1] as usize);
            normalise_row(&mut c.data[a..b]);
            for (&g, &v) in c.indices[a..b].iter().zip(&c.data[a..b]) {
                sum[g as usize] += v as f64;
                sum_sq[g as usize] += (v as f64) * (v as f64);
            }
        }
    }
    let n = n_obs.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let mut genes: Vec<usize> = (0..n_vars).collect();
    if n_vars > cfg.max_expression_genes {
        let var = |g: usize| sum_sq[g] / n - mean[g] * mean[g];
        genes.sort_by(|&a, &b| var(b).total_cmp(&var(a)).then(a.cmp(&b)));
        genes.truncate(cfg.max_expression_genes);
        genes.sort_unstable();
    }
    let mut column = vec![usize::MAX; n_vars];
    for (j, &g) in genes.iter().enumerate() {
        column[g] = j;
    }
    let k = genes.len();
    let mut values = vec![0.0f32; n_obs * k];
    for start in (0..n_file).step_by(chunk) {
        let mut c = src.read_rows(start, start + chunk)?;
        for r in 0..c.n_rows() {
            let o = out_row[start + r];
            if o == usize::MAX {
                continue;
            }
            let (a, b) = (c.indptr[r] as usize, c.indptr[r + 1] as usize);
            normalise_row(&mut c.data[a..b]);
            let row = &mut values[o * k..(o + 1) * k];
            for (&g, &v) in c.indices[a..b].iter().zip(&c.data[a..b]) {
                if column[g as usize] != usize::MAX {
                    row[column[g as usize]] = v;
                }
            }
        }
    }
    let var_names = genes.iter().map(|&g| src.var_names()[g].clone()).collect();
    Ok((mean, Expression { n_obs, n_vars: k, values, var_names }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ObsColumn;

    fn obs() -> ObsFrame {
        ObsFrame {
            names: (0..4).map(|i| format!("c{i}")).collect(),
            columns: vec![
                (
                    "gene".into(),
                    ObsColumn::Categorical { codes: vec![1, 0, 1, 2], categories: vec!["ctrl".into(), "A".into(), "B".into()] },
                ),
                ("plate".into(), ObsColumn::Str(vec!["p2".into(), "p1".into(), "p1".into(), "p2".into()])),
            ],
        }
    }

    #[test]
    fn labels_in_first_seen_order() {
        let cfg = InputConfig { pert_key: "gene".into(), batch_key: "plate".into(), control: "ctrl".into(), ..Default::default() };
        let d = labels_from_obs(&obs(), &cfg, Path::new("f.h5ad")).unwrap();
        assert_eq!(d.pert, vec![0, 1, 0, 2]);
        assert_eq!(d.pert_names, vec!["A", "ctrl", "B"]);
        assert_eq!(d.control, 1);
        assert_eq!(d.batch, vec![0, 1, 1, 0]);
        assert_eq!(d.batch_names, vec!["p2", "p1"]);
    }

    #[test]
    fn clear_errors() {
        let cfg = InputConfig { pert_key: "gene".into(), batch_key: "plate".into(), control: "NT".into(), ..Default::default() };
        let e = labels_from_obs(&obs(), &cfg, Path::new("f.h5ad")).unwrap_err().to_string();
        assert!(e.contains("f.h5ad") && e.contains("`NT`") && e.contains("ctrl"), "{e}");
        let cfg = InputConfig { pert_key: "target".into(), ..cfg };
        let e = labels_from_obs(&obs(), &cfg, Path::new("f.h5ad")).unwrap_err().to_string();
        assert!(e.contains("no column `target`") && e.contains("gene, plate"), "{e}");
    }

    #[test]
    fn normalises_like_scanpy() {
        let mut v = [1.0f32, 3.0];
        normalise_row(&mut v);
        assert!((v[0] - (2501f32).ln()).abs() < 1e-5 && (v[1] - (7501f32).ln()).abs() < 1e-5);
    }
}

#[cfg(test)]
mod label_tests {
    use super::label_genes;

    /// Labels are symbols while var_names are (versioned) Ensembl IDs: every target is found
    /// through the harmoniser, not 0 of them; exact names still win and unknown labels find none.
    #[test]
    fn symbol_labels_find_ensembl_vars() {
        let vars: Vec<String> = ["ENSG00000141510.17", "ENSG00000010610", "ENSG00000111640", "MYGENE"].map(String::from).to_vec();
        let labels: Vec<String> = ["non-targeting", "TP53", "CD4", "GAPDH", "MYGENE", "NOT_A_GENE_XYZ"].map(String::from).to_vec();
        assert_eq!(label_genes(&labels, 0, &vars), vec![None, Some(0), Some(1), Some(2), Some(3), None]);
    }
}
