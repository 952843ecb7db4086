//! `txfm ablate` end to end on a tiny simulated corpus: a two-group study (each group the default
//! and one row) at two seeds runs through; the same study killed (`kill -9`) after its first
//! finished cell and re-run continues without recomputing a finished cell and gives the same
//! table; a corrupted cell record is detected and recomputed; `--jobs 2` gives the same table
//! again; study files with unknown fields or rows that change nothing are refused by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use txfm::simulate::SimConfig;
use txfm::testing::{run_python, sim_corpus};
use common::{text, txfm};

const STUDY: &str = r#"
name = "test study"
preset = "tiny"
corpus = "corpus"
seeds = [0, 1]
budget = { steps = 40 }
base = { eval_every = 40, checkpoint_every = 20, model.d_model = 32, model.decoder = { residual_mlp = { n_layers = 1, d_hidden = 32 } } }

[[screen]]
name = "sim"
h5ad = "sim.h5ad"
annotations = ["sim.pairs.csv"]

[bench]
mode = "quick"

[[group]]
name = "loss"
default = "Poisson"
rows = [{ name = "MSE", model.loss = "mse" }]

[[group]]
name = "visible genes"
default = "K 64"
rows = [{ name = "K 32", model.n_visible = 32 }]
"#;

/// Recomputes the table's tests from the cells' results with scipy: perts by the pooled
/// two-proportion z-test on p.cst's counts (first benchmark seed, summed over training seeds), avg by `ttest_ind` over seeds, enc and dec by
/// `ttest_ind` over recall minus each random null, then `false_discovery_control` per metric.
const SCIPY_CHECK: &str = r#"
import json, sys, math
import numpy as np
from scipy import stats
v = json.load(open(sys.argv[1]))
by_key = {}
for c in v["cells"]:
    by_key.setdefault(c["config_key"], []).append(c)
def best(c):
    return next(r for r in c["screens"][0]["report"]["rows"] if r["embedding"] == "X_txfm" and r["best"])
def counts(cells):
    x = n = 0
    for c in cells:
        s = best(c)["seeds"][0]
        x += s["pcst_counts"][0]; n += s["pcst_counts"][1]
    return x, n
def ztest(a, b):
    (x1, n1), (x2, n2) = a, b
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return 1.0 if se == 0 else 2 * stats.norm.sf(abs((x1 / n1 - x2 / n2) / se))
def excess(cells, which):
    return [100 * (c["genes"][which]["recall"] - n) for c in cells for n in c["genes"][which]["null_recalls"]]
def avgs(cells):
    return [best(c)["summary"]["average"]["mean"] for c in cells]
groups = v["table"]["groups"]
default = next(r for g in groups for r in g["rows"] if r["is_default"])["config_key"]
d = by_key[default]
tests = [lambda r: ztest(counts(r), counts(d)),
         lambda r: stats.ttest_ind(avgs(r), avgs(d)).pvalue,
         lambda r: stats.ttest_ind(excess(r, "encoder"), excess(d, "encoder")).pvalue,
         lambda r: stats.ttest_ind(excess(r, "decoder"), excess(d, "decoder")).pvalue]
n = 0
for j, test in enumerate(tests):
    rows = [r for g in groups for r in g["rows"] if not r["is_default"]]
    ps = [float(test(by_key[r["config_key"]])) for r in rows]
    ok = [not math.isnan(p) for p in ps]
    adj = stats.false_discovery_control([p for p, o in zip(ps, ok) if o], method="bh") if any(ok) else []
    k = 0
    for r, p, o in zip(rows, ps, ok):
        cell = r["cells"][j]
        if not o:
            assert cell["p"] is None, (j, r["name"], cell)
            continue
        assert abs(cell["p"] - p) <= 1e-9 * max(p, 1e-300) + 1e-300, (j, r["name"], cell["p"], p)
        assert abs(cell["p_adj"] - adj[k]) <= 1e-9 * adj[k] + 1e-300, (j, r["name"], cell["p_adj"], adj[k])
        k += 1; n += 1
print("ok", n)
"#;

fn fixture(dir: &Path) {
    sim_corpus(dir, "sim", "corpus", &SimConfig { n_cells: 600, n_genes: 300, ..SimConfig::tiny() }, 3);
    std::fs::write(dir.join("study.toml"), STUDY).unwrap();
}

fn ablate(dir: &Path, out: &str, extra: &[&str]) -> String {
    let mut args = vec!["ablate", "--grid", "study.toml", "--out", out];
    args.extend_from_slice(extra);
    let o = txfm(&args, dir);
    assert!(o.status.success(), "txfm ablate: {}", text(&o));
    text(&o)
}

/// The tables' numbers (every cell of every row, with p-values), without timings.
fn table(dir: &Path, out: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("study.json")).unwrap()).unwrap();
    let mut groups = v["table"]["groups"].clone();
    for g in groups.as_array_mut().unwrap() {
        for r in g["rows"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("train_seconds");
        }
    }
    groups
}

/// Every record file of the study's cells with its bytes and modification time.
fn records(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    let cells = dir.join("cells");
    for cell in std::fs::read_dir(&cells).unwrap().flatten().filter(|e| e.path().is_dir()) {
        for f in std::fs::read_dir(cell.path()).unwrap().flatten() {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "rec") {
                out.push((p.clone(), std::fs::read(&p).unwrap(), f.metadata().unwrap().modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn finished_cells(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("cells")).map_or(0, |r| r.flatten().filter(|e| e.path().join("genes.rec").is_file()).count())
}

#[test]
fn a_study_runs_resumes_after_kill_9_recomputes_corrupt_cells_and_tables_its_tests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);

    // The plan: 3 distinct configs (the default shared by both groups) × 2 seeds.
    let plan = txfm(&["ablate", "--grid", "study.toml", "--out", "a", "--plan"], d);
    assert!(text(&plan).contains("3 distinct configs × 2 seeds = 6 cells"), "{}", text(&plan));

    // A: uninterrupted.
    let log = ablate(d, "a", &[]);
    assert!(log.contains("6 cells: 0 from the cache, 6 computed, 0 failed"), "{log}");
    let reference = table(d, "a");
    let md = std::fs::read_to_string(d.join("a/study.md")).unwrap();
    assert!(md.contains("### loss") && md.contains("| Poisson (default) |") && md.contains("| MSE |") && md.contains("### visible genes"), "{md}");
    let html = std::fs::read_to_string(d.join("a/study.html")).unwrap();
    assert!(html.contains("<table>") && html.contains("data:image/png;base64,iVBOR"), "the page inlines its PNG plots");
    // Every row has both seeds and a value in every column; the default row has no test.
    for g in reference.as_array().unwrap() {
        for r in g["rows"].as_array().unwrap() {
            assert_eq!(r["seeds_done"], serde_json::json!([0, 1]), "{r}");
            let cells = r["cells"].as_array().unwrap();
            assert_eq!(cells.len(), 4, "perts, avg, enc, dec");
            assert!(cells.iter().all(|c| c["value"].as_f64().is_some_and(f64::is_finite)), "{r}");
            let tested = cells.iter().filter(|c| c["p"].is_f64()).count();
            if r["is_default"].as_bool().unwrap() {
                assert_eq!(tested, 0);
            } else {
                assert!(tested >= 3, "perts, enc and dec are tested: {r}");
                assert!(cells.iter().all(|c| c["p"].is_null() || c["p_adj"].as_f64().unwrap() >= c["p"].as_f64().unwrap()), "{r}");
            }
        }
    }

    // Every p-value and adjusted p-value of the table, recomputed with scipy from the cells'
    // own results in study.json.
    let checked = run_python(SCIPY_CHECK, &[d.join("a/study.json").to_str().unwrap()]);
    let n_checked: usize = checked.trim().strip_prefix("ok ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{checked}"));
    assert!(n_checked >= 6, "two ablation rows × at least perts, enc and dec: {checked}");

    // A re-run computes nothing.
    let again = ablate(d, "a", &[]);
    assert!(again.contains("6 from the cache, 0 computed"), "{again}");

    // B: killed with SIGKILL once its first cell has finished, then re-run.
    let mut child = Command::new(env!("CARGO_BIN_EXE_txfm"))
        .args(["ablate", "--grid", "study.toml", "--out", "b"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while finished_cells(&d.join("b")) == 0 {
        assert!(started.elapsed() < Duration::from_secs(600), "no cell finished");
        assert!(child.try_wait().unwrap().is_none(), "the study ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let finished = finished_cells(&d.join("b"));
    assert!((1..6).contains(&finished), "killed mid-study: {finished} cells finished");
    let before: Vec<_> = records(&d.join("b")).into_iter().filter(|(p, ..)| p.parent().unwrap().join("genes.rec").is_file()).collect();
    let resumed = ablate(d, "b", &[]);
    assert!(resumed.contains(&format!("{finished} from the cache, {} computed", 6 - finished)), "{resumed}");
    let after = records(&d.join("b"));
    for (p, bytes, mtime) in &before {
        let now = after.iter().find(|(q, ..)| q == p).unwrap_or_else(|| panic!("{} disappeared", p.display()));
        assert!(now.1 == *bytes && now.2 == *mtime, "{} was recomputed", p.display());
    }
    assert_eq!(table(d, "b"), reference, "the resumed study's table equals the uninterrupted one's");

    // A corrupted record (one digit changed) is detected and recomputed, to the same numbers.
    let rec = after.iter().find(|(p, ..)| p.file_name().unwrap() == "sim.rec").unwrap().0.clone();
    let text_rec = std::fs::read_to_string(&rec).unwrap();
    let at = text_rec.find("\"average\"").expect("a benchmark average in the record");
    let digit = at + text_rec[at..].find(|c: char| c.is_ascii_digit()).unwrap();
    let mut bytes = text_rec.into_bytes();
    bytes[digit] = if bytes[digit] == b'9' { b'8' } else { bytes[digit] + 1 };
    std::fs::write(&rec, &bytes).unwrap();
    let repaired = ablate(d, "b", &[]);
    assert!(repaired.contains("checksum mismatch") && repaired.contains("5 from the cache, 1 computed"), "{repaired}");
    assert_eq!(table(d, "b"), reference);

    // Changing one row re-runs that row only (its two seeds).
    let edited = STUDY.replace("model.loss = \"mse\"", "model.loss = \"smooth_l1\"");
    std::fs::write(d.join("edited.toml"), edited).unwrap();
    let o = txfm(&["ablate", "--grid", "edited.toml", "--out", "b"], d);
    assert!(o.status.success() && text(&o).contains("4 from the cache, 2 computed"), "{}", text(&o));

    // Two worker processes: the same table.
    let jobs = ablate(d, "c", &["--jobs", "2"]);
    assert!(jobs.contains("6 computed, 0 failed"), "{jobs}");
    assert_eq!(table(d, "c"), reference, "--jobs 2 gives the sequential table");
}

#[test]
fn bad_study_files_are_refused_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    let refuse = |study: &str, expect: &[&str]| {
        std::fs::write(d.join("bad.toml"), study).unwrap();
        let o = txfm(&["ablate", "--grid", "bad.toml", "--out", "bad"], d);
        let t = text(&o);
        assert!(!o.status.success(), "accepted: {study}");
        for e in expect {
            assert!(t.contains(e), "expected '{e}' in: {t}");
        }
        assert!(!d.join("bad").exists(), "nothing is written for a refused study");
    };
    refuse(&STUDY.replace("model.loss = \"mse\"", "model.los = \"mse\""), &["bad.toml", "group 'loss', row 'MSE'", "unknown field `los`"]);
    refuse(&STUDY.replace("model.loss = \"mse\"", "model.loss = \"poisson\""), &["group 'loss', row 'MSE'", "changes nothing"]);
    refuse(&STUDY.replace("model.n_visible = 32", "model.n_visible = 64"), &["group 'visible genes', row 'K 32'", "changes nothing"]);
    refuse(&STUDY.replace("sim.h5ad\"", "missing.h5ad\""), &["missing.h5ad", "screen 'sim'"]);
    refuse(&STUDY.replace("corpus = \"corpus\"", "corpus = \"nowhere\""), &["nowhere", "not a built corpus"]);
    refuse(&STUDY.replace("seeds = [0, 1]", "seeds = [0, 0]"), &["seeds", "twice"]);
    // A folder holding other files is not taken for a study's.
    std::fs::create_dir(d.join("busy")).unwrap();
    std::fs::write(d.join("busy/keep.txt"), "mine").unwrap();
    let o = txfm(&["ablate", "--grid", "study.toml", "--out", "busy"], d);
    assert!(!o.status.success() && text(&o).contains("not a study folder"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(d.join("busy/keep.txt")).unwrap(), "mine");
}

/// The example studies load (every field and row valid, every row a change) against stand-ins for
/// the files they name, so a renamed config field breaks this test, not a user's study.
#[test]
fn the_example_studies_load_with_every_row_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("work/repo");
    let examples = root.join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (name, groups, cells) in [("ablation_paper.toml", 8, 45), ("ablation_small.toml", 2, 9)] {
        let file = std::fs::read_to_string(repo.join("examples").join(name)).unwrap();
        std::fs::write(examples.join(name), &file).unwrap();
        // Stand-ins for every path the study names, relative to examples/.
        let study: toml::Table = toml::from_str(&file).unwrap();
        let mut corpora = vec![study["corpus"].as_str().unwrap().to_string()];
        for g in study["group"].as_array().unwrap() {
            for r in g["rows"].as_array().unwrap() {
                if let Some(c) = r.get("corpus") {
                    corpora.push(c.as_str().unwrap().to_string());
                }
            }
        }
        for c in corpora {
            std::fs::create_dir_all(examples.join(&c)).unwrap();
            std::fs::write(examples.join(&c).join("corpus.json"), "{}").unwrap();
        }
        for s in study["screen"].as_array().unwrap() {
            let h5ad = examples.join(s["h5ad"].as_str().unwrap());
            std::fs::create_dir_all(h5ad.parent().unwrap()).unwrap();
            std::fs::write(&h5ad, "").unwrap();
            for a in s["annotations"].as_array().unwrap() {
                std::fs::create_dir_all(examples.join(a.as_str().unwrap())).unwrap();
            }
        }
        let o = txfm(&["ablate", "--grid", &format!("examples/{name}"), "--out", "unused", "--plan"], &root);
        let t = text(&o);
        assert!(o.status.success(), "{name}: {t}");
        assert!(t.contains(&format!("{groups} groups")) && t.contains(&format!("= {cells} cells")), "{name}: {t}");
    }
}

/// A wall-time budget: each config's steps are timed once and recorded, so a re-run reuses them.
#[test]
fn a_minutes_budget_times_each_config_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    let study = STUDY.replace("budget = { steps = 40 }", "budget = { minutes = 0.05 }").replace("seeds = [0, 1]", "seeds = [0]");
    std::fs::write(d.join("study.toml"), study).unwrap();
    ablate(d, "m", &[]);
    let calibrations: Vec<_> = std::fs::read_dir(d.join("m/calibration")).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "rec")).collect();
    assert_eq!(calibrations.len(), 3, "one timing per distinct config");
    // Each cell trained the steps its timing bought: 3 s of training at the measured rate.
    for cell in std::fs::read_dir(d.join("m/cells")).unwrap().flatten().filter(|e| e.path().is_dir()) {
        let config = std::fs::read_to_string(cell.path().join("run/config.toml")).unwrap();
        let steps: u64 = config.lines().find_map(|l| l.strip_prefix("steps = ")).unwrap().parse().unwrap();
        assert!(steps >= 1, "{steps}");
    }
    let again = ablate(d, "m", &[]);
    assert!(again.contains("3 from the cache, 0 computed"), "the recorded steps are reused: {again}");

    // The [CLS ; token mean] read-out: every cell is evaluated again (its read-out is part of the
    // evaluation's identity), on the trained runs it already has, and embeds at twice the width.
    let cells: Vec<PathBuf> = std::fs::read_dir(d.join("m/cells")).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    let trained: Vec<_> = cells.iter().map(|c| std::fs::metadata(c.join("train.rec")).unwrap().modified().unwrap()).collect();
    let study = std::fs::read_to_string(d.join("study.toml")).unwrap().replace("[bench]\nmode = \"quick\"", "[bench]\nmode = \"quick\"\nreadout = \"cls_mean\"");
    assert!(study.contains("readout"));
    std::fs::write(d.join("study.toml"), study).unwrap();
    let wide = ablate(d, "m", &[]);
    assert!(wide.contains("0 from the cache, 3 computed"), "{wide}");
    for (c, t) in cells.iter().zip(&trained) {
        assert_eq!(std::fs::metadata(c.join("train.rec")).unwrap().modified().unwrap(), *t, "{} trained again", c.display());
        let rows = txfm::embed::npy::NpyRows::open(&c.join("sim.npy")).unwrap();
        assert_eq!(rows.d, 2 * 32, "{}: [CLS ; token mean] of a d 32 model", c.display());
    }
    assert!(std::fs::read_to_string(d.join("m/study.md")).unwrap().contains("read-out: cls_mean"));
}
