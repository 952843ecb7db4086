//! Perturbation labels from a guide-count matrix: high-MOI and multiplexed CRISPR screens often
//! store guide assignments as a cells × guides count matrix in `obsm` (a dense array, a sparse
//! matrix, or a dataframe whose columns are the guides) instead of an `obs` label column.
//!
//! The rule, stated once:
//! - a guide is **detected** in a cell when its count is at least `min_count` (default 1);
//! - a cell with **exactly one** detected guide takes that guide's target; cells with none or with
//!   several are left out of the benchmark, and the report counts them;
//! - a guide's **target** is its name up to the first `_` (`TP53_2` → `TP53`, `MYC_sg1` → `MYC`);
//!   a name without `_` is its own target, so symbols with `-` (`HLA-A`, `NKX2-1`) stay whole;
//! - a guide is a **control** when its name starts (case-insensitively) with one of
//!   [`CONTROL_PREFIXES`] or its target equals the control label: its cells get the control label.
//!
//! Guide names come from the dataframe's columns, else from `names`: `uns/<key>` (a string array in
//! the same file) or a text file with one name per line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::h5ad::{read_obsm_matrix, read_uns_strings};
use crate::data::CsrChunk;
use crate::{Error, Result};

/// Name prefixes of non-targeting guides.
pub const CONTROL_PREFIXES: [&str; 7] =
    ["non-targeting", "nontargeting", "non_targeting", "ntc", "safe-targeting", "safe_targeting", "negative_control"];

/// Where the guide matrix is and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuideConfig {
    /// `obsm` key of the cells × guides count matrix.
    pub obsm_key: String,
    /// The guides' names when the matrix has none: `uns/<key>` or a text file, one per line.
    #[serde(default)]
    pub names: Option<String>,
    /// Count at which a guide counts as detected in a cell.
    #[serde(default = "default_min_count")]
    pub min_count: f32,
    /// The file holding the matrix and `uns` names, when it is not the benchmark's input (the
    /// input's copy with new embeddings keeps only dense obsm arrays and no `uns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
}

fn default_min_count() -> f32 {
    1.0
}

/// Each kept cell's label, and what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideLabels {
    /// Rows of the file kept (exactly one guide), ascending.
    pub keep: Vec<usize>,
    /// The label of each kept cell (a target, or the control label). `[keep.len()]`
    pub labels: Vec<String>,
    pub n_guides: usize,
    /// Cells without a detected guide, and with more than one.
    pub n_none: usize,
    pub n_multiple: usize,
}

impl GuideLabels {
    /// One line for the report.
    pub fn summary(&self, key: &str) -> String {
        let n = self.keep.len() + self.n_none + self.n_multiple;
        format!(
            "labels from obsm['{key}'] ({} guides): kept {} of {n} cells with exactly one guide; left out {} with none and {} with \
             several",
            self.n_guides,
            self.keep.len(),
            self.n_none,
            self.n_multiple
        )
    }
}

/// The label a guide named `name` gives its cells (see the module docs).
pub fn guide_target(name: &str, control: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if CONTROL_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return control.to_string();
    }
    let target = name.split('_').next().unwrap_or(name);
    if target.eq_ignore_ascii_case(control) { control.to_string() } else { target.to_string() }
}

/// Assigns each row of `counts` (`[n_obs, n_guides]`) by the rule of the module docs.
pub fn assign(counts: &CsrChunk, names: &[String], control: &str, min_count: f32) -> GuideLabels {
    assert_eq!(counts.n_cols, names.len(), "one name per guide");
    let targets: Vec<String> = names.iter().map(|n| guide_target(n, control)).collect();
    let mut out = GuideLabels { keep: Vec::new(), labels: Vec::new(), n_guides: names.len(), n_none: 0, n_multiple: 0 };
    for i in 0..counts.n_rows() {
        let (idx, val) = counts.row(i);
        let mut detected = idx.iter().zip(val).filter(|(_, v)| **v >= min_count).map(|(&j, _)| j as usize);
        match (detected.next(), detected.next()) {
            (None, _) => out.n_none += 1,
            (Some(j), None) => {
                out.keep.push(i);
                out.labels.push(targets[j].clone());
            }
            (Some(_), Some(_)) => out.n_multiple += 1,
        }
    }
    out
}

/// Reads the matrix and names of `cfg` from `path` and assigns its cells.
/// `path` is the benchmark's input; `cfg.file`, when set, is read instead.
pub fn load_guide_labels(path: &Path, cfg: &GuideConfig, control: &str) -> Result<GuideLabels> {
    let path = cfg.file.as_deref().unwrap_or(path);
    if !(cfg.min_count.is_finite() && cfg.min_count > 0.0) {
        return Err(Error::Invalid(format!("guide min_count must be positive, got {}", cfg.min_count)));
    }
    let (counts, columns) = read_obsm_matrix(path, &cfg.obsm_key)?;
    let names = match (&cfg.names, columns) {
        (Some(source), _) => read_names(path, source)?,
        (None, Some(columns)) => columns,
        (None, None) => {
            return Err(Error::format(
                path,
                format!(
                    "obsm['{}'] is a matrix without column names: give the guide names (--guide-names uns/KEY, or a text file \
                     with one name per line)",
                    cfg.obsm_key
                ),
            ));
        }
    };
    if names.len() != counts.n_cols {
        return Err(Error::format(
            path,
            format!("obsm['{}'] has {} guides (columns) but {} guide names were given", cfg.obsm_key, counts.n_cols, names.len()),
        ));
    }
    if let Some(i) = counts.data.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::format(path, format!("obsm['{}'] holds {} (not a count) at stored value {i}", cfg.obsm_key, counts.data[i])));
    }
    let labels = assign(&counts, &names, control, cfg.min_count);
    if labels.keep.is_empty() {
        return Err(Error::format(path, format!("{}: no cell is left to benchmark", labels.summary(&cfg.obsm_key))));
    }
    Ok(labels)
}

/// Guide names from `uns/<key>` of `h5ad`, or from a text file.
fn read_names(h5ad: &Path, source: &str) -> Result<Vec<String>> {
    if let Some(key) = source.strip_prefix("uns/") {
        return read_uns_strings(h5ad, key);
    }
    let file = Path::new(source);
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_stated_rule() {
        assert_eq!(guide_target("TP53_2", "control"), "TP53");
        assert_eq!(guide_target("MYC_sg1_ACGT", "control"), "MYC");
        assert_eq!(guide_target("HLA-A", "control"), "HLA-A");
        assert_eq!(guide_target("NKX2-1", "control"), "NKX2-1");
        assert_eq!(guide_target("Non-Targeting_0042", "control"), "control");
        assert_eq!(guide_target("non_targeting_3", "NT"), "NT");
        assert_eq!(guide_target("CONTROL_1", "control"), "control");
    }

    #[test]
    fn only_cells_with_one_guide_are_kept() {
        let names: Vec<String> = ["TP53_1", "TP53_2", "MYC_1", "NTC_1"].iter().map(|s| s.to_string()).collect();
        let mut m = CsrChunk::new(0, 4);
        m.push_row([(0, 3.0)]); // TP53
        m.push_row(std::iter::empty()); // none
        m.push_row([(1, 2.0), (2, 1.0)]); // two guides
        m.push_row([(2, 0.5), (3, 5.0)]); // NTC; MYC below min_count
        m.push_row([(2, 1.0)]); // MYC
        let g = assign(&m, &names, "control", 1.0);
        assert_eq!(g.keep, vec![0, 3, 4]);
        assert_eq!(g.labels, vec!["TP53", "control", "MYC"]);
        assert_eq!((g.n_none, g.n_multiple, g.n_guides), (1, 1, 4));
        // A higher threshold reads the two-guide cell as one guide.
        let g = assign(&m, &names, "control", 2.0);
        assert_eq!(g.keep, vec![0, 2, 3]);
        assert_eq!(g.labels, vec!["TP53", "TP53", "control"]);
    }
}
