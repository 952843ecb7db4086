//! One cell of a study (a row's config at one seed): train on the corpus → embed each screen →
//! the perturbation benchmark of the embedding → gene-relationship recall from the encoder's gene
//! embeddings and the decoder's gene weights, through the library's own functions.
//!
//! Its folder `cells/<config key>-s<seed>/` holds `run/` (the training run), `<screen>.npy` (the
//! embedding) and one checksummed record per finished stage (`train.rec`, `<screen>.rec`,
//! `genes.rec`). A stage with a valid record is not recomputed; a killed training resumes from its
//! last checkpoint (exactly, so the result is the one an uninterrupted run gives); a corrupt
//! record is recomputed with everything downstream of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::{read_record, write_record, Record};
use super::study::{corpus_identity, hex, without_device, CellSpec, GeneSettings, Screen};
use crate::corpus::Corpus;
use crate::embed::npy::NpyRows;
use crate::embed::{EmbedJob, EmbedOptions, OutputFormat};
use crate::model::Readout;
use crate::eval::annotations::PairDatabase;
use crate::eval::genes::{gene_recall, GeneRecallConfig, GeneVectors, NullMode, SourceRecall, DECODER_COMPONENTS, ENCODER_COMPONENTS};
use crate::eval::perturb::input::PerturbInput;
use crate::eval::perturb::report::PerturbReport;
use crate::eval::perturb::run::{run as run_benchmark, PerturbConfig};
use crate::train::health::Health;
use crate::train::{checkpoint, resume, train, RunConfig, TrainOptions};
use crate::{Error, Result};

/// What training left, for the table and the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    pub steps: u64,
    /// Wall time of the training calls that made the run (a resumed run's parts summed).
    pub seconds: f64,
    pub samples_per_s: f64,
    pub val_loss: Option<f64>,
    pub val_baseline: Option<f64>,
    pub health: Option<Health>,
}

/// One screen's benchmark of the cell's embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreenRecord {
    pub screen: String,
    pub embed_seconds: f64,
    pub bench_seconds: f64,
    pub report: PerturbReport,
}

/// Recall of one source of gene vectors: the union of the databases ("combined") and each one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneScore {
    pub recall: f64,
    /// The combined recall of each random-pair null, in seed order.
    pub null_recalls: Vec<f64>,
    pub n_pairs_covered: usize,
    pub databases: Vec<(String, f64)>,
}

impl GeneScore {
    fn of(r: &SourceRecall) -> Result<GeneScore> {
        let combined = r
            .databases
            .iter()
            .find(|d| d.database == "combined")
            .or(r.databases.first())
            .ok_or_else(|| Error::Invalid(format!("{}: gene recall scored no database", r.origin)))?;
        Ok(GeneScore {
            recall: combined.recall,
            null_recalls: combined.null_recalls.clone(),
            n_pairs_covered: combined.n_pairs_covered,
            databases: r.databases.iter().map(|d| (d.database.clone(), d.recall)).collect(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenesRecord {
    pub encoder: GeneScore,
    pub decoder: GeneScore,
}

/// A finished cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub config_key: String,
    pub seed: u64,
    pub train: TrainRecord,
    pub screens: Vec<ScreenRecord>,
    pub genes: GenesRecord,
}

/// What the evaluation stages share across cells: each screen's labels and expression (read
/// once), the pair databases, the settings.
pub struct EvalContext {
    pub screens: Vec<(Screen, PerturbInput)>,
    pub bench: PerturbConfig,
    pub genes: GeneSettings,
    pub gene_dbs: Vec<PairDatabase>,
    pub screen_dbs: Vec<Vec<PairDatabase>>,
    /// Hash of the evaluation settings and inputs, part of every evaluation record's key.
    pub eval_key: String,
    /// libtorch threads while embedding (`None`: libtorch's default).
    pub threads: Option<usize>,
    /// How each cell's model is read out.
    pub readout: Readout,
}

impl EvalContext {
    /// Identity of the evaluation: screens (path, size, modification time), annotation files,
    /// benchmark and gene settings, and the read-out.
    pub fn key_of(screens: &[Screen], bench: &PerturbConfig, genes: &GeneSettings, gene_annotations: &[PathBuf], readout: Readout) -> String {
        let mut h = Sha256::new();
        for s in screens {
            // The screen's settings without its paths (their identity follows, canonical).
            h.update(format!("{}|{}|{}|{}", s.name, s.pert_key, s.batch_key, s.control).as_bytes());
            h.update(file_identity(&s.h5ad).as_bytes());
            for a in &s.annotations {
                h.update(file_identity(a).as_bytes());
            }
        }
        h.update(serde_json::to_string(bench).expect("serialises").as_bytes());
        h.update(serde_json::to_string(genes).expect("serialises").as_bytes());
        for a in gene_annotations {
            h.update(file_identity(a).as_bytes());
        }
        // Only a non-default read-out enters the key, so studies cached before it existed stay valid.
        if readout != Readout::Cls {
            h.update(format!("readout={readout}").as_bytes());
        }
        hex(&h.finalize())[..16].to_string()
    }
}

/// A file's path (canonical, so running from another folder does not change it), size and
/// modification time: cheap, and changes when the file is replaced.
pub fn file_identity(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let path = path.as_path();
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta.and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    format!("{}|{size}|{mtime}", path.display())
}

/// The cell's folder under the study's output.
pub fn cell_dir(out: &Path, spec: &CellSpec) -> PathBuf {
    out.join("cells").join(format!("{}-s{}", spec.config_key, spec.seed))
}

/// The version of what the records hold; bumped when a record's meaning changes, so old caches are
/// recomputed (not on every release, which would retrain every study).
const CACHE_SCHEMA: &str = "txfm-ablate-1";

/// The key of the cell's training: its config with seed and steps.
fn train_key(config: &RunConfig, corpus: &Path) -> String {
    let config = without_device(config);
    let mut h = Sha256::new();
    h.update(CACHE_SCHEMA.as_bytes());
    h.update(config.to_toml().as_bytes());
    h.update(corpus_identity(corpus).as_bytes());
    hex(&h.finalize())[..16].to_string()
}

/// The key of a cell's evaluation records: its training's and the evaluation's.
fn eval_record_key(train_key: &str, eval_key: &str) -> String {
    format!("{train_key}-{eval_key}")
}

/// Which stages a cell needs, without computing anything (for the plan and the progress bar).
pub fn cached_result(out: &Path, spec: &CellSpec, config: &RunConfig, ctx_key: &str, screens: &[Screen]) -> Result<Option<CellResult>> {
    let dir = cell_dir(out, spec);
    let tk = train_key(config, &spec.corpus);
    let ek = eval_record_key(&tk, ctx_key);
    let Record::Valid(train) = read_record::<TrainRecord>(&dir.join("train.rec"), &tk)? else { return Ok(None) };
    let mut records = Vec::new();
    for s in screens {
        let Record::Valid(r) = read_record::<ScreenRecord>(&dir.join(format!("{}.rec", s.name)), &ek)? else { return Ok(None) };
        records.push(r);
    }
    let Record::Valid(genes) = read_record::<GenesRecord>(&dir.join("genes.rec"), &ek)? else { return Ok(None) };
    Ok(Some(CellResult { config_key: spec.config_key.clone(), seed: spec.seed, train, screens: records, genes }))
}

/// Runs (or finishes) the cell with `config` (the spec's, its steps resolved). `stage` is told
/// each stage as it starts. Warnings (corrupt records found) go to `log`.
pub fn run_cell(out: &Path, spec: &CellSpec, config: &RunConfig, ctx: &EvalContext, stage: &dyn Fn(&str), log: &dyn Fn(String)) -> Result<CellResult> {
    let dir = cell_dir(out, spec);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tk = train_key(config, &spec.corpus);
    let ek = eval_record_key(&tk, &ctx.eval_key);
    let run_dir = dir.join("run");
    let train_rec = dir.join("train.rec");

    let (train_record, retrained) = match read_record::<TrainRecord>(&train_rec, &tk)? {
        Record::Valid(t) if checkpoint::any_checkpoint(&run_dir)?.is_some() => (t, false),
        found => {
            if let Record::Corrupt(why) = &found {
                log(format!("{}: train.rec {why}: training again", dir.display()));
                remove_dir(&run_dir)?;
            }
            stage("train");
            (train_stage(&run_dir, spec, config)?, true)
        }
    };
    if retrained {
        write_record(&train_rec, &tk, &train_record)?;
    }

    let mut screens = Vec::new();
    for ((screen, input), dbs) in ctx.screens.iter().zip(&ctx.screen_dbs) {
        let rec = dir.join(format!("{}.rec", screen.name));
        match read_record::<ScreenRecord>(&rec, &ek)? {
            Record::Valid(r) if !retrained => screens.push(r),
            found => {
                if let Record::Corrupt(why) = &found {
                    log(format!("{}: {why}: evaluating again", rec.display()));
                }
                stage(&format!("embed {}", screen.name));
                let r = screen_stage(&dir, &run_dir, spec, config, screen, input, dbs, ctx, stage)?;
                write_record(&rec, &ek, &r)?;
                screens.push(r);
            }
        }
    }

    let rec = dir.join("genes.rec");
    let genes = match read_record::<GenesRecord>(&rec, &ek)? {
        Record::Valid(g) if !retrained => g,
        found => {
            if let Record::Corrupt(why) = &found {
                log(format!("{}: {why}: scoring again", rec.display()));
            }
            stage("gene recall");
            let g = genes_stage(&run_dir, ctx)?;
            write_record(&rec, &ek, &g)?;
            g
        }
    };
    Ok(CellResult { config_key: spec.config_key.clone(), seed: spec.seed, train: train_record, screens, genes })
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

fn train_stage(run_dir: &Path, spec: &CellSpec, config: &RunConfig) -> Result<TrainRecord> {
    let corpus = Arc::new(Corpus::open(&spec.corpus)?);
    let opts = TrainOptions::new(run_dir);
    let started = Instant::now();
    // A run killed mid-way resumes from its newest intact checkpoint: exact resume makes the
    // weights those of an uninterrupted run. A folder without one, or one whose run was made for
    // another config (a changed budget), starts afresh.
    let same_config = RunConfig::load(&run_dir.join("config.toml")).is_ok_and(|c| without_device(&c) == without_device(config));
    let outcome = if same_config && checkpoint::any_checkpoint(run_dir)?.is_some() {
        resume(corpus, &opts, Some(config.device_spec()?))?
    } else {
        remove_dir(run_dir)?;
        train(corpus, config, &opts)?
    };
    // A run killed after its last checkpoint resumes with nothing left to do and evaluates
    // nothing: its last validation is in metrics.jsonl.
    let last_eval = crate::train::metrics::read_metrics(&run_dir.join("metrics.jsonl"))?.into_iter().rev().find(|r| r.val_loss.is_some());
    let (val_loss, val_baseline, health) = match (outcome.eval, last_eval) {
        (Some(e), _) => (Some(e.loss), Some(e.baseline), e.health),
        (None, Some(r)) => (r.val_loss, r.val_baseline, r.health),
        (None, None) => (None, None, None),
    };
    Ok(TrainRecord { steps: outcome.step, seconds: started.elapsed().as_secs_f64(), samples_per_s: outcome.samples_per_s, val_loss, val_baseline, health })
}

#[allow(clippy::too_many_arguments)]
fn screen_stage(
    dir: &Path,
    run_dir: &Path,
    spec: &CellSpec,
    config: &RunConfig,
    screen: &Screen,
    input: &PerturbInput,
    dbs: &[PairDatabase],
    ctx: &EvalContext,
    stage: &dyn Fn(&str),
) -> Result<ScreenRecord> {
    let npy = dir.join(format!("{}.npy", screen.name));
    let started = Instant::now();
    let opts = EmbedOptions {
        model: run_dir.to_path_buf(),
        input: screen.h5ad.clone(),
        output: npy.clone(),
        format: Some(OutputFormat::Npy),
        device: config.device_spec()?,
        threads: ctx.threads,
        weights_corpus: Some(spec.corpus.clone()),
        readout: ctx.readout,
        ..EmbedOptions::default()
    };
    EmbedJob::prepare(opts)?.run(&indicatif::ProgressBar::hidden())?;
    let rows = NpyRows::open(&npy)?;
    let labels = input.labels();
    if rows.n_obs != labels.n_obs {
        return Err(Error::format(&npy, format!("{} rows, but screen '{}' has {} labelled cells", rows.n_obs, screen.name, labels.n_obs)));
    }
    let x = rows.read_rows(0..rows.n_obs)?;
    let embed_seconds = started.elapsed().as_secs_f64();
    stage(&format!("benchmark {}", screen.name));
    let started = Instant::now();
    let cell_input = PerturbInput { embeddings: vec![("X_txfm".into(), labels.with_x(rows.d, x))], ..input.clone() };
    let report = run_benchmark(&cell_input, dbs, &ctx.bench, &indicatif::ProgressBar::hidden())?;
    Ok(ScreenRecord { screen: screen.name.clone(), embed_seconds, bench_seconds: started.elapsed().as_secs_f64(), report })
}

fn genes_stage(run_dir: &Path, ctx: &EvalContext) -> Result<GenesRecord> {
    let (encoder, decoder) = GeneVectors::from_checkpoint(run_dir)?;
    let score = |v: &GeneVectors, components: usize| -> Result<GeneScore> {
        let cfg = GeneRecallConfig { components, seeds: ctx.genes.null_seeds.clone(), ..GeneRecallConfig::default() };
        GeneScore::of(&gene_recall(v, &ctx.gene_dbs, &cfg, NullMode::Streamed)?)
    };
    Ok(GenesRecord { encoder: score(&encoder, ENCODER_COMPONENTS)?, decoder: score(&decoder, DECODER_COMPONENTS)? })
}
