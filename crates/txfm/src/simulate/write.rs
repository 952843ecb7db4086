//! A simulation on disk: the `.h5ad` (raw counts, labels in `obs`, gene IDs in `var`), the true
//! gene pairs as an EFAAR-style CSV and the truth as JSON beside it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;

use super::SimConfig;
use super::cells::CellLabels;
use super::pipeline::simulate_chunks;
use super::truth::SimTruth;
use crate::Result;
use crate::data::h5ad::H5adWriter;
use crate::data::{ObsColumn, ObsFrame};
use crate::atomic::write_atomic;

/// The `obs['perturbation']` label of non-targeting control cells.
pub const CONTROL_LABEL: &str = "control";

/// What [`simulate_to_h5ad`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SimSummary {
    pub h5ad: PathBuf,
    pub pairs_csv: PathBuf,
    pub truth_json: PathBuf,
    pub n_cells: usize,
    pub n_genes: usize,
    /// Stored (non-zero) counts.
    pub nnz: u64,
    pub n_controls: usize,
    pub n_perturbations: usize,
    /// Rows of the pairs CSV (ordered pairs).
    pub n_pairs: usize,
    /// Wall time of the whole run.
    pub seconds: f64,
}

impl SimSummary {
    /// Fraction of non-zero entries.
    pub fn density(&self) -> f64 {
        self.nnz as f64 / (self.n_cells as f64 * self.n_genes as f64)
    }

    pub fn cells_per_second(&self) -> f64 {
        self.n_cells as f64 / self.seconds
    }
}

/// `<out>.pairs.csv` for `<out>.h5ad`.
pub fn pairs_path(out: &Path) -> PathBuf {
    out.with_extension("pairs.csv")
}

/// `<out>.truth.json` for `<out>.h5ad`.
pub fn truth_path(out: &Path) -> PathBuf {
    out.with_extension("truth.json")
}

/// Simulates `cfg` into `out` (`.h5ad`), with [`pairs_path`] and [`truth_path`] beside it.
/// Cells stream through the writer chunk by chunk; every file appears complete or not at all.
/// `progress` counts cells (its length is set here).
pub fn simulate_to_h5ad(cfg: &SimConfig, out: &Path, progress: &ProgressBar) -> Result<SimSummary> {
    let started = Instant::now();
    let truth = SimTruth::new(cfg)?;
    let pairs_csv = pairs_path(out);
    let truth_json = truth_path(out);
    write_atomic(&pairs_csv, &pairs_csv_text(&truth))?;
    write_atomic(&truth_json, &truth_json_text(&truth, &pairs_csv))?;

    progress.set_length(cfg.n_cells as u64);
    let mut writer = H5adWriter::create(out, &var_frame(&truth))?;
    let mut labels = Vec::with_capacity(cfg.n_cells);
    let mut nnz = 0u64;
    simulate_chunks(&truth, |chunk, chunk_labels| {
        writer.append_x(&chunk)?;
        nnz += chunk.nnz() as u64;
        progress.inc(chunk.n_rows() as u64);
        labels.extend(chunk_labels);
        Ok(())
    })?;
    writer.finish(&obs_frame(&truth, &labels))?;
    progress.finish();

    Ok(SimSummary {
        h5ad: out.to_path_buf(),
        pairs_csv,
        truth_json,
        n_cells: cfg.n_cells,
        n_genes: cfg.n_genes,
        nnz,
        n_controls: labels.iter().filter(|l| l.perturbation.is_none()).count(),
        n_perturbations: cfg.n_perturbations,
        n_pairs: truth.pairs().len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `var`: index = gene symbols, column `gene_ids`.
pub fn var_frame(truth: &SimTruth) -> ObsFrame {
    ObsFrame {
        names: truth.gene_symbols.clone(),
        columns: vec![("gene_ids".into(), ObsColumn::Str(truth.gene_ids.clone()))],
    }
}

/// `obs`: `perturbation` (target symbol or [`CONTROL_LABEL`]), `batch`, `is_control`,
/// `cell_state`, `library_size_true`; names `cell0000`…, zero-padded to the digits of `n_cells`.
pub fn obs_frame(truth: &SimTruth, labels: &[CellLabels]) -> ObsFrame {
    let width = labels.len().to_string().len();
    let perturbation_categories = std::iter::once(CONTROL_LABEL.to_string())
        .chain(truth.perturbations.iter().map(|p| truth.gene_symbols[p.target as usize].clone()))
        .collect();
    let numbered = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect();
    let categorical = |codes: Vec<i32>, categories| ObsColumn::Categorical { codes, categories };
    ObsFrame {
        names: (0..labels.len()).map(|i| format!("cell{i:0width$}")).collect(),
        columns: vec![
            (
                "perturbation".into(),
                categorical(
                    labels.iter().map(|l| l.perturbation.map_or(0, |p| p as i32 + 1)).collect(),
                    perturbation_categories,
                ),
            ),
            (
                "batch".into(),
                categorical(
                    labels.iter().map(|l| l.batch as i32).collect(),
                    numbered("batch", truth.config.n_batches),
                ),
            ),
            ("is_control".into(), ObsColumn::Bool(labels.iter().map(|l| l.perturbation.is_none()).collect())),
            (
                "cell_state".into(),
                categorical(
                    labels.iter().map(|l| l.cell_state as i32).collect(),
                    numbered("state", truth.config.n_cell_states),
                ),
            ),
            ("library_size_true".into(), ObsColumn::Float(labels.iter().map(|l| l.library_size).collect())),
        ],
    }
}

/// The EFAAR annotation format: header `entity1,entity2`, one ordered pair of symbols a line.
fn pairs_csv_text(truth: &SimTruth) -> String {
    let mut csv = String::from("entity1,entity2\n");
    for (a, b) in truth.pairs() {
        csv.push_str(&format!("{},{}\n", truth.gene_symbols[a as usize], truth.gene_symbols[b as usize]));
    }
    csv
}

/// The config, the modules and every perturbation's target, module and activity, by symbol.
fn truth_json_text(truth: &SimTruth, pairs_csv: &Path) -> String {
    #[derive(Serialize)]
    struct PerturbationJson<'a> {
        target: &'a str,
        module: Option<usize>,
        active: bool,
        n_affected_genes: usize,
    }
    let symbol = |g: &u32| truth.gene_symbols[*g as usize].as_str();
    let json = serde_json::json!({
        "config": truth.config,
        "control_label": CONTROL_LABEL,
        "pairs_csv": pairs_csv.file_name().map(|n| n.to_string_lossy()),
        "modules": truth.modules.iter().map(|m| m.iter().map(symbol).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "perturbations": truth.perturbations.iter().map(|p| PerturbationJson {
            target: symbol(&p.target),
            module: p.module,
            active: p.active,
            n_affected_genes: p.log_effects.len(),
        }).collect::<Vec<_>>(),
        "batch_library_factor": truth.batch_library_factor,
    });
    serde_json::to_string_pretty(&json).expect("a JSON value always serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::data::h5ad::H5adSource;
    use crate::data::{ExpressionSource, SourceOptions};
    use crate::simulate::simulate_rows;

    #[test]
    fn pairs_csv_lists_exactly_the_module_pairs() {
        let truth = SimTruth::new(&SimConfig::tiny()).unwrap();
        let csv = pairs_csv_text(&truth);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("entity1,entity2"));
        let listed: Vec<(String, String)> =
            lines.map(|l| l.split_once(',').map(|(a, b)| (a.into(), b.into())).unwrap()).collect();
        let mut expected = BTreeSet::new();
        for m in &truth.modules {
            for &a in m {
                for &b in m.iter().filter(|&&b| b != a) {
                    expected.insert((
                        truth.gene_symbols[a as usize].clone(),
                        truth.gene_symbols[b as usize].clone(),
                    ));
                }
            }
        }
        assert_eq!(listed.len(), expected.len(), "no duplicates");
        assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), expected);
    }

    #[test]
    fn obs_frame_labels_cells() {
        let truth = SimTruth::new(&SimConfig::tiny()).unwrap();
        let (_, labels) = simulate_rows(&truth, 0..300);
        let obs = obs_frame(&truth, &labels);
        assert_eq!(obs.n_obs(), 300);
        assert_eq!(obs.names[7], "cell007");
        assert_eq!(obs.keys(), ["perturbation", "batch", "is_control", "cell_state", "library_size_true"]);
        let perturbation = obs.column("perturbation").unwrap();
        for (i, l) in labels.iter().enumerate() {
            let expected = match l.perturbation {
                None => CONTROL_LABEL.to_string(),
                Some(p) => truth.gene_symbols[truth.perturbations[p as usize].target as usize].clone(),
            };
            assert_eq!(perturbation.get_str(i).unwrap(), expected);
            assert_eq!(
                obs.column("is_control").unwrap().get_str(i).unwrap(),
                l.perturbation.is_none().to_string()
            );
            assert_eq!(obs.column("batch").unwrap().get_str(i).unwrap(), format!("batch{}", l.batch));
        }
    }

    /// The whole run through the h5ad writer, read back by the h5ad reader and by Python anndata.
    #[test]
    fn simulate_to_h5ad_writes_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sim.h5ad");
        let cfg = SimConfig { n_cells: 700, ..SimConfig::tiny() };
        let summary = simulate_to_h5ad(&cfg, &out, &ProgressBar::hidden()).unwrap();
        assert_eq!(summary.pairs_csv, dir.path().join("sim.pairs.csv"));
        assert_eq!(summary.truth_json, dir.path().join("sim.truth.json"));
        assert_eq!(summary.n_pairs, 6 * 4 * 3);
        assert_eq!(std::fs::read_to_string(&summary.pairs_csv).unwrap().lines().count(), 1 + summary.n_pairs);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary.truth_json).unwrap()).unwrap();
        assert_eq!(json["modules"].as_array().unwrap().len(), cfg.n_modules);
        assert_eq!(json["perturbations"].as_array().unwrap().len(), cfg.n_perturbations);

        let truth = SimTruth::new(&cfg).unwrap();
        let (expected, labels) = simulate_rows(&truth, 0..cfg.n_cells);
        assert_eq!(summary.nnz, expected.nnz() as u64);
        let mut source = H5adSource::open(&out, &SourceOptions::default()).unwrap();
        assert_eq!(source.var_names(), &truth.gene_symbols[..]);
        assert_eq!(source.obs(), &obs_frame(&truth, &labels));
        let back = source.read_rows(0, cfg.n_cells).unwrap();
        assert_eq!(
            (&back.indptr, &back.indices, &back.data),
            (&expected.indptr, &expected.indices, &expected.data)
        );

        let py = crate::testing::run_python(
            "import anndata, sys\n\
             a = anndata.read_h5ad(sys.argv[1])\n\
             print(a.shape, list(a.obs.columns), a.var['gene_ids'].iloc[0], a.obs['perturbation'].dtype, \
             int(a.X.sum()))",
            &[out.to_str().unwrap()],
        );
        let total: f64 = expected.data.iter().map(|&v| v as f64).sum();
        assert_eq!(
            py.trim(),
            format!(
                "(700, 500) ['perturbation', 'batch', 'is_control', 'cell_state', 'library_size_true'] \
                 SIMENSG00000000001 category {total}"
            )
        );
    }
}
