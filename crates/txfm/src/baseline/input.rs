//! What a baseline is fitted on: raw counts streamed in row chunks from an expression file (h5ad,
//! MTX, table) or a built corpus, each chunk with the library sizes of its rows. Every pass of a
//! baseline reads the input once from disk; nothing cells × genes is held.

use std::path::{Path, PathBuf};

use crate::corpus::Corpus;
use crate::data::counts_check::CountsCheck;
use crate::data::{open_source, CsrChunk, ExpressionSource, ObsColumn, ObsFrame, SourceOptions};
use crate::Result;

/// Rows per chunk read from an expression file.
const FILE_CHUNK_ROWS: usize = 4096;
/// Corpus row groups (of `ROW_GROUP_ROWS` samples) read at once.
const CORPUS_ROW_GROUPS: usize = 4;

/// Raw counts of `n_obs` samples over `var_names`, read in row chunks, in a fixed order.
pub struct CountInput<'a> {
    kind: Kind<'a>,
    path: PathBuf,
    /// Gene identifiers: the file's `var_names`, or the corpus vocabulary (Ensembl IDs). `[n_vars]`
    pub var_names: Vec<String>,
    /// Display symbols (for a file, its `var_names` again). `[n_vars]`
    pub var_symbols: Vec<String>,
    n_obs: usize,
    /// A file's values, checked over every row of the first full pass (opening checks only the
    /// first rows): raw counts unless `allow_non_counts`, and finite whatever it says. `None`
    /// once a pass has finished clean, and for a corpus (checked when it was built).
    check: Option<CountsCheck>,
}

enum Kind<'a> {
    File(Box<dyn ExpressionSource + 'a>),
    Corpus(Corpus),
}

impl CountInput<'static> {
    /// Opens an expression file (any format [`open_source`] reads) or, for a folder holding
    /// `corpus.json`, a corpus.
    pub fn open(path: &Path, opts: &SourceOptions) -> Result<Self> {
        if path.join(crate::corpus::schema::SUMMARY_FILE).is_file() {
            let corpus = Corpus::open(path)?;
            return Ok(CountInput {
                path: path.to_path_buf(),
                var_names: corpus.var_names.clone(),
                var_symbols: corpus.var_symbols.clone(),
                n_obs: corpus.n_samples() as usize,
                kind: Kind::Corpus(corpus),
                check: None,
            });
        }
        let src = open_source(path, opts)?;
        Ok(CountInput::from_open_source(src, opts.allow_non_counts))
    }
}

impl<'a> CountInput<'a> {
    /// Reads an already open source (e.g. an in-memory [`crate::data::MemorySource`]): its first
    /// rows are checked for raw counts here unless `allow_non_counts`, every row on the first pass.
    pub fn from_source(mut src: Box<dyn ExpressionSource + 'a>, allow_non_counts: bool) -> Result<Self> {
        if !allow_non_counts {
            crate::data::counts_check::check_head(src.as_mut())?;
        }
        Ok(CountInput::from_open_source(src, allow_non_counts))
    }

    fn from_open_source(src: Box<dyn ExpressionSource + 'a>, allow_non_counts: bool) -> Self {
        CountInput {
            path: src.path().to_path_buf(),
            var_names: src.var_names().to_vec(),
            var_symbols: src.var_names().to_vec(),
            n_obs: src.n_obs(),
            kind: Kind::File(src),
            check: Some(CountsCheck::allowing_non_counts(allow_non_counts)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn n_obs(&self) -> usize {
        self.n_obs
    }

    pub fn n_vars(&self) -> usize {
        self.var_names.len()
    }

    /// Whether the input is an `.h5ad` file, which outputs can copy with new `obsm` entries.
    pub fn is_h5ad(&self) -> bool {
        matches!(&self.kind, Kind::File(s) if s.path().extension().is_some_and(|e| e == "h5ad"))
    }

    /// `obs` of the samples, in row order: the file's, or for a corpus the sample numbers as names
    /// and the dataset of each sample (one more streaming pass over the shards).
    pub fn obs(&mut self) -> Result<ObsFrame> {
        match &self.kind {
            Kind::File(src) => Ok(src.obs().clone()),
            Kind::Corpus(c) => {
                let (mut names, mut codes) = (Vec::with_capacity(self.n_obs), Vec::with_capacity(self.n_obs));
                for i in 0..c.summary.shards.len() {
                    let shard = c.shard(i)?;
                    for g in (0..shard.n_row_groups()).step_by(CORPUS_ROW_GROUPS) {
                        let end = (g + CORPUS_ROW_GROUPS).min(shard.n_row_groups());
                        let b = shard.read_row_groups((g..end).collect())?;
                        names.extend(b.sample.iter().map(u64::to_string));
                        codes.extend(b.dataset.iter().map(|&d| d as i32));
                    }
                }
                let categories = c.summary.datasets.iter().map(|d| d.name.clone()).collect();
                Ok(ObsFrame { names, columns: vec![("dataset".into(), ObsColumn::Categorical { codes, categories })] })
            }
        }
    }

    /// Calls `f(chunk, library_sizes)` for consecutive row chunks covering all samples in order.
    /// `chunk: [rows, n_vars]` raw counts, `library_sizes: [rows]`: the row sums for a file, the
    /// stored library size (over all the sample's harmonised genes) for a corpus.
    pub fn for_each_chunk(&mut self, mut f: impl FnMut(&CsrChunk, &[f64]) -> Result<()>) -> Result<()> {
        match &mut self.kind {
            Kind::File(src) => {
                for start in (0..self.n_obs).step_by(FILE_CHUNK_ROWS) {
                    let chunk = src.read_rows(start, start + FILE_CHUNK_ROWS)?;
                    if let Some(check) = &mut self.check {
                        check.observe(&chunk);
                        if let Some(e) = check.error_in(src.as_ref()) {
                            return Err(e);
                        }
                    }
                    f(&chunk, &chunk.row_sums())?;
                }
                self.check = None;
            }
            Kind::Corpus(c) => {
                for i in 0..c.summary.shards.len() {
                    let shard = c.shard(i)?;
                    for g in (0..shard.n_row_groups()).step_by(CORPUS_ROW_GROUPS) {
                        let end = (g + CORPUS_ROW_GROUPS).min(shard.n_row_groups());
                        let b = shard.read_row_groups((g..end).collect())?;
                        f(&c.to_vocab(&b), &b.library_size)?;
                    }
                }
            }
        }
        Ok(())
    }
}
