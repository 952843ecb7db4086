//! Running a study: the evaluation context (each screen read once, its PCA and (Lib+Log)Norm
//! baselines benchmarked once), the budget resolved into steps, the cells run (or found in the
//! cache) and the outputs written: `study.md`, `study.json`, `study.html`.
//!
//! Layout of the output folder:
//! - `study.toml`: a copy of the study file as last run;
//! - `screens/<screen>.h5ad` (+ `.pca.*`): the screen with its baselines, `screens/<screen>.rec`;
//! - `calibration/<config key>.rec`: a wall-time budget's steps for each config;
//! - `cells/<config key>-s<seed>/`: one cell (see [`super::cell`]);
//! - `study.md`, `study.json`, `study.html`, `plots/<group>.png`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cache::{read_record, write_record, CellLock, Record};
use super::cell::{cached_result, cell_dir, run_cell, CellResult, EvalContext};
use super::study::{Budget, CellSpec, Study};
use super::table::{build, StudyTable};
use crate::atomic::write_atomic;
use crate::corpus::Corpus;
use crate::eval::annotations::load_paths;
use crate::eval::perturb::input::{load as load_input, InputConfig};
use crate::eval::perturb::prepare::{prepare, Baseline, Prepare};
use crate::eval::perturb::report::PerturbReport;
use crate::eval::perturb::run::run as run_benchmark;
use crate::train::{train, RunConfig, TrainOptions};
use crate::{Error, Result};

/// Steps timed to turn a wall-time budget into steps.
pub const CALIBRATION_STEPS: u64 = 20;

#[derive(Debug, Clone, Default)]
pub struct RunnerOptions {
    /// libtorch threads in this process (`None`: libtorch's default).
    pub threads: Option<usize>,
    /// Run every cell on this device instead of its config's (e.g. one GPU per worker).
    pub device: Option<String>,
}

/// A study ready to run: its cells with their configs, the evaluation context, the baselines.
pub struct Runner {
    pub study: Study,
    pub out: PathBuf,
    /// `cells[i]`: the spec and its config with steps resolved (and the device override).
    pub cells: Vec<(CellSpec, RunConfig)>,
    ctx: EvalContext,
    pub references: Vec<(String, PerturbReport)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Calibration {
    steps_per_s: f64,
}

/// What a cell run found.
pub enum CellOutcome {
    Done(Box<CellResult>),
    /// Another live process holds the cell.
    Busy,
}

impl Runner {
    /// Reads the screens, benchmarks their baselines (cached) and resolves the budget (cached).
    /// `stage` is told what is being prepared.
    pub fn new(study: Study, out: &Path, opts: &RunnerOptions, stage: &dyn Fn(&str)) -> Result<Runner> {
        if let Some(t) = opts.threads {
            if t == 0 {
                return Err(Error::Invalid("threads must be positive".into()));
            }
            tch::set_num_threads(t as i32);
        }
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let text = std::fs::read_to_string(&study.path).map_err(|e| Error::io(&study.path, e))?;
        write_atomic(&out.join("study.toml"), &text)?;

        let bench = study.bench.perturb_config()?;
        let gene_paths = study.gene_annotations();
        let eval_key = EvalContext::key_of(&study.screens, &bench, &study.genes, &gene_paths, study.bench.readout);
        let gene_dbs = load_paths(&gene_paths)?;
        let mut screens = Vec::new();
        let mut screen_dbs = Vec::new();
        let mut references = Vec::new();
        let screens_dir = out.join("screens");
        std::fs::create_dir_all(&screens_dir).map_err(|e| Error::io(&screens_dir, e))?;
        for s in &study.screens {
            let dbs = load_paths(&s.annotations)?;
            let prepared = screens_dir.join(format!("{}.h5ad", s.name));
            let rec = screens_dir.join(format!("{}.rec", s.name));
            let cached = match read_record::<PerturbReport>(&rec, &eval_key)? {
                Record::Valid(r) if prepared.is_file() => Some(r),
                _ => None,
            };
            if cached.is_none() {
                stage(&format!("{}: PCA and (Lib+Log)Norm baselines", s.name));
                let what = Prepare { baselines: vec![Baseline::Pca, Baseline::Libnorm], ..Prepare::default() };
                prepare(&s.h5ad, &prepared, &what, &indicatif::ProgressBar::hidden())?;
            }
            stage(&format!("{}: reading labels and expression", s.name));
            let input_cfg = InputConfig {
                obsm_keys: vec!["X_pca".into(), "X_libnorm".into()],
                pert_key: s.pert_key.clone(),
                batch_key: s.batch_key.clone(),
                control: s.control.clone(),
                expression: true,
                ..InputConfig::default()
            };
            let input = load_input(&prepared, &input_cfg)?;
            let report = match cached {
                Some(r) => r,
                None => {
                    stage(&format!("{}: benchmarking the baselines", s.name));
                    let r = run_benchmark(&input, &dbs, &bench, &indicatif::ProgressBar::hidden())?;
                    write_record(&rec, &eval_key, &r)?;
                    r
                }
            };
            references.push((s.name.clone(), report));
            screens.push((s.clone(), input));
            screen_dbs.push(dbs);
        }
        let ctx = EvalContext { screens, bench, genes: study.genes.clone(), gene_dbs, screen_dbs, eval_key, threads: opts.threads, readout: study.bench.readout };

        let mut cells = Vec::new();
        for spec in study.cells() {
            let mut config = spec.config.clone();
            if let Budget::Minutes(minutes) = study.budget {
                let steps = calibrated_steps(out, &spec, minutes, opts.device.as_deref(), stage)?;
                (config.steps, config.epochs) = (Some(steps), None);
                // Checkpoints and evaluations keep their share of the run.
                config.checkpoint_every = config.checkpoint_every.min(steps.div_ceil(2).max(1));
                config.eval_every = config.eval_every.min(steps);
            }
            if let Some(d) = &opts.device {
                config.device = d.clone();
            }
            config.validate("study cell")?;
            cells.push((spec, config));
        }
        Ok(Runner { study, out: out.to_path_buf(), cells, ctx, references })
    }

    /// The folder name of cell `i`, which `--cell` takes.
    pub fn cell_id(&self, i: usize) -> String {
        cell_dir(&self.out, &self.cells[i].0).file_name().expect("a name").to_string_lossy().into_owned()
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        (0..self.cells.len()).find(|&i| self.cell_id(i) == id)
    }

    /// Cell `i`'s result if every stage is cached and intact.
    pub fn cached(&self, i: usize) -> Result<Option<CellResult>> {
        let (spec, config) = &self.cells[i];
        cached_result(&self.out, spec, config, &self.ctx.eval_key, &self.study.screens)
    }

    /// Runs cell `i` under its lock.
    pub fn run_cell(&self, i: usize, stage: &dyn Fn(&str), log: &dyn Fn(String)) -> Result<CellOutcome> {
        let (spec, config) = &self.cells[i];
        let dir = cell_dir(&self.out, spec);
        std::fs::create_dir_all(dir.parent().expect("cells/")).map_err(|e| Error::io(&dir, e))?;
        let Some(_lock) = CellLock::acquire(&dir.with_extension("lock"))? else { return Ok(CellOutcome::Busy) };
        run_cell(&self.out, spec, config, &self.ctx, stage, log).map(|r| CellOutcome::Done(Box::new(r)))
    }

    /// Builds the tables from the cells found finished and writes `study.md`, `study.json` and
    /// `study.html` (with `plots/`).
    pub fn finish(&self, results: &[Option<CellResult>], seconds: f64) -> Result<StudyTable> {
        let table = build(&self.study, results, &self.references)?;
        super::report::write(&self.out, &self.study, &table, results, seconds)?;
        Ok(table)
    }
}

/// The steps a `minutes` budget buys for the spec's config: its training throughput, timed once
/// on the device the cells will use and recorded per config, so a resumed study (or one whose
/// budget changed) computes its steps from the same measurement.
fn calibrated_steps(out: &Path, spec: &CellSpec, minutes: f64, device: Option<&str>, stage: &dyn Fn(&str)) -> Result<u64> {
    let dir = out.join("calibration");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut config = spec.config.clone();
    if let Some(d) = device {
        config.device = d.to_string();
    }
    let key = format!("{}-{}", spec.config_key, config.device);
    let rec = dir.join(format!("{}.rec", spec.config_key));
    let steps_per_s = match read_record::<Calibration>(&rec, &key)? {
        Record::Valid(c) => c.steps_per_s,
        _ => {
            stage(&format!("timing {} for the {minutes}-minute budget", spec.display()));
            (config.steps, config.epochs, config.checkpoint_every, config.eval_every) = (Some(CALIBRATION_STEPS), None, CALIBRATION_STEPS, CALIBRATION_STEPS);
            let tmp = tempfile::tempdir_in(&dir).map_err(|e| Error::io(&dir, e))?;
            let outcome = train(Arc::new(Corpus::open(&spec.corpus)?), &config, &TrainOptions::new(tmp.path().join("run")))?;
            // Training throughput, start-up left out: it is paid once, not per step.
            let steps_per_s = outcome.samples_per_s / config.loader.batch_size as f64;
            if !(steps_per_s.is_finite() && steps_per_s > 0.0) {
                return Err(Error::Invalid(format!("timing {}: no training throughput measured", spec.display())));
            }
            write_record(&rec, &key, &Calibration { steps_per_s })?;
            steps_per_s
        }
    };
    Ok(((minutes * 60.0 * steps_per_s).floor() as u64).max(1))
}
