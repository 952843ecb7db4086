//! The study file (`txfm ablate --grid study.toml`) and its plan: a base run config, the corpus,
//! the evaluation screens, seeds, a per-cell budget, and named rows grouped like the paper's
//! tables, each a config diff. [`Study::load`] resolves every row into its effective run config
//! (refusing unknown fields and rows that change nothing) and [`Study::cells`] lists the cells,
//! one per distinct config × seed.
//!
//! ```toml
//! preset = "tiny"                        # or base_config = "run.toml"
//! corpus = "corpus/"                     # a built corpus folder
//! seeds = [0, 1]
//! budget = { steps = 400 }               # or { minutes = 5 }
//! base = { health_label = "cell_state" } # a diff applied to every row (optional)
//!
//! [[screen]]
//! name = "sim"
//! h5ad = "sim.h5ad"
//! annotations = ["sim_pairs.csv"]
//!
//! [[group]]
//! name = "loss"
//! default = "Poisson"                    # the base row's label in this group's table
//! rows = [{ name = "MSE", model.loss = "mse" }]
//! ```
//!
//! Paths are relative to the study file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::eval::perturb::postprocess::PostProcess;
use crate::eval::perturb::run::PerturbConfig;
use crate::model::Readout;
use crate::config::{merge, with_pairs};
use crate::train::RunConfig;
use crate::{Error, Result};

/// The study file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyFile {
    #[serde(default)]
    name: Option<String>,
    /// A run preset (`tiny`, `small`, `medium`, `s`, `b`, `l`)…
    #[serde(default)]
    preset: Option<String>,
    /// …or a run config file.
    #[serde(default)]
    base_config: Option<PathBuf>,
    /// A diff applied to the base config for every row.
    #[serde(default)]
    base: toml::Table,
    corpus: PathBuf,
    seeds: Vec<u64>,
    budget: Budget,
    #[serde(rename = "screen", default)]
    screens: Vec<ScreenFile>,
    #[serde(default)]
    bench: BenchSettings,
    #[serde(default)]
    genes: GeneSettings,
    #[serde(rename = "group")]
    groups: Vec<GroupFile>,
}

/// How long each cell trains: a number of optimiser steps, or a wall-clock time turned into
/// steps per config by timing a short calibration run of it (so each row gets the same compute
/// time, as an equal-time ablation means; the steps are recorded and reused on resume).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    Steps(u64),
    Minutes(f64),
}

/// One evaluation screen: a raw-count h5ad with perturbation and batch labels in `obs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScreenFile {
    name: String,
    h5ad: PathBuf,
    #[serde(default = "default_pert_key")]
    pert_key: String,
    #[serde(default = "default_batch_key")]
    batch_key: String,
    #[serde(default = "default_control")]
    control: String,
    /// Pair databases (files or folders of them) for bmdb.
    #[serde(default)]
    annotations: Vec<PathBuf>,
}

fn default_pert_key() -> String {
    "perturbation".into()
}
fn default_batch_key() -> String {
    "batch".into()
}
fn default_control() -> String {
    "control".into()
}

/// A resolved screen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Screen {
    pub name: String,
    pub h5ad: PathBuf,
    pub pert_key: String,
    pub batch_key: String,
    pub control: String,
    pub annotations: Vec<PathBuf>,
}

/// The benchmark's settings in a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchSettings {
    /// `quick` (short probe and decoder training) or `reference` (the benchmark's defaults).
    pub mode: String,
    /// Benchmark seeds per cell (splits, probe initialisations).
    pub seeds: usize,
    /// Compute inv (the slowest metric).
    pub inv: bool,
    /// The post-processing the table reads: `best` (each cell's best by average, as the
    /// benchmark reports) or one of `none`, `center`, `scale`, `tvn` for every row.
    pub postprocess: String,
    /// What each cell's model is read out as: `cls` (the paper's) or `cls_mean`
    /// (`txfm embed --readout`).
    pub readout: Readout,
}

impl Default for BenchSettings {
    fn default() -> Self {
        BenchSettings { mode: "quick".into(), seeds: 1, inv: false, postprocess: "best".into(), readout: Readout::Cls }
    }
}

impl BenchSettings {
    /// The benchmark config of every cell.
    pub fn perturb_config(&self) -> Result<PerturbConfig> {
        let base = match self.mode.as_str() {
            "quick" => PerturbConfig::quick(),
            "reference" => PerturbConfig::default(),
            other => return Err(Error::config("study", "bench.mode", format!("'{other}': expected quick or reference"))),
        };
        if self.seeds == 0 {
            return Err(Error::config("study", "bench.seeds", "must be at least 1"));
        }
        Ok(PerturbConfig { inv: self.inv, ..base.with_seeds(self.seeds) })
    }

    /// `None`: each cell's best post-processing.
    pub fn table_postprocess(&self) -> Result<Option<PostProcess>> {
        match self.postprocess.as_str() {
            "best" => Ok(None),
            name => name
                .parse()
                .map(Some)
                .map_err(|_| Error::config("study", "bench.postprocess", format!("'{name}': expected best, none, center, scale or tvn"))),
        }
    }
}

/// Gene-relationship recall from the model's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneSettings {
    /// Pair databases; empty: the screens' annotations.
    pub annotations: Vec<PathBuf>,
    /// Seeds of the random-pair nulls (the paper's three).
    pub null_seeds: Vec<u64>,
}

impl Default for GeneSettings {
    fn default() -> Self {
        GeneSettings { annotations: Vec::new(), null_seeds: vec![0, 1, 2] }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    name: String,
    /// The label of the base (default) row in this group's table.
    #[serde(default = "default_row_name")]
    default: String,
    rows: Vec<toml::Table>,
}

fn default_row_name() -> String {
    "default".into()
}

/// A resolved row: its effective config (seed and loader seed not yet set).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    /// The diff as written (empty for the default row).
    pub diff: toml::Table,
    pub config: RunConfig,
    /// The corpus this row trains on (a row may set `corpus`; the study's otherwise).
    pub corpus: PathBuf,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// The default row first, then the rows in file order.
    pub rows: Vec<Row>,
}

/// A loaded, validated study.
#[derive(Debug, Clone)]
pub struct Study {
    pub path: PathBuf,
    pub name: String,
    /// The default row's config (before the budget's steps are resolved, with the budget's steps
    /// for a step budget).
    pub base: Row,
    pub seeds: Vec<u64>,
    pub budget: Budget,
    pub screens: Vec<Screen>,
    pub bench: BenchSettings,
    pub genes: GeneSettings,
    pub groups: Vec<Group>,
}

/// One unit of work: a distinct config (a row, shared by every group it appears in) at a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSpec {
    /// Hash of the config without the seed: rows with equal configs share it.
    pub config_key: String,
    /// Every `group/row` label this config appears under.
    pub labels: Vec<String>,
    /// The default row's config.
    pub is_default: bool,
    pub seed: u64,
    /// The row's config with `seed` and `loader.seed` set (steps resolved by the runner).
    pub config: RunConfig,
    pub corpus: PathBuf,
}

impl Study {
    pub fn load(path: &Path) -> Result<Study> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: StudyFile = toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let rel = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
        let origin = path.display().to_string();
        let bad = |field: &str, message: String| Error::config(&origin, field, message);

        let preset = match (&file.preset, &file.base_config) {
            (Some(name), None) => RunConfig::preset(name).map_err(|e| bad("preset", e.to_string()))?,
            (None, Some(p)) => RunConfig::load(&rel(p))?,
            _ => return Err(bad("preset", "set exactly one of preset and base_config".into())),
        };
        if file.seeds.is_empty() {
            return Err(bad("seeds", "list at least one seed".into()));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(s) = file.seeds.iter().find(|s| !seen.insert(**s)) {
            return Err(bad("seeds", format!("seed {s} is listed twice")));
        }
        match file.budget {
            Budget::Steps(0) => return Err(bad("budget.steps", "must be at least 1".into())),
            Budget::Minutes(m) if !(m.is_finite() && m > 0.0) => return Err(bad("budget.minutes", format!("{m} is not a positive number"))),
            _ => {}
        }
        if file.screens.is_empty() {
            return Err(bad("screen", "a study needs at least one [[screen]] to evaluate on".into()));
        }
        let mut screens = Vec::new();
        for s in &file.screens {
            if screens.iter().any(|o: &Screen| o.name == s.name) {
                return Err(bad("screen", format!("two screens are named '{}'", s.name)));
            }
            if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(bad("screen.name", format!("'{}': use letters, digits, '_' or '-' (it names files)", s.name)));
            }
            let h5ad = rel(&s.h5ad);
            if !h5ad.is_file() {
                return Err(Error::format(&h5ad, format!("screen '{}': no such file", s.name)));
            }
            let annotations: Vec<PathBuf> = s.annotations.iter().map(|p| rel(p)).collect();
            if let Some(a) = annotations.iter().find(|a| !a.exists()) {
                return Err(Error::format(a, format!("screen '{}': annotation database not found", s.name)));
            }
            screens.push(Screen { name: s.name.clone(), h5ad, pert_key: s.pert_key.clone(), batch_key: s.batch_key.clone(), control: s.control.clone(), annotations });
        }
        file.bench.perturb_config().map_err(|e| bad("bench", e.to_string()))?;
        file.bench.table_postprocess().map_err(|e| bad("bench", e.to_string()))?;
        let mut genes = file.genes.clone();
        genes.annotations = genes.annotations.iter().map(|p| rel(p)).collect();
        if let Some(a) = genes.annotations.iter().find(|a| !a.exists()) {
            return Err(Error::format(a, "genes.annotations: annotation database not found"));
        }
        if genes.null_seeds.len() < 2 {
            return Err(bad("genes.null_seeds", "at least two random nulls are needed for the t-test".into()));
        }
        if genes.annotations.is_empty() && screens.iter().all(|s| s.annotations.is_empty()) {
            return Err(bad("genes.annotations", "no pair databases: give them in genes.annotations or in a screen's annotations".into()));
        }

        let corpus = rel(&file.corpus);
        check_corpus(&corpus, &origin, "corpus")?;
        let mut base_value = toml::Value::try_from(&preset).expect("a run config serialises to TOML");
        merge(&mut base_value, &with_pairs(&file.base));
        if let Budget::Steps(n) = file.budget {
            let t = base_value.as_table_mut().expect("a table");
            t.insert("steps".into(), toml::Value::Integer(n as i64));
            t.remove("epochs");
        }
        let base_config = RunConfig::from_value(base_value.clone(), &origin, "base")?;
        let base = Row { name: "default".into(), diff: toml::Table::new(), config: base_config.clone(), corpus: corpus.clone(), is_default: true };

        let mut groups = Vec::new();
        for g in &file.groups {
            if groups.iter().any(|o: &Group| o.name == g.name) {
                return Err(bad("group", format!("two groups are named '{}'", g.name)));
            }
            let mut rows = vec![Row { name: g.default.clone(), ..base.clone() }];
            for (i, table) in g.rows.iter().enumerate() {
                let mut diff = table.clone();
                let name = match diff.remove("name") {
                    Some(toml::Value::String(s)) => s,
                    _ => return Err(bad(&format!("group '{}', row {}", g.name, i + 1), "needs a name = \"...\"".into())),
                };
                let field = format!("group '{}', row '{}'", g.name, name);
                if rows.iter().any(|r| r.name == name) {
                    return Err(bad(&field, "the group already has a row of that name (the default row included)".into()));
                }
                let row_corpus = match diff.remove("corpus") {
                    Some(toml::Value::String(p)) => {
                        let p = rel(Path::new(&p));
                        check_corpus(&p, &origin, &field)?;
                        p
                    }
                    Some(_) => return Err(bad(&field, "corpus must be a path".into())),
                    None => corpus.clone(),
                };
                let mut value = base_value.clone();
                merge(&mut value, &with_pairs(&diff));
                let config = RunConfig::from_value(value, &origin, &field)?;
                if config == base_config && row_corpus == corpus {
                    return Err(bad(&field, "its diff changes nothing: the row equals the default".into()));
                }
                if let Some(twin) = rows.iter().find(|r| r.config == config && r.corpus == row_corpus) {
                    return Err(bad(&field, format!("its config equals row '{}'", twin.name)));
                }
                rows.push(Row { name, diff, config, corpus: row_corpus, is_default: false });
            }
            if g.rows.is_empty() {
                return Err(bad(&format!("group '{}'", g.name), "has no rows besides the default".into()));
            }
            groups.push(Group { name: g.name.clone(), rows });
        }
        if groups.is_empty() {
            return Err(bad("group", "a study needs at least one [[group]]".into()));
        }
        let name = file.name.clone().unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        Ok(Study { path: path.to_path_buf(), name, base, seeds: file.seeds, budget: file.budget, screens, bench: file.bench, genes, groups })
    }

    /// The cells: each distinct (config, corpus) once, the default first, × each seed.
    pub fn cells(&self) -> Vec<CellSpec> {
        let mut distinct: Vec<(&Row, Vec<String>)> = vec![(&self.base, vec![])];
        // The default row first; its labels (one per group) are shown as "default".
        for g in &self.groups {
            for r in &g.rows {
                let label = format!("{}/{}", g.name, r.name);
                match distinct.iter_mut().find(|(d, _)| d.config == r.config && d.corpus == r.corpus) {
                    Some((_, labels)) => labels.push(label),
                    None => distinct.push((r, vec![label])),
                }
            }
        }
        let mut cells = Vec::new();
        for (d, (row, labels)) in distinct.into_iter().enumerate() {
            let config_key = config_key(&row.config, &row.corpus);
            for &seed in &self.seeds {
                let mut config = row.config.clone();
                config.reseed(seed);
                cells.push(CellSpec { config_key: config_key.clone(), labels: labels.clone(), is_default: d == 0, seed, config, corpus: row.corpus.clone() });
            }
        }
        cells
    }

    /// The pair databases of gene recall.
    pub fn gene_annotations(&self) -> Vec<PathBuf> {
        if !self.genes.annotations.is_empty() {
            return self.genes.annotations.clone();
        }
        let mut out: Vec<PathBuf> = Vec::new();
        for s in &self.screens {
            for a in &s.annotations {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }
}

impl CellSpec {
    /// A short name for progress lines: the first label and the seed.
    pub fn display(&self) -> String {
        let label = if self.is_default { "default" } else { self.labels.first().map_or("default", String::as_str) };
        format!("{label} seed {}", self.seed)
    }
}

fn check_corpus(dir: &Path, origin: &str, field: &str) -> Result<()> {
    if dir.join(crate::corpus::schema::SUMMARY_FILE).is_file() {
        Ok(())
    } else {
        Err(Error::config(origin, field, format!("{}: not a built corpus folder (no corpus.json; build one with txfm corpus build)", dir.display())))
    }
}

/// A hex SHA-256 of the config (its TOML, which lists every field) and the corpus's identity.
pub fn config_key(config: &RunConfig, corpus: &Path) -> String {
    let config = without_device(config);
    let mut h = Sha256::new();
    h.update(config.to_toml().as_bytes());
    h.update(corpus_identity(corpus).as_bytes());
    hex(&h.finalize())[..16].to_string()
}

/// The config without its device: the same cell wherever it runs (another GPU, the CPU).
pub fn without_device(config: &RunConfig) -> RunConfig {
    RunConfig { device: String::new(), ..config.clone() }
}

/// What identifies a corpus's content: its `corpus.json` (shard list, counts, vocabulary size).
pub fn corpus_identity(corpus: &Path) -> String {
    let text = std::fs::read(corpus.join(crate::corpus::schema::SUMMARY_FILE)).unwrap_or_default();
    hex(&Sha256::digest(&text))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The rows' effective diffs against the default, for the report: `field = value` lines.
pub fn describe_diff(diff: &toml::Table) -> String {
    let mut flat = BTreeMap::new();
    fn walk(prefix: &str, t: &toml::Table, out: &mut BTreeMap<String, String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                toml::Value::Table(inner) => walk(&key, inner, out),
                other => {
                    out.insert(key, other.to_string());
                }
            }
        }
    }
    walk("", diff, &mut flat);
    flat.into_iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
}
