//! `txfm quickstart`: the whole pipeline on an embedded default, so a new user sees every stage
//! work in a minute on a laptop: simulate a Perturb-seq screen → build a corpus → train the tiny model → write a report.
//! Later stages (embed, benchmark) join here as they land.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::atomic::write_atomic;
use crate::corpus::{build_corpus, stats::stats_table, BuildOptions, Corpus, CorpusSummary, DatasetSpec, Filters, Manifest};
use crate::data::genes::GeneIdKind;
use crate::simulate::{simulate_to_h5ad, SimConfig, SimSummary};
use crate::train::{train, RunConfig, TrainOptions, TrainOutcome};
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct QuickstartConfig {
    /// Folder for everything the quickstart writes (re-running replaces its contents).
    pub out: PathBuf,
    pub sim: SimConfig,
    /// The training stage's run (the `tiny` preset).
    pub run: RunConfig,
    pub progress: bool,
}

impl QuickstartConfig {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        QuickstartConfig { out: out.into(), sim: SimConfig::quickstart(), run: RunConfig::tiny(), progress: false }
    }
}

#[derive(Debug, Clone)]
pub struct QuickstartOutputs {
    pub sim: SimSummary,
    pub manifest: PathBuf,
    pub corpus_dir: PathBuf,
    pub corpus: CorpusSummary,
    pub run_dir: PathBuf,
    pub train: TrainOutcome,
    pub report: PathBuf,
}

/// Runs every stage and writes `report.md` in `cfg.out`.
pub fn run(cfg: &QuickstartConfig) -> Result<QuickstartOutputs> {
    let out = &cfg.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;

    stage(cfg, "1/3 simulate a Perturb-seq screen");
    let h5ad = out.join("sim.h5ad");
    let bar = if cfg.progress { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    let sim = simulate_to_h5ad(&cfg.sim, &h5ad, &bar)?;

    stage(cfg, "2/3 build a corpus");
    let mut ds = DatasetSpec::new("sim", "sim.h5ad", GeneIdKind::Raw);
    ds.obs_columns = ["perturbation", "batch", "is_control", "cell_state"].map(String::from).to_vec();
    // The simulated screen is shallow (a few hundred detected genes per cell), so the cell filter
    // sits below scanpy's 200 to keep the screen whole.
    let manifest = Manifest::new(vec![ds], Filters { min_cells_per_gene: 3, min_genes_per_cell: 50 });
    let manifest_path = out.join("corpus.toml");
    write_atomic(&manifest_path, &toml::to_string_pretty(&manifest).expect("manifest serialises"))?;
    let manifest = Manifest::load(&manifest_path)?;
    let corpus_dir = out.join("corpus");
    let corpus = build_corpus(&manifest, &corpus_dir, &BuildOptions { overwrite: true, progress: cfg.progress })?;

    stage(cfg, "3/3 train the tiny model");
    let run_dir = out.join("run");
    // A re-run starts the training afresh, as it rebuilds the corpus.
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
    }
    let opened = Arc::new(Corpus::open(&corpus_dir)?);
    let trained = train(opened, &cfg.run, &TrainOptions { progress: cfg.progress, ..TrainOptions::new(&run_dir) })?;

    let report = out.join("report.md");
    write_atomic(&report, &report_markdown(&sim, &corpus, &manifest_path, &corpus_dir, &run_dir, &trained))?;
    Ok(QuickstartOutputs { sim, manifest: manifest_path, corpus_dir, corpus, run_dir, train: trained, report })
}

fn stage(cfg: &QuickstartConfig, what: &str) {
    if cfg.progress {
        eprintln!("quickstart: {what}");
    }
}

fn report_markdown(sim: &SimSummary, corpus: &CorpusSummary, manifest: &Path, corpus_dir: &Path, run_dir: &Path, trained: &TrainOutcome) -> String {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(
        "# txfm quickstart report\n\n\
         ## 1. Simulated Perturb-seq screen\n\n\
         `{h5ad}`: {cells} cells × {genes} genes, {density:.1}% non-zero, {ctrl} control cells, \
         {pert} perturbations; {pairs} true gene pairs (ordered) in `{pairs_csv}`, the ground truth in `{truth}`. \
         Simulated at {rate:.0} cells/s.\n\n\
         ## 2. Corpus\n\n\
         Built from `{manifest}` into `{corpus}/` (Parquet shards; see `txfm corpus stats {corpus}`).\n\n\
         {table}\n\n\
         ## 3. Training\n\n\
         The `tiny` preset, {steps} steps at {train_rate:.0} samples/s, into `{run}/` (`config.toml`, \
         `metrics.jsonl`, the loss curve `loss.png`, `checkpoints/`). {validation}\n",
        h5ad = name(&sim.h5ad),
        cells = sim.n_cells,
        genes = sim.n_genes,
        density = 100.0 * sim.density(),
        ctrl = sim.n_controls,
        pert = sim.n_perturbations,
        pairs = sim.n_pairs,
        pairs_csv = name(&sim.pairs_csv),
        truth = name(&sim.truth_json),
        rate = sim.cells_per_second(),
        manifest = name(manifest),
        corpus = name(corpus_dir),
        table = stats_table(corpus),
        steps = trained.step,
        train_rate = trained.samples_per_s,
        run = name(run_dir),
        validation = match trained.eval {
            Some(e) => format!(
                "Final validation loss {:.4} on {} held-out cells, against {:.4} for the trivial baseline \
                 that predicts each gene's mean ({}).",
                e.loss,
                e.n_samples,
                e.baseline,
                if e.loss < e.baseline { "the model beats it" } else { "the model does not beat it yet" }
            ),
            None => "No validation was run.".into(),
        },
    )
}
