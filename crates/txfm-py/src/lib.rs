//! `txfm._txfm`: the Python extension under the `txfm` package. Every function here converts
//! arguments, calls the txfm library (the same functions the CLI calls) with the GIL released,
//! and converts the result back; the AnnData handling lives in the Python layer
//! (`python/txfm/`). Errors become Python exceptions with the library's messages
//! ([`errors`]).

mod errors;
mod matrix;
mod progress;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use txfm::baseline::{fit_pca, libnorm_features, CountInput, LibNormConfig, PcaConfig};
use txfm::config::RunConfig;
use txfm::data::genes::GeneIdKind;
use txfm::data::{open_source, ExpressionSource, MemorySource, ObsColumn, ObsFrame, SourceOptions};
use txfm::embed::{EmbedJob, EmbedOptions};
use txfm::eval::perturb::input::InputConfig;
use txfm::eval::perturb::prepare::Baseline;
use txfm::eval::perturb::workflow::{bench_file, bench_loaded, Additions, BenchSettings};

use errors::PyResultExt;
use matrix::HeldMatrix;
use progress::Progress;

/// Where a call's expression comes from: a file streamed from disk (a backed AnnData's, or a
/// path), or the buffers of an in-memory AnnData.
struct Input<'py> {
    file: Option<(PathBuf, SourceOptions)>,
    held: Option<HeldMatrix<'py>>,
    name: String,
    matrix_name: String,
    obs: ObsFrame,
    var_names: Vec<String>,
}

impl<'py> Input<'py> {
    /// `spec`: `("file", path, layer)` or a matrix spec ([`HeldMatrix::extract`]); `obs_columns`:
    /// `[(name, codes, categories)]` (pandas categoricals; code -1 is missing).
    fn new(
        spec: &Bound<'py, PyAny>,
        matrix_name: &str,
        obs_names: Vec<String>,
        var_names: Vec<String>,
        obs_columns: Vec<(String, Vec<i32>, Vec<String>)>,
        allow_non_counts: bool,
    ) -> PyResult<Self> {
        let kind: String = spec.get_item(0)?.extract()?;
        if let Some((k, codes, _)) = obs_columns.iter().find(|(_, codes, _)| codes.len() != obs_names.len()) {
            return Err(PyValueError::new_err(format!("obs column {k}: {} values for {} cells", codes.len(), obs_names.len())));
        }
        let columns = obs_columns.into_iter().map(|(k, codes, categories)| (k, ObsColumn::Categorical { codes, categories })).collect();
        let obs = ObsFrame { names: obs_names, columns };
        let (file, held) = if kind == "file" {
            let path: PathBuf = spec.get_item(1)?.extract()?;
            let layer: Option<String> = spec.get_item(2)?.extract()?;
            (Some((path, SourceOptions { layer, allow_non_counts, ..Default::default() })), None)
        } else {
            let held = HeldMatrix::extract(spec)?;
            if let HeldMatrix::Dense(a) = &held
                && a.shape() != (obs.n_obs(), var_names.len())
            {
                let (n, m) = a.shape();
                return Err(PyValueError::new_err(format!(
                    "{matrix_name}: a {n} × {m} array for {} cells × {} genes",
                    obs.n_obs(),
                    var_names.len()
                )));
            }
            (None, Some(held))
        };
        Ok(Input { file, held, name: "AnnData (in memory)".into(), matrix_name: matrix_name.into(), obs, var_names })
    }

    /// The source to stream. An in-memory AnnData's `obs` and `var_names` come from Python; a
    /// file's from the file.
    fn source(&self) -> PyResult<Box<dyn ExpressionSource + '_>> {
        match (&self.file, &self.held) {
            (Some((path, opts)), _) => Ok(open_source(path, opts).py()?),
            (None, Some(held)) => {
                let m = held.matrix()?;
                let src = MemorySource::new(&self.name, &self.matrix_name, m, self.obs.clone(), self.var_names.clone()).py()?;
                Ok(Box::new(src))
            }
            (None, None) => unreachable!("an input is a file or a matrix"),
        }
    }
}

fn gene_id_kind(s: &str) -> PyResult<GeneIdKind> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| PyValueError::new_err(format!("gene_ids '{s}': expected auto, symbol, ensembl or raw")))
}

fn array2<'py>(py: Python<'py>, n: usize, d: usize, values: Vec<f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let a = Array2::from_shape_vec((n, d), values).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

/// Embeddings of every row (`readout`: `cls` or `cls_mean`; in the model's principal axes unless
/// `principal_axes` is false). Returns `float32 [n_obs, d]` (`2d` for `cls_mean`).
#[pyfunction]
#[pyo3(signature = (model, spec, obs_names, var_names, matrix_name="X", k=None, samplings=1, readout="cls", principal_axes=true, seed=None, batch_size=256, device="cpu", gene_ids="auto", allow_non_counts=false, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn embed<'py>(
    py: Python<'py>,
    model: PathBuf,
    spec: &Bound<'py, PyAny>,
    obs_names: Vec<String>,
    var_names: Vec<String>,
    matrix_name: &str,
    k: Option<usize>,
    samplings: usize,
    readout: &str,
    principal_axes: bool,
    seed: Option<u64>,
    batch_size: usize,
    device: &str,
    gene_ids: &str,
    allow_non_counts: bool,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let input = Input::new(spec, matrix_name, obs_names, var_names, vec![], allow_non_counts)?;
    let opts = EmbedOptions {
        model,
        source: SourceOptions { allow_non_counts, ..Default::default() },
        gene_ids: gene_id_kind(gene_ids)?,
        k,
        samplings,
        readout: readout.parse().py()?,
        principal_axes,
        seed,
        batch_size,
        device: device.parse().py()?,
        threads,
        ..EmbedOptions::default()
    };
    let src = input.source()?;
    let n = src.n_obs();
    let bar = Progress::new(progress, "embedding", n as u64);
    let (values, summary) = py
        .detach(|| bar.run(|b| EmbedJob::prepare_source(opts, src).and_then(|job| job.run_to_vec(b))))
        .py()?;
    array2(py, n, summary.dim, values)
}

/// PCA of LibNorm + log1p values, as `txfm baseline pca` fits it. Returns a dict: `scores`
/// `[n_obs, n_comps]`, `components` `[n_comps, p]`, `var_indices` `[p]`, `variance`,
/// `variance_ratio`, `solver`, `warning`.
#[pyfunction]
#[pyo3(signature = (spec, obs_names, var_names, matrix_name="X", n_comps=50, n_top_genes=None, allow_non_counts=false, progress=None))]
#[allow(clippy::too_many_arguments)]
fn pca<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyAny>,
    obs_names: Vec<String>,
    var_names: Vec<String>,
    matrix_name: &str,
    n_comps: usize,
    n_top_genes: Option<usize>,
    allow_non_counts: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let input = Input::new(spec, matrix_name, obs_names, var_names, vec![], allow_non_counts)?;
    let mut config = PcaConfig { n_top_genes, ..PcaConfig::default() };
    config.svd.n_components = n_comps;
    let src = input.source()?;
    let n = src.n_obs() as u64;
    // Each stage of the fit sizes the bar to the passes it expects.
    let bar = Progress::new(progress, "PCA", n);
    let fit = py
        .detach(|| {
            bar.run(|b| {
                let mut counts = CountInput::from_source(src, allow_non_counts)?;
                fit_pca(&mut counts, &config, &mut |event| event.apply(b, n as usize))
            })
        })
        .py()?;
    let d = PyDict::new(py);
    let k = fit.n_comps();
    d.set_item("scores", array2(py, fit.n_obs, k, fit.scores.clone())?)?;
    let p = fit.var_indices.len();
    let comps: Vec<f32> = fit.components.iter().map(|&v| v as f32).collect();
    d.set_item("components", array2(py, k, p, comps)?)?;
    d.set_item("var_indices", fit.var_indices.clone())?;
    d.set_item("variance", fit.explained_variance.clone())?;
    d.set_item("variance_ratio", fit.explained_variance_ratio.clone())?;
    d.set_item("solver", format!("{:?}", fit.solver).to_lowercase())?;
    d.set_item("warning", fit.convergence_warning())?;
    Ok(d)
}

/// The (Lib+Log)Norm baseline. Returns `(var_indices kept, float32 [n_obs, kept])`.
#[pyfunction]
#[pyo3(signature = (spec, obs_names, var_names, matrix_name="X", n_top_genes=Some(2000), target_sum=1e4, allow_non_counts=false))]
#[allow(clippy::too_many_arguments)]
fn libnorm<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyAny>,
    obs_names: Vec<String>,
    var_names: Vec<String>,
    matrix_name: &str,
    n_top_genes: Option<usize>,
    target_sum: f64,
    allow_non_counts: bool,
) -> PyResult<(Vec<usize>, Bound<'py, PyArray2<f32>>)> {
    let input = Input::new(spec, matrix_name, obs_names, var_names, vec![], allow_non_counts)?;
    let config = LibNormConfig { target_sum, n_top_genes };
    let src = input.source()?;
    let n = src.n_obs();
    let (keep, values) = py
        .detach(|| {
            let mut counts = CountInput::from_source(src, allow_non_counts)?;
            libnorm_features(&mut counts, &config, &mut |_| {})
        })
        .py()?;
    let p = keep.len();
    Ok((keep, array2(py, n, p, values)?))
}

/// scVI (scvi-tools' model and defaults, as `txfm baseline scvi` fits it). `obs_columns` carries
/// the batch column. Returns `(latent float32 [n_obs, n_latent], per-epoch history JSON)`; the
/// model is saved to `save` when given (readable by `txfm bench genes --scvi`).
#[pyfunction]
#[pyo3(signature = (spec, obs_names, var_names, obs_columns, matrix_name="X", batch_key=None, preset="default", n_latent=None, max_epochs=None, seed=None, device="cpu", save=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn scvi<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyAny>,
    obs_names: Vec<String>,
    var_names: Vec<String>,
    obs_columns: Vec<(String, Vec<i32>, Vec<String>)>,
    matrix_name: &str,
    batch_key: Option<String>,
    preset: &str,
    n_latent: Option<usize>,
    max_epochs: Option<usize>,
    seed: Option<u64>,
    device: &str,
    save: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, String)> {
    use txfm::baseline::scvi::{fit_scvi, ScviConfig};
    let input = Input::new(spec, matrix_name, obs_names, var_names, obs_columns, false)?;
    let mut config = ScviConfig::preset(preset).py()?;
    if let Some(k) = n_latent {
        config.n_latent = k;
    }
    if max_epochs.is_some() {
        config.max_epochs = max_epochs;
    }
    if let Some(s) = seed {
        config.seed = s;
    }
    let device = device.parse::<txfm::runtime::DeviceSpec>().py()?.resolve().py()?;
    let src = input.source()?;
    let n = src.n_obs();
    let bar = Progress::new(progress, "scVI epochs", 0);
    let (latent, history) = py
        .detach(|| {
            bar.run(|b| -> txfm::Result<_> {
                let mut counts = CountInput::from_source(src, false)?;
                let (model, _) = fit_scvi(&mut counts, &config, batch_key.as_deref(), None, device, &mut |r, total| {
                    b.set_length(total as u64);
                    b.set_position(r.epoch as u64 + 1);
                }, &mut || {})?;
                let mut latent = Vec::with_capacity(n * model.config.n_latent);
                model.latent(&mut counts, device, &mut |rows| {
                    latent.extend_from_slice(rows);
                    Ok(())
                })?;
                if let Some(dir) = &save {
                    model.save(dir)?;
                }
                Ok((latent, serde_json::to_string(&model.history).expect("the history serialises")))
            })
        })
        .py()?;
    let k = latent.len() / n.max(1);
    Ok((array2(py, n, k, latent)?, history))
}

/// The perturbation benchmark. `embeddings`: `[(key, float32 [n_obs, d])]` (in-memory data);
/// `file`: an `.h5ad` to read instead (its `obsm` keys are `keys`). `settings` and `input` are
/// JSON of [`BenchSettings`] and [`InputConfig`]. Returns `(report JSON, report.json path,
/// report.md path, plot paths)`.
#[pyfunction]
#[pyo3(signature = (spec, obs_names, var_names, obs_columns, embeddings, annotations, out, settings, input, matrix_name="X", model=None, readout="cls", baselines=vec![], progress=None))]
#[allow(clippy::too_many_arguments)]
fn bench_perturb<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyAny>,
    obs_names: Vec<String>,
    var_names: Vec<String>,
    obs_columns: Vec<(String, Vec<i32>, Vec<String>)>,
    embeddings: Vec<(String, numpy::PyReadonlyArray2<'py, f32>)>,
    annotations: Vec<PathBuf>,
    out: PathBuf,
    settings: &str,
    input: &str,
    matrix_name: &str,
    model: Option<PathBuf>,
    readout: &str,
    baselines: Vec<String>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, PathBuf, PathBuf, Vec<PathBuf>)> {
    let settings: BenchSettings = serde_json::from_str(settings).map_err(|e| PyValueError::new_err(format!("benchmark settings: {e}")))?;
    let input_cfg: InputConfig = serde_json::from_str(input).map_err(|e| PyValueError::new_err(format!("benchmark input: {e}")))?;
    let data = Input::new(spec, matrix_name, obs_names, var_names, obs_columns, false)?;
    let bar = Progress::new(progress, "benchmark", 0);
    let needs_file = model.is_some() || !baselines.is_empty() || input_cfg.guides.is_some();
    let outcome = match (&data.file, needs_file) {
        (Some((path, _)), true) => {
            let add = Additions {
                model,
                readout: readout.parse().py()?,
                baselines: baselines.iter().map(|b| b.parse::<Baseline>()).collect::<txfm::Result<_>>().py()?,
                scvi_max_epochs: None,
                ..Additions::default()
            };
            py.detach(|| bar.run(|b| bench_file(path, &input_cfg, &add, &settings, &annotations, &out, &mut |_| {}, b)))
        }
        (None, true) => return Err(PyValueError::new_err("a model, baselines or guides need the data in a file (a backed AnnData)")),
        (_, false) => {
            let given: Vec<(String, usize, Vec<f32>)> = embeddings
                .iter()
                .map(|(k, a)| {
                    let a = a.as_array();
                    (k.clone(), a.ncols(), a.iter().copied().collect())
                })
                .collect();
            let mut src = data.source()?;
            py.detach(|| {
                bar.run(|b| {
                    let cfg = settings.config()?;
                    let dbs = txfm::eval::annotations::load_paths(&annotations)?;
                    let loaded = txfm::eval::perturb::input::load_in_memory(src.as_mut(), given, &input_cfg)?;
                    bench_loaded(&loaded, &cfg, &dbs, &out, b)
                })
            })
        }
    }
    .py()?;
    let json = serde_json::to_string(&outcome.report).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((json, outcome.json, outcome.markdown, outcome.plots))
}

/// Gene-relationship recall from a model's encoder gene embeddings and decoder weights. Returns
/// the results as JSON (a list, one per source).
#[pyfunction]
#[pyo3(signature = (model, annotations, out=None, encoder_components=None, decoder_components=None, seeds=vec![0, 1, 2]))]
fn bench_genes(
    py: Python<'_>,
    model: PathBuf,
    annotations: Vec<PathBuf>,
    out: Option<PathBuf>,
    encoder_components: Option<usize>,
    decoder_components: Option<usize>,
    seeds: Vec<u64>,
) -> PyResult<String> {
    use txfm::eval::genes::{gene_recall, report, GeneRecallConfig, GeneVectors, NullMode, DECODER_COMPONENTS, ENCODER_COMPONENTS};
    let results = py
        .detach(|| -> txfm::Result<_> {
            let dbs = txfm::eval::annotations::load_paths(&annotations)?;
            let (enc, dec) = GeneVectors::from_checkpoint(&model)?;
            let mut results = Vec::new();
            for (v, components) in [(enc, encoder_components.unwrap_or(ENCODER_COMPONENTS)), (dec, decoder_components.unwrap_or(DECODER_COMPONENTS))] {
                let cfg = GeneRecallConfig { components, seeds: seeds.clone(), ..GeneRecallConfig::default() };
                results.push(gene_recall(&v, &dbs, &cfg, NullMode::Streamed)?);
            }
            if let Some(out) = &out {
                report::write(out, &results)?;
            }
            Ok(results)
        })
        .py()?;
    serde_json::to_string(&results).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Builds a corpus from a manifest (TOML) into `out`. Returns `corpus.json`'s content.
#[pyfunction]
#[pyo3(signature = (manifest, out, overwrite=false, paper_filters=false))]
fn corpus_build(py: Python<'_>, manifest: PathBuf, out: PathBuf, overwrite: bool, paper_filters: bool) -> PyResult<String> {
    let summary = py
        .detach(|| -> txfm::Result<_> {
            let mut m = txfm::corpus::Manifest::load(&manifest)?;
            if paper_filters {
                m.filters = txfm::corpus::Filters::paper();
            }
            txfm::corpus::build_corpus(&m, &out, &txfm::corpus::BuildOptions { overwrite, progress: false })
        })
        .py()?;
    serde_json::to_string(&summary).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A preset's (or a config file's) run config with `overrides` (dotted paths → values) applied,
/// as TOML.
#[pyfunction]
#[pyo3(signature = (preset="tiny", config=None, overrides=vec![]))]
fn run_config(preset: &str, config: Option<PathBuf>, overrides: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<String> {
    let base = match &config {
        Some(p) => RunConfig::load(p),
        None => RunConfig::preset(preset),
    }
    .py()?;
    let overrides = overrides.into_iter().map(|(k, v)| Ok((k, py_to_toml(&v)?))).collect::<PyResult<Vec<_>>>()?;
    Ok(base.with_overrides(&overrides, "run config").py()?.to_toml())
}

/// A Python value as TOML; `None` (which TOML lacks) removes the field. Numpy scalars are read
/// through `__index__` / `__float__` like Python numbers.
fn py_to_toml(v: &Bound<'_, PyAny>) -> PyResult<Option<toml::Value>> {
    use pyo3::types::{PyList, PyString, PyTuple};
    if v.is_none() {
        return Ok(None);
    }
    let type_name = v.get_type().name()?.to_string();
    if type_name == "bool" || type_name == "bool_" {
        return Ok(Some(toml::Value::Boolean(v.is_truthy()?)));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Some(toml::Value::String(v.extract()?)));
    }
    if v.hasattr("__index__")? {
        return Ok(Some(toml::Value::Integer(v.call_method0("__index__")?.extract()?)));
    }
    if v.hasattr("__float__")? {
        return Ok(Some(toml::Value::Float(v.call_method0("__float__")?.extract()?)));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let items = v.try_iter()?.map(|x| py_to_toml(&x?)).collect::<PyResult<Option<Vec<_>>>>()?;
        return items.map(|i| Some(toml::Value::Array(i))).ok_or_else(|| PyValueError::new_err("config lists cannot hold None"));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut t = toml::Table::new();
        for (k, x) in d.iter() {
            if let Some(x) = py_to_toml(&x)? {
                t.insert(k.extract()?, x);
            }
        }
        return Ok(Some(toml::Value::Table(t)));
    }
    Err(PyValueError::new_err(format!("config value {v}: expected a bool, number, string, list, dict or None")))
}

/// Trains a run of `config` (TOML) on `corpus` into `out`, or resumes the run in `out`.
/// `on_step(record: dict, total: int) -> bool` is called after every step; returning False (or
/// raising, e.g. KeyboardInterrupt) stops the run there, checkpointed. Returns the outcome.
#[pyfunction]
#[pyo3(signature = (corpus, out, config=None, resume=false, on_step=None))]
fn train<'py>(
    py: Python<'py>,
    corpus: PathBuf,
    out: PathBuf,
    config: Option<String>,
    resume: bool,
    on_step: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let config = match (&config, resume) {
        (Some(text), false) => Some(toml::from_str::<RunConfig>(text).map_err(|e| PyValueError::new_err(format!("run config: {e}")))?),
        (None, true) => None,
        _ => return Err(PyValueError::new_err("give a config to start a run, or resume=True alone")),
    };
    // A Python exception raised by the callback, re-raised once the run has stopped cleanly.
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let hook = on_step.map(|cb| {
        let raised = raised.clone();
        txfm::train::StepHook(Arc::new(move |record: &txfm::train::metrics::StepRecord, total: u64| {
            Python::attach(|py| {
                let outcome = py.check_signals().and_then(|_| {
                    let json = serde_json::to_string(record).expect("a record serialises");
                    let d = py.import("json")?.call_method1("loads", (json,))?;
                    cb.call1(py, (d, total))?.extract::<Option<bool>>(py)
                });
                match outcome {
                    Ok(go) => go.unwrap_or(true),
                    Err(e) => {
                        *raised.lock().expect("not poisoned") = Some(e);
                        false
                    }
                }
            })
        }))
    });
    let opts = txfm::train::TrainOptions { on_step: hook, ..txfm::train::TrainOptions::new(&out) };
    let outcome = py
        .detach(|| -> txfm::Result<_> {
            let corpus = Arc::new(txfm::corpus::Corpus::open(&corpus)?);
            match &config {
                Some(c) => txfm::train::train(corpus, c, &opts),
                None => txfm::train::resume(corpus, &opts, None),
            }
        })
        .py()?;
    if let Some(e) = raised.lock().expect("not poisoned").take() {
        return Err(e);
    }
    let d = PyDict::new(py);
    d.set_item("first_step", outcome.first_step)?;
    d.set_item("step", outcome.step)?;
    d.set_item("total_steps", outcome.total_steps)?;
    d.set_item("samples_per_s", outcome.samples_per_s)?;
    d.set_item("checkpoint", outcome.checkpoint)?;
    d.set_item("val_loss", outcome.eval.as_ref().map(|e| e.loss))?;
    d.set_item("val_baseline", outcome.eval.as_ref().map(|e| e.baseline))?;
    Ok(d)
}

/// A trained model: what `txfm.load(run)` returns.
#[pyclass(module = "txfm._txfm", frozen)]
struct Model {
    bundle: txfm::model::ModelBundle,
}

#[pymethods]
impl Model {
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        Ok(Model { bundle: txfm::model::ModelBundle::open(&path).py()? })
    }

    /// The folder the weights were read from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.bundle.dir.clone()
    }

    /// Gene ids in weight order.
    #[getter]
    fn genes(&self) -> Vec<String> {
        self.bundle.var_names.clone()
    }

    #[getter]
    fn symbols(&self) -> Vec<String> {
        self.bundle.var_symbols.clone()
    }

    /// The training step of the checkpoint, if it is one.
    #[getter]
    fn step(&self) -> Option<u64> {
        self.bundle.step()
    }

    /// The run config as TOML.
    #[getter]
    fn config(&self) -> String {
        self.bundle.config.to_toml()
    }

    /// Embedding width d.
    #[getter]
    fn dim(&self) -> usize {
        self.bundle.config.model.d_model
    }

    /// `(encoder gene embeddings [G, d-1], decoder gene weights [G, d_dec])`, float32.
    fn gene_vectors<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>)> {
        let (enc, dec) = py.detach(|| txfm::eval::genes::GeneVectors::from_bundle(&self.bundle)).py()?;
        Ok((array2(py, enc.n_genes(), enc.dim, enc.values)?, array2(py, dec.n_genes(), dec.dim, dec.values)?))
    }

    fn __repr__(&self) -> String {
        let step = self.bundle.step().map_or(String::new(), |s| format!(", step {s}"));
        format!("txfm.Model({}: {} genes, d = {}{step})", self.bundle.dir.display(), self.bundle.var_names.len(), self.bundle.config.model.d_model)
    }
}

#[pymodule]
fn _txfm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(embed, m)?)?;
    m.add_function(wrap_pyfunction!(pca, m)?)?;
    m.add_function(wrap_pyfunction!(libnorm, m)?)?;
    m.add_function(wrap_pyfunction!(scvi, m)?)?;
    m.add_function(wrap_pyfunction!(bench_perturb, m)?)?;
    m.add_function(wrap_pyfunction!(bench_genes, m)?)?;
    m.add_function(wrap_pyfunction!(corpus_build, m)?)?;
    m.add_function(wrap_pyfunction!(run_config, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_class::<Model>()?;
    Ok(())
}
