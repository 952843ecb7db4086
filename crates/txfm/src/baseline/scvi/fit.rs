//! Fitting scVI on a [`CountInput`] (an expression file or a corpus, streamed), the posterior mean
//! of every cell (`obsm['X_scvi']`), and the saved model: `config.toml`, `genes.tsv` (the genes
//! used), `batches.json`, `weights.safetensors` and `history.jsonl`, like a txfm
//! run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::config::{OptimizerKind, ScviConfig};
use super::data::{for_each_batch, Minibatch, Plan, Split};
use super::module::{ScviModule, DECODER_GENE_WEIGHTS, ENCODER_GENE_WEIGHTS};
use crate::atomic::{temp_dir_beside, write_atomic};
use crate::baseline::hvg::{highly_variable_seurat, GeneStats, DEFAULT_BINS};
use crate::baseline::output::ObsmSink;
use crate::baseline::CountInput;
use crate::{Error, Result};

/// One epoch's losses per cell (scvi-tools' `elbo_*`, `reconstruction_loss_*`, `kl_local_*`:
/// sums over the epoch's cells divided by their number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub kl_weight: f64,
    pub elbo_train: f64,
    pub reconstruction_train: f64,
    pub kl_train: f64,
    pub elbo_validation: Option<f64>,
    pub reconstruction_validation: Option<f64>,
    pub kl_validation: Option<f64>,
    pub seconds: f64,
}

/// A fitted (or loaded) scVI model.
pub struct Scvi {
    pub config: ScviConfig,
    pub vs: nn::VarStore,
    pub module: ScviModule,
    /// Ids and symbols of the genes used. `[G]`
    pub var_names: Vec<String>,
    pub var_symbols: Vec<String>,
    /// The obs column of the batch covariate, and its labels in code order.
    pub batch_key: Option<String>,
    pub batch_names: Vec<String>,
    pub history: Vec<EpochRecord>,
}

/// How many cells a fit used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitSizes {
    pub n_train: usize,
    pub n_validation: usize,
}

/// The batch codes of every cell (all 0 without a key).
fn batch_codes(input: &mut CountInput, batch_key: Option<&str>) -> Result<(Vec<u32>, Vec<String>)> {
    match batch_key {
        None => Ok((vec![0; input.n_obs()], vec!["all".into()])),
        Some(key) => {
            let obs = input.obs()?;
            let path = input.path().to_path_buf();
            obs.codes(key, &path)
        }
    }
}

/// Fits scVI on `input`. `on_epoch(record, total_epochs)` reports each epoch; `on_batch()` each
/// minibatch (for a progress bar).
pub fn fit_scvi(
    input: &mut CountInput,
    config: &ScviConfig,
    batch_key: Option<&str>,
    validation: Option<&[usize]>,
    device: Device,
    on_epoch: &mut dyn FnMut(&EpochRecord, usize),
    on_batch: &mut dyn FnMut(),
) -> Result<(Scvi, SplitSizes)> {
    config.validate("scVI config")?;
    let n_obs = input.n_obs();
    if n_obs < 2 {
        return Err(Error::format(input.path(), format!("{n_obs} cell(s): scVI needs at least two")));
    }
    // One statistics pass: checks every value is a raw count (as every baseline does) and gives
    // the highly variable genes when asked.
    let stats = GeneStats::compute(input, crate::baseline::pca::SCANPY_TARGET_SUM)?;
    let used: Vec<usize> = match config.n_top_genes {
        Some(n) if n < input.n_vars() => highly_variable_seurat(&stats, n, DEFAULT_BINS).selected,
        _ => (0..input.n_vars()).collect(),
    };
    let mut gene_slot = vec![u32::MAX; input.n_vars()];
    for (k, &j) in used.iter().enumerate() {
        gene_slot[j] = k as u32;
    }
    let (batch, batch_names) = batch_codes(input, batch_key)?;
    let n_batch = batch_names.len();
    // scvi-tools' split: a seeded permutation, the first n_val cells validate; or the cells given
    // (to compare with another fit on the same held-out cells).
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut is_val = vec![false; n_obs];
    let (n_train, n_val) = match validation {
        Some(rows) => {
            for &r in rows {
                if r >= n_obs {
                    return Err(Error::Invalid(format!("validation cell {r} is beyond the input's {n_obs} cells")));
                }
                is_val[r] = true;
            }
            let n_val = is_val.iter().filter(|&&v| v).count();
            (n_obs - n_val, n_val)
        }
        None => {
            let mut n_train = ((config.train_size * n_obs as f64).ceil() as usize).min(n_obs);
            // As scvi-tools: a last training batch of 1 or 2 cells (batch norm cannot train on it)
            // moves to the validation set instead.
            let rest = n_train % config.batch_size;
            if config.train_size < 1.0 && n_train > config.batch_size && rest < 3 {
                n_train -= rest;
            }
            let mut order: Vec<usize> = (0..n_obs).collect();
            order.shuffle(&mut rng);
            for &i in &order[..n_obs - n_train] {
                is_val[i] = true;
            }
            (n_train, n_obs - n_train)
        }
    };
    let plan = Plan { gene_slot, n_genes: used.len(), batch, n_batch, is_val };

    tch::manual_seed(config.seed as i64);
    let vs = nn::VarStore::new(device);
    let module = ScviModule::new(&vs.root(), config, used.len(), n_batch);
    let mut opt = match config.optimizer {
        OptimizerKind::Adam => nn::Adam { wd: config.weight_decay, eps: config.eps, ..Default::default() }.build(&vs, config.lr)?,
        OptimizerKind::AdamW => nn::AdamW { wd: config.weight_decay, eps: config.eps, ..Default::default() }.build(&vs, config.lr)?,
    };
    let epochs = config.epochs_for(n_obs);
    let mut history = Vec::with_capacity(epochs);
    for epoch in 0..epochs {
        let started = Instant::now();
        let kl_weight = config.kl_weight(epoch);
        let mut sums = [0f64; 2];
        let mut seen = 0usize;
        for_each_batch(input, &plan, Split::Train, config.batch_size, config.shuffle_rows, Some(&mut rng), 2, &mut |b| {
            let (x, c) = tensors(&b, &plan, device);
            let t = module.terms(&x, c.as_ref(), kl_weight, true);
            opt.backward_step(&t.loss);
            accumulate(&mut sums, &t.reconstruction, &t.kl);
            seen += b.len();
            on_batch();
            Ok(())
        })?;
        if seen == 0 {
            return Err(Error::Invalid(format!("scVI: no training cells ({n_obs} cells, train_size {})", config.train_size)));
        }
        let val = if n_val > 0 { Some(evaluate(&module, input, &plan, config, kl_weight, device)?) } else { None };
        let per = |s: f64| s / seen as f64;
        let record = EpochRecord {
            epoch,
            kl_weight,
            elbo_train: per(sums[0] + sums[1]),
            reconstruction_train: per(sums[0]),
            kl_train: per(sums[1]),
            elbo_validation: val.map(|v| v[0] + v[1]),
            reconstruction_validation: val.map(|v| v[0]),
            kl_validation: val.map(|v| v[1]),
            seconds: started.elapsed().as_secs_f64(),
        };
        if !record.elbo_train.is_finite() || record.elbo_validation.is_some_and(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "scVI: the ELBO became non-finite at epoch {epoch} (train {}, validation {:?})",
                record.elbo_train, record.elbo_validation
            )));
        }
        on_epoch(&record, epochs);
        history.push(record);
    }
    let var_names = used.iter().map(|&j| input.var_names[j].clone()).collect();
    let var_symbols = used.iter().map(|&j| input.var_symbols[j].clone()).collect();
    let scvi = Scvi { config: config.clone(), vs, module, var_names, var_symbols, batch_key: batch_key.map(String::from), batch_names, history };
    Ok((scvi, SplitSizes { n_train, n_validation: n_val }))
}

/// Adds a batch's summed reconstruction and KL to `sums`.
fn accumulate(sums: &mut [f64; 2], reconstruction: &Tensor, kl: &Tensor) {
    sums[0] += reconstruction.sum(Kind::Double).double_value(&[]);
    sums[1] += kl.sum(Kind::Double).double_value(&[]);
}

/// Per-cell reconstruction and KL over the validation cells, in evaluation mode (batch norm's
/// running statistics, no dropout; z still sampled, as scvi-tools' validation step does).
fn evaluate(module: &ScviModule, input: &mut CountInput, plan: &Plan, config: &ScviConfig, kl_weight: f64, device: Device) -> Result<[f64; 2]> {
    let _guard = tch::no_grad_guard();
    let mut sums = [0f64; 2];
    let mut n = 0usize;
    for_each_batch(input, plan, Split::Validation, config.batch_size, config.shuffle_rows, None, 1, &mut |b| {
        let (x, c) = tensors(&b, plan, device);
        let t = module.terms(&x, c.as_ref(), kl_weight, false);
        accumulate(&mut sums, &t.reconstruction, &t.kl);
        n += b.len();
        Ok(())
    })?;
    Ok([sums[0] / n.max(1) as f64, sums[1] / n.max(1) as f64])
}

/// The batch's counts `[n, G]` and one-hot batches `[n, n_batch]` (none with a single batch).
fn tensors(b: &Minibatch, plan: &Plan, device: Device) -> (Tensor, Option<Tensor>) {
    let n = b.len() as i64;
    let x = Tensor::from_slice(&b.counts).view([n, plan.n_genes as i64]).to_device(device);
    let c = (plan.n_batch > 1).then(|| {
        let codes = Tensor::from_slice(&b.batch.iter().map(|&c| c as i64).collect::<Vec<_>>());
        codes.one_hot(plan.n_batch as i64).to_kind(Kind::Float).to_device(device)
    });
    (x, c)
}

impl Scvi {
    /// The posterior mean of every cell of `input`, in input order, passed to `sink` chunk by
    /// chunk (`[rows, n_latent]` row-major). The input's genes are matched to the model's by id.
    pub fn latent(&self, input: &mut CountInput, device: Device, sink: &mut dyn FnMut(&[f32]) -> Result<()>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let plan = self.plan_for(input)?;
        let batch = self.config.batch_size.max(512);
        for_each_batch(input, &plan, Split::All, batch, batch, None, 1, &mut |b| {
            let (x, _) = tensors(&b, &plan, device);
            let (qm, _) = self.module.encode(&x, false);
            let rows: Vec<f32> = Vec::try_from(qm.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view(-1))?;
            if rows.iter().any(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!("scVI: non-finite latent values for the cells from row {}", b.rows[0])));
            }
            sink(&rows)
        })
    }

    /// Maps `input`'s genes onto the model's; every model gene must be present. The genes the model
    /// was fitted on, in order (the fitted file itself, duplicated ids included), map by position;
    /// any other input by id, which must then be unique among the model's genes.
    fn plan_for(&self, input: &mut CountInput) -> Result<Plan> {
        let mut gene_slot = vec![u32::MAX; input.n_vars()];
        if input.var_names == self.var_names {
            for (k, slot) in gene_slot.iter_mut().enumerate() {
                *slot = k as u32;
            }
        } else {
            let mut seen = std::collections::HashSet::new();
            if let Some(d) = self.var_names.iter().find(|g| !seen.insert(g.as_str())) {
                return Err(Error::format(input.path(), format!("the scVI model's gene '{d}' appears twice; embed the file it was fitted on, or one with its exact genes in order")));
            }
            let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
            for (i, g) in input.var_names.iter().enumerate() {
                index.entry(g.as_str()).or_insert(i);
            }
            let mut missing = Vec::new();
            for (k, g) in self.var_names.iter().enumerate() {
                match index.get(g.as_str()) {
                    Some(&j) => gene_slot[j] = k as u32,
                    None => missing.push(g.as_str()),
                }
            }
            if !missing.is_empty() {
                return Err(Error::format(
                    input.path(),
                    format!("{} of the scVI model's {} genes are missing (first: {})", missing.len(), self.var_names.len(), missing[..missing.len().min(5)].join(", ")),
                ));
            }
        }
        let n = input.n_obs();
        Ok(Plan { gene_slot, n_genes: self.var_names.len(), batch: vec![0; n], n_batch: self.batch_names.len(), is_val: vec![false; n] })
    }

    /// Per-gene vectors as the paper reads scVI's: the first encoder layer's weights (one column
    /// per gene, `[G, n_hidden]` after transposing) and the decoder's per-gene weights `[G, n_hidden]`.
    pub fn gene_weights(&self) -> Result<(Tensor, Tensor)> {
        let vars = self.vs.variables();
        let get = |name: &str| vars.get(name).map(|t| t.detach().to_device(Device::Cpu)).ok_or_else(|| Error::Invalid(format!("scVI weights lack {name}")));
        Ok((get(ENCODER_GENE_WEIGHTS)?.transpose(0, 1).contiguous(), get(DECODER_GENE_WEIGHTS)?.contiguous()))
    }

    /// Writes the model folder `dir` (atomically: built beside it, renamed into place).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = temp_dir_beside(dir)?;
        let t = tmp.path();
        write_atomic(&t.join("config.toml"), &toml::to_string_pretty(&self.config).expect("serialises"))?;
        let genes: String = self.var_names.iter().zip(&self.var_symbols).map(|(i, s)| format!("{i}\t{s}\n")).collect();
        write_atomic(&t.join("genes.tsv"), &format!("gene_id\tsymbol\n{genes}"))?;
        let batches = serde_json::json!({ "batch_key": self.batch_key, "batch_names": self.batch_names });
        write_atomic(&t.join("batches.json"), &batches.to_string())?;
        let history: String = self.history.iter().map(|r| serde_json::to_string(r).expect("serialises") + "\n").collect();
        write_atomic(&t.join("history.jsonl"), &history)?;
        self.vs.save(t.join("weights.safetensors"))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let kept = tmp.keep();
        std::fs::rename(&kept, dir).map_err(|e| Error::io(dir, e))
    }

    /// Loads a model folder written by [`Scvi::save`].
    pub fn load(dir: &Path, device: Device) -> Result<Scvi> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| Error::io(dir.join(name), e));
        let config: ScviConfig = toml::from_str(&read("config.toml")?).map_err(|e| Error::format(dir.join("config.toml"), e.to_string()))?;
        let (mut var_names, mut var_symbols) = (Vec::new(), Vec::new());
        for line in read("genes.tsv")?.lines().skip(1) {
            let (id, sym) = line.split_once('\t').ok_or_else(|| Error::format(dir.join("genes.tsv"), format!("bad line '{line}'")))?;
            var_names.push(id.to_string());
            var_symbols.push(sym.to_string());
        }
        #[derive(Deserialize)]
        struct Batches {
            batch_key: Option<String>,
            batch_names: Vec<String>,
        }
        let b: Batches = serde_json::from_str(&read("batches.json")?).map_err(|e| Error::format(dir.join("batches.json"), e.to_string()))?;
        let (key, batch_names) = (b.batch_key, b.batch_names);
        let mut vs = nn::VarStore::new(device);
        let module = ScviModule::new(&vs.root(), &config, var_names.len(), batch_names.len());
        vs.load(dir.join("weights.safetensors")).map_err(|e| Error::format(dir.join("weights.safetensors"), format!("{e} (do genes.tsv and batches.json belong to these weights?)")))?;
        let history = read("history.jsonl")?.lines().map(|l| serde_json::from_str(l).map_err(|e| Error::format(dir.join("history.jsonl"), e.to_string()))).collect::<Result<_>>()?;
        Ok(Scvi { config, vs, module, var_names, var_symbols, batch_key: key, batch_names, history })
    }
}

/// Fits scVI on `input` and writes `obsm['X_scvi']` to `out` (a copy of an h5ad input unless
/// `embedding_only`) and the model folder beside it ([`model_dir_beside`]). Returns the model, the
/// split and what the copy left out.
#[allow(clippy::too_many_arguments)]
pub fn write_scvi(
    input: &mut CountInput,
    config: &ScviConfig,
    batch_key: Option<&str>,
    validation: Option<&[usize]>,
    device: Device,
    out: &Path,
    embedding_only: bool,
    on_epoch: &mut dyn FnMut(&EpochRecord, usize),
) -> Result<(Scvi, SplitSizes, Vec<String>)> {
    let (model, split) = fit_scvi(input, config, batch_key, validation, device, on_epoch, &mut || {})?;
    let mut sink = ObsmSink::create(input, out, OBSM_KEY, embedding_only, &model.var_names, &model.var_symbols)?;
    let n_latent = model.config.n_latent;
    model.latent(input, device, &mut |rows| sink.append(OBSM_KEY, n_latent, rows))?;
    // The model first: the embedding is renamed into place only once everything is written.
    model.save(&model_dir_beside(out))?;
    let warnings = sink.finish()?;
    Ok((model, split, warnings))
}

/// The `obsm` key of scVI's embedding.
pub const OBSM_KEY: &str = "X_scvi";

/// The model folder written beside an output `.h5ad`: `<stem>.scvi/`.
pub fn model_dir_beside(h5ad: &Path) -> PathBuf {
    h5ad.with_extension("scvi")
}
