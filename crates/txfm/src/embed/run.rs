//! `txfm embed` as one library call: [`EmbedJob::prepare`] loads the model, opens the input and
//! maps its genes (so the caller can report the overlap before any work), [`EmbedJob::run`]
//! streams the input through the model into the output.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;

use super::embedder::Embedder;
use super::genes::GeneMap;
use super::output::{create_sink, InputInfo, OutputFormat};
use super::sampler::{weights_from_corpus, weights_from_input, Sampler};
use crate::corpus::Corpus;
use crate::data::counts_check::CountsCheck;
use crate::data::genes::GeneIdKind;
use crate::data::{open_source, CsrChunk, ExpressionSource, SourceFormat, SourceOptions};
use crate::model::Readout;
use crate::runtime::DeviceSpec;
use crate::{Error, Result};

/// Rows read per chunk: a few MB of sparse counts, amortising reads.
pub const DEFAULT_CHUNK_ROWS: usize = 4096;

/// Everything `txfm embed` takes.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// A run folder (its `checkpoints/latest`) or a checkpoint folder.
    pub model: PathBuf,
    pub input: PathBuf,
    pub source: SourceOptions,
    /// How to read the input's gene IDs. `Auto` reads them as the corpus builder would, or as
    /// given (`Raw`) when the model's vocabulary is not human Ensembl IDs.
    pub gene_ids: GeneIdKind,
    pub output: PathBuf,
    /// `None`: from the output's extension.
    pub format: Option<OutputFormat>,
    /// `obsm` key in an h5ad output; column prefix in Parquet.
    pub key: String,
    /// Seeds the visible genes; `None`: the run's `loader.seed`.
    pub seed: Option<u64>,
    /// Visible genes per sample; `None`: the model's `n_visible`, as trained, widened to every
    /// detected gene of the sample for a run that draws detected genes first (see
    /// [`super::Embedder::sampler`]).
    pub k: Option<usize>,
    /// Independent draws of the visible genes averaged into each embedding.
    pub samplings: usize,
    /// What is read from the encoder's output tokens: the CLS (the paper's, the default) or
    /// `[CLS ; token mean]`, twice as wide.
    pub readout: Readout,
    /// Map the read-out into the principal axes the model carries (fitted on its training corpus
    /// at the end of training): the same embedding up to a shift and a rotation, in coordinates
    /// ordered by variance whose columns are uncorrelated, as a PCA's are. A model without axes
    /// embeds the raw read-out either way ([`EmbedJob::axes_note`] says so).
    pub principal_axes: bool,
    /// Samples per forward pass.
    pub batch_size: usize,
    pub chunk_rows: usize,
    pub device: DeviceSpec,
    /// libtorch intra-op threads; `None` leaves libtorch's setting (`OMP_NUM_THREADS` or one per
    /// core). Results do not depend on it.
    pub threads: Option<usize>,
    /// For a run trained with frequency-weighted sampling (τ ≠ 0): the corpus whose detection
    /// counts give the weights. Without it they are counted in the input (see [`GeneWeights`]).
    pub weights_corpus: Option<PathBuf>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            model: PathBuf::new(),
            input: PathBuf::new(),
            source: SourceOptions::default(),
            gene_ids: GeneIdKind::Auto,
            output: PathBuf::new(),
            format: None,
            key: "X_txfm".into(),
            seed: None,
            k: None,
            samplings: 1,
            readout: Readout::Cls,
            principal_axes: true,
            batch_size: 256,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            device: DeviceSpec::Cpu,
            threads: None,
            weights_corpus: None,
        }
    }
}

/// Where the visible-gene sampling weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum GeneWeights {
    /// τ = 0: uniform over the profiled genes.
    Uniform,
    /// `m_i^τ` with `m_i` from this corpus (the training corpus, to reproduce training exactly).
    Corpus(PathBuf),
    /// `m_i^τ` with `m_i` counted in the input: a checkpoint does not carry its corpus's counts,
    /// and the input's own detection rates are the closest stand-in.
    Input,
}

impl fmt::Display for GeneWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeneWeights::Uniform => f.write_str("uniform"),
            GeneWeights::Corpus(p) => write!(f, "frequency-weighted, detection counts of corpus {}", p.display()),
            GeneWeights::Input => f.write_str("frequency-weighted, detection counts of the input (pass --weights-corpus for the training corpus's)"),
        }
    }
}

/// A prepared embedding pass over a file (`'static`) or over borrowed in-memory buffers.
pub struct EmbedJob<'a> {
    pub opts: EmbedOptions,
    pub format: OutputFormat,
    pub embedder: Embedder,
    pub genes: GeneMap,
    pub sampler: Sampler,
    pub weights: GeneWeights,
    src: Box<dyn ExpressionSource + 'a>,
    /// `opts.threads`, for as long as the job lives.
    _threads: Option<crate::runtime::TorchThreads>,
}

/// What a pass did.
#[derive(Debug, Clone)]
pub struct EmbedSummary {
    pub n_obs: usize,
    pub dim: usize,
    pub files: Vec<PathBuf>,
    pub seconds: f64,
    /// What the output left out of the input, one line each.
    pub warnings: Vec<String>,
    /// Cells the principal axes the embeddings are in were fitted on; `None`: the raw read-out.
    pub axes_cells: Option<u64>,
}

impl EmbedSummary {
    pub fn cells_per_second(&self) -> f64 {
        self.n_obs as f64 / self.seconds.max(1e-9)
    }
}

impl EmbedJob<'static> {
    /// Loads the model, opens the input (refusing non-counts unless allowed), maps its genes
    /// onto the vocabulary and sets up the sampling weights.
    pub fn prepare(opts: EmbedOptions) -> Result<Self> {
        let format = match opts.format {
            Some(f) => f,
            None => OutputFormat::from_path(&opts.output)?,
        };
        check_options(&opts)?;
        crate::atomic::refuse_to_overwrite_input(&opts.input, &opts.output)?;
        let embedder = Embedder::load(&opts.model, opts.device.resolve()?)?;
        let src = open_source(&opts.input, &opts.source)?;
        EmbedJob::with_source(opts, format, embedder, src)
    }
}

fn check_options(opts: &EmbedOptions) -> Result<()> {
    if opts.samplings == 0 || opts.batch_size == 0 || opts.chunk_rows == 0 || opts.threads == Some(0) {
        return Err(Error::Invalid("samplings, batch size, chunk rows and threads must be positive".into()));
    }
    Ok(())
}

impl<'a> EmbedJob<'a> {
    /// [`EmbedJob::prepare`] for an input already open — an in-memory matrix
    /// ([`crate::data::MemorySource`]) — whose embeddings [`EmbedJob::run_to_vec`] returns.
    /// `opts.input`, `output` and `format` are not read. The source's first rows are checked for
    /// raw counts here, as opening a file checks them.
    pub fn prepare_source(opts: EmbedOptions, mut src: Box<dyn ExpressionSource + 'a>) -> Result<Self> {
        check_options(&opts)?;
        if !opts.source.allow_non_counts {
            crate::data::counts_check::check_head(src.as_mut())?;
        }
        let embedder = Embedder::load(&opts.model, opts.device.resolve()?)?;
        EmbedJob::with_source(opts, OutputFormat::Npy, embedder, src)
    }

    fn with_source(opts: EmbedOptions, format: OutputFormat, mut embedder: Embedder, mut src: Box<dyn ExpressionSource + 'a>) -> Result<Self> {
        embedder.readout = opts.readout;
        if opts.principal_axes {
            embedder.use_axes()?;
        }
        let input = src.path().to_path_buf();
        let genes = GeneMap::new(src.var_names(), opts.gene_ids, embedder.vocab(), &input)?;
        // Checked whatever the model's tau: a mistyped path must not pass unnoticed because this
        // model happens not to need it.
        if let Some(dir) = &opts.weights_corpus
            && !dir.join(crate::corpus::schema::SUMMARY_FILE).is_file()
        {
            return Err(Error::format(dir, "--weights-corpus: not a corpus folder (no corpus.json)"));
        }
        let tau = embedder.bundle.config.model.sampling_tau;
        let (weights, w) = if tau == 0.0 {
            (GeneWeights::Uniform, None)
        } else if let Some(dir) = &opts.weights_corpus {
            let corpus = Corpus::open(dir)?;
            (GeneWeights::Corpus(dir.clone()), Some(weights_from_corpus(&corpus, embedder.vocab(), tau)))
        } else {
            (GeneWeights::Input, Some(weights_from_input(src.as_mut(), &genes, tau, opts.chunk_rows.max(1))?))
        };
        let sampler = embedder.sampler(opts.seed, opts.k, w);
        let _threads = opts.threads.map(crate::runtime::TorchThreads::set);
        Ok(EmbedJob { opts, format, embedder, genes, sampler, weights, src, _threads })
    }

    pub fn n_obs(&self) -> usize {
        self.src.n_obs()
    }

    /// What the embedding's coordinates are, for the user: the model's principal axes (and the
    /// cells they were fitted on) or the raw read-out, and why.
    pub fn axes_note(&self) -> String {
        match (self.embedder.axes_cells, self.opts.principal_axes) {
            (Some(n), _) => format!("in the model's principal axes (fitted on {n} training cells)"),
            (None, false) => "the raw read-out (principal axes not applied, as asked)".into(),
            (None, true) => "the raw read-out: this checkpoint carries no principal axes (a run fits them for its final \
                             checkpoint only, and runs trained before txfm fitted them have none); the embedding is \
                             valid, but the benchmark's `scale` does not whiten its correlated columns"
                .into(),
        }
    }

    /// Embeds every row into the output; nothing is left at the output paths on error.
    pub fn run(mut self, progress: &ProgressBar) -> Result<EmbedSummary> {
        let started = Instant::now();
        let (o, d) = (&self.opts, self.embedder.dim());
        let source_format = match o.source.format {
            Some(f) => f,
            None => SourceFormat::detect(&o.input)?,
        };
        let meta = self.src.meta().clone();
        let info = InputInfo { path: &o.input, format: source_format, n_obs: meta.obs.n_obs(), obs: &meta.obs, var_names: &meta.var_names };
        let mut sink = create_sink(self.format, &o.output, &info, &o.key, d)?;
        self.stream(progress, &mut |chunk, emb| sink.write(chunk, emb))?;
        let warnings = sink.warnings();
        let files = sink.finish()?;
        let axes_cells = self.embedder.axes_cells;
        Ok(EmbedSummary { n_obs: meta.obs.n_obs(), dim: d, files, seconds: started.elapsed().as_secs_f64(), warnings, axes_cells })
    }

    /// Embeds every row and returns the embeddings, row-major `[n_obs, d]`.
    pub fn run_to_vec(mut self, progress: &ProgressBar) -> Result<(Vec<f32>, EmbedSummary)> {
        let started = Instant::now();
        let (n, d) = (self.n_obs(), self.embedder.dim());
        let mut out = Vec::with_capacity(n * d);
        self.stream(progress, &mut |_, emb| {
            out.extend_from_slice(emb);
            Ok(())
        })?;
        let axes_cells = self.embedder.axes_cells;
        let summary = EmbedSummary { n_obs: n, dim: d, files: Vec::new(), seconds: started.elapsed().as_secs_f64(), warnings: Vec::new(), axes_cells };
        Ok((out, summary))
    }

    /// Streams the input through the model, checking every row's values and embedding before
    /// handing them to `write`.
    fn stream(&mut self, progress: &ProgressBar, write: &mut dyn FnMut(&CsrChunk, &[f32]) -> Result<()>) -> Result<()> {
        let (o, d) = (&self.opts, self.embedder.dim());
        // Opening checked the first rows; every row read is checked here, so a bad value deep in
        // the file fails the run (and the output never appears) instead of becoming NaN rows.
        let (path, matrix) = (self.src.path().to_path_buf(), self.src.matrix_name().to_string());
        let mut counts = (!o.source.allow_non_counts).then(CountsCheck::new);
        let model_dir = self.embedder.bundle.dir.clone();
        self.embedder.embed_source(
            self.src.as_mut(),
            &self.genes,
            &self.sampler,
            o.samplings,
            o.batch_size,
            o.chunk_rows,
            progress,
            |chunk, emb| {
                if let Some(check) = &mut counts {
                    check.observe(chunk);
                    if let Some(seen) = check.problem() {
                        return Err(Error::NotCounts { path: path.clone(), matrix: matrix.clone(), seen });
                    }
                }
                if let Some(bad) = emb.iter().position(|v| !v.is_finite()) {
                    return Err(Error::Invalid(format!(
                        "{}: the embedding of row {} is not finite ({}); the checkpoint {} may be corrupt. Nothing was written",
                        path.display(),
                        chunk.row_start + bad / d,
                        emb[bad],
                        model_dir.display()
                    )));
                }
                write(chunk, emb)
            },
        )
    }
}
