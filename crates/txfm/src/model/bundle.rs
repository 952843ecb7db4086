//! A trained model as embedding and gene read-outs need it, and nothing of its training: the run
//! configuration, the gene list its weights are indexed by, and the weights.
//!
//! On disk a bundle is a folder holding
//! - `model.safetensors`: the weights (`VarStore` names),
//! - `config.toml`: the full [`RunConfig`] (the model's shape, and the loader's K, preprocessing
//!   and seed, which embedding replays),
//! - `genes.tsv`: the vocabulary (`gene_id`, `symbol`), in weight order,
//! - `axes.safetensors` (a run's final checkpoint; older ones lack it): the read-outs' principal
//!   axes fitted on the training corpus ([`super::axes`]), which `txfm embed` applies,
//! - `SHA256SUMS`: their SHA-256 in `sha256sum` format, verified on open.
//!
//! A training checkpoint (`train::checkpoint`) is a bundle plus the resume state
//! (`optimizer.safetensors`, `state.json`) in the same folder, so every checkpoint opens as a
//! bundle; a run folder opens as the bundle its `checkpoints/latest` names.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tch::{nn, Device};

use super::axes::{ReadoutAxes, AXES_FILE};
use super::TxFm;
use crate::config::RunConfig;
use crate::{Error, Result};

pub const MODEL_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.toml";
pub const GENES_FILE: &str = "genes.tsv";
pub const SUMS_FILE: &str = "SHA256SUMS";
/// The files a bundle consists of (besides `SHA256SUMS`); the last, its axes, is optional.
pub const BUNDLE_FILES: [&str; 4] = [MODEL_FILE, CONFIG_FILE, GENES_FILE, AXES_FILE];
/// A run folder's checkpoints, and the file in it naming the newest complete one.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
pub const LATEST_FILE: &str = "latest";

/// A trained model on disk: its config and genes (the weights stay on disk until loaded).
#[derive(Debug, Clone)]
pub struct ModelBundle {
    pub dir: PathBuf,
    pub config: RunConfig,
    /// Vocabulary gene ids, in weight order. `[G]`
    pub var_names: Vec<String>,
    /// Display symbols of [`Self::var_names`]. `[G]`
    pub var_symbols: Vec<String>,
}

impl ModelBundle {
    /// The model `path` names: a run folder (the checkpoint its `checkpoints/latest` names), a
    /// checkpoint folder or a bundle folder.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such run, checkpoint or model folder")));
        }
        if let Some(dir) = latest_in_run(path)? {
            return ModelBundle::open_dir(&dir);
        }
        if path.join(MODEL_FILE).exists() {
            return ModelBundle::open_dir(path);
        }
        Err(Error::format(
            path,
            format!("not a run folder (no {CHECKPOINTS_DIR}/{LATEST_FILE}) nor a checkpoint or model folder (no {MODEL_FILE})"),
        ))
    }

    /// Reads a bundle (or checkpoint) folder's config and genes, after checking its bundle files
    /// against `SHA256SUMS`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        verify(dir, &BUNDLE_FILES)?;
        ModelBundle::read_dir(dir)
    }

    /// [`Self::open_dir`] for a caller that has just verified the folder (a checkpoint verifies
    /// all its files at once): the weights are hashed once.
    pub(crate) fn read_dir(dir: &Path) -> Result<Self> {
        let config = RunConfig::load(&dir.join(CONFIG_FILE))?;
        let (var_names, var_symbols) = read_genes(&dir.join(GENES_FILE))?;
        Ok(ModelBundle { dir: dir.to_path_buf(), config, var_names, var_symbols })
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    /// The read-outs' principal axes saved with the weights (verified with the other files on
    /// open), or `None` for a model without them: a checkpoint before a run's last step, or one
    /// written before txfm fitted them.
    pub fn axes(&self) -> Result<Option<ReadoutAxes>> {
        let path = self.dir.join(AXES_FILE);
        if !path.exists() {
            return Ok(None);
        }
        ReadoutAxes::load(&path, self.config.model.d_model).map(Some)
    }

    /// The training step the weights are from, when the folder is a run's `step-N` checkpoint.
    pub fn step(&self) -> Option<u64> {
        self.dir.file_name()?.to_str()?.strip_prefix("step-")?.parse().ok()
    }

    /// Builds the model of the bundle's config on `device` and loads its weights.
    pub fn load_weights(&self, device: Device) -> Result<(nn::VarStore, TxFm)> {
        let mut vs = nn::VarStore::new(device);
        let model = TxFm::new(&vs.root(), &self.config.model, self.var_names.len())?;
        let path = self.model_path();
        vs.load(&path).map_err(|e| Error::format(&path, e.to_string()))?;
        Ok((vs, model))
    }
}

/// The checkpoint folder a run folder's `checkpoints/latest` names, if the run has one.
pub fn latest_in_run(run: &Path) -> Result<Option<PathBuf>> {
    let pointer = run.join(CHECKPOINTS_DIR).join(LATEST_FILE);
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).map_err(|e| Error::io(&pointer, e))?;
    Ok(Some(run.join(CHECKPOINTS_DIR).join(name.trim())))
}

/// `genes.tsv`'s text: a `gene_id<TAB>symbol` header and one line per gene.
pub fn genes_tsv(names: &[String], symbols: &[String]) -> String {
    let mut out = String::from("gene_id\tsymbol\n");
    for (n, s) in names.iter().zip(symbols) {
        let _ = writeln!(out, "{n}\t{s}");
    }
    out
}

/// Reads a `genes.tsv`: gene ids and symbols.
pub fn read_genes(path: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    if lines.next() != Some("gene_id\tsymbol") {
        return Err(Error::format(path, "expected the header 'gene_id<TAB>symbol'"));
    }
    let (mut names, mut symbols) = (Vec::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        let (id, symbol) = line.split_once('\t').ok_or_else(|| Error::format(path, format!("line {}: expected two tab-separated columns", i + 2)))?;
        names.push(id.to_string());
        symbols.push(symbol.to_string());
    }
    Ok((names, symbols))
}

/// The SHA-256 of a file's bytes as lowercase hex, read in 8 MiB blocks.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    }))
}

/// Writes `dir/SHA256SUMS` (atomically) with the SHA-256 of each of `files` in `dir`, in order,
/// in `sha256sum` format: what [`verify`] checks on open.
pub fn write_sums<'a>(dir: &Path, files: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut sums = String::new();
    for name in files {
        let _ = writeln!(sums, "{}  {name}", sha256_file(&dir.join(name))?);
    }
    crate::atomic::write_atomic(&dir.join(SUMS_FILE), &sums)
}

/// Checks the files of `dir/SHA256SUMS` among `files` (every file it lists when `files` is empty)
/// against their recorded SHA-256. A folder without the file (written before checksums were
/// recorded) passes unchecked; a listed file that is missing fails.
pub fn verify(dir: &Path, files: &[&str]) -> Result<()> {
    let sums_path = dir.join(SUMS_FILE);
    let text = match std::fs::read_to_string(&sums_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&sums_path, e)),
    };
    for (i, line) in text.lines().enumerate() {
        let (want, name) = line
            .split_once("  ")
            .filter(|(h, n)| h.len() == 64 && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| Error::format(&sums_path, format!("line {}: expected '<sha256>  <file name>'", i + 1)))?;
        if !files.is_empty() && !files.contains(&name) {
            continue;
        }
        let path = dir.join(name);
        if !path.exists() {
            return Err(Error::format(&path, "missing from the checkpoint (SHA256SUMS lists it)"));
        }
        let got = sha256_file(&path)?;
        if got != want {
            return Err(Error::format(
                &path,
                format!("SHA-256 {got} differs from the {want} recorded when the checkpoint was written: the file is corrupt or was changed since"),
            ));
        }
    }
    Ok(())
}
