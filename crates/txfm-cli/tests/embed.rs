//! `txfm embed` end to end: simulate → corpus → train a tiny model a few steps → embed the
//! simulated h5ad to .h5ad, .npy and .parquet, read back with anndata, numpy and pyarrow: the
//! same values in every format, the input's obs kept, obsm keys accumulating across runs, and a
//! clear error (with nothing written) for an input sharing no gene with the model.

mod common;

use std::path::Path;

use txfm::data::h5ad::H5adWriter;
use txfm::data::{CsrChunk, ObsFrame};
use txfm::simulate::SimConfig;
use txfm::testing::{run_python, sim_corpus};
use common::{test_run_config, text, txfm};

/// sim.h5ad (300 cells), its corpus, and run/ trained 3 steps by the CLI.
fn trained(dir: &Path) {
    sim_corpus(dir, "sim", "corpus", &SimConfig { n_cells: 300, ..SimConfig::tiny() }, 3);
    let mut cfg = test_run_config();
    (cfg.steps, cfg.checkpoint_every, cfg.eval_every) = (Some(3), 3, 3);
    std::fs::write(dir.join("run.toml"), cfg.to_toml()).unwrap();
    let train = txfm(&["train", "--corpus", "corpus", "--config", "run.toml", "--out", "run"], dir);
    assert!(train.status.success(), "{}", text(&train));
}

fn embed(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["embed"];
    all.extend_from_slice(args);
    let o = txfm(&all, dir);
    assert!(o.status.success(), "txfm {}: {}", all.join(" "), text(&o));
    text(&o)
}

#[test]
fn embeds_to_h5ad_npy_and_parquet_with_the_same_values_and_the_inputs_obs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained(d);
    let log = embed(d, &["--model", "run", "--input", "sim.h5ad", "--output", "emb.h5ad"]);
    assert!(log.contains("input profiles") && log.contains("of the model's"), "{log}");
    assert!(log.contains("embedded 300 cells × 32 dims"), "{log}");
    // A checkpoint folder as --model, other batch sizes and threads: the same numbers (to float
    // rounding: this detected-first run shows every detected gene, so a batch is as wide as its
    // widest cell and the masked padding differs between batchings).
    embed(d, &["--model", "run/checkpoints/step-0000003", "--input", "sim.h5ad", "--output", "emb.npy", "--batch-size", "7"]);
    embed(d, &["--model", "run", "--input", "sim.h5ad", "--output", "emb.parquet", "--threads", "1", "--batch-size", "300"]);
    // Embedding the output again under another key keeps the first key: keys accumulate.
    embed(d, &["--model", "run", "--input", "emb.h5ad", "--output", "twice.h5ad", "--key", "X_avg", "--samplings", "3"]);

    let out = run_python(
        r#"
import os, sys, anndata as ad, numpy as np, pandas as pd, pyarrow.parquet as pq
os.chdir(sys.argv[1])
sim, emb, twice = (ad.read_h5ad(p) for p in ("sim.h5ad", "emb.h5ad", "twice.h5ad"))
e = emb.obsm["X_txfm"]
assert e.dtype == np.float32 and e.shape == (300, 32), (e.dtype, e.shape)
assert np.isfinite(e).all() and e.std(axis=0).mean() > 1e-4
assert (emb.obs_names == sim.obs_names).all() and (emb.var_names == sim.var_names).all()
assert list(emb.obs.columns) == list(sim.obs.columns)
assert (emb.obs["perturbation"].astype(str) == sim.obs["perturbation"].astype(str)).all()
assert (emb.X.toarray() == sim.X.toarray()).all()

n = np.load("emb.npy")
assert n.dtype == np.float32 and n.shape == (300, 32) and n.flags["C_CONTIGUOUS"]
assert np.abs(n - e).max() <= 1e-5, np.abs(n - e).max()
obs = pd.read_csv("emb.obs.tsv", sep="\t", index_col=0)
assert list(obs.index) == list(sim.obs_names)
assert (obs["perturbation"].to_numpy() == sim.obs["perturbation"].astype(str).to_numpy()).all()

t = pq.read_table("emb.parquet").to_pandas()
assert list(t["obs_name"]) == list(sim.obs_names)
assert (t["batch"].astype(str).to_numpy() == sim.obs["batch"].astype(str).to_numpy()).all()
p = t.filter(regex=r"^X_txfm_\d+$").to_numpy()
assert p.dtype == np.float32 and p.shape == (300, 32) and np.abs(p - e).max() <= 1e-5, np.abs(p - e).max()

assert sorted(twice.obsm.keys()) == ["X_avg", "X_txfm"]
assert (twice.obsm["X_txfm"] == e).all()
a = twice.obsm["X_avg"]
assert a.shape == (300, 32) and np.abs(a - e).max() > 1e-3
print("ok", round(float(np.abs(e).mean()), 6))
"#,
        &[d.to_str().unwrap()],
    );
    assert!(out.starts_with("ok"), "{out}");
}

#[test]
fn an_input_without_model_genes_fails_naming_the_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained(d);
    let input = d.join("mouse.h5ad");
    let var = ObsFrame { names: vec!["Actb".into(), "Gapdh".into()], columns: vec![] };
    let mut w = H5adWriter::create(&input, &var).unwrap();
    let mut x = CsrChunk::new(0, 2);
    x.push_dense_row(&[1.0, 2.0]);
    w.append_x(&x).unwrap();
    w.finish(&ObsFrame { names: vec!["c0".into()], columns: vec![] }).unwrap();

    for output in ["out.h5ad", "out.npy", "out.parquet"] {
        let o = txfm(&["embed", "--model", "run", "--input", "mouse.h5ad", "--output", output], d);
        let msg = text(&o);
        assert!(!o.status.success(), "{msg}");
        assert!(msg.contains("mouse.h5ad: none of its genes is in the model's vocabulary"), "{msg}");
        assert!(!d.join(output).exists(), "{output} written");
    }
    let o = txfm(&["embed", "--model", "nowhere", "--input", "sim.h5ad", "--output", "x.h5ad"], d);
    assert!(!o.status.success() && text(&o).contains("nowhere"), "{}", text(&o));
    let o = txfm(&["embed", "--model", "run", "--input", "sim.h5ad", "--output", "x.csv"], d);
    assert!(!o.status.success() && text(&o).contains("x.csv"), "{}", text(&o));
    // The output may not be the input: the copy would replace it without its layers, uns, obsp...
    let before = std::fs::read(d.join("sim.h5ad")).unwrap();
    let o = txfm(&["embed", "--model", "run", "--input", "sim.h5ad", "--output", "./sim.h5ad"], d);
    assert!(!o.status.success() && text(&o).contains("is the input"), "{}", text(&o));
    assert_eq!(std::fs::read(d.join("sim.h5ad")).unwrap(), before, "the input changed");
    let leftovers: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.contains("partial")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_bad_value_past_the_first_thousand_rows_fails_the_run_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained(d);
    let names = txfm::data::open_source(&d.join("sim.h5ad"), &Default::default()).unwrap().var_names().to_vec();
    let g = names.len();
    // 1,500 cells of plain counts; one value at row 1,200 (after the rows checked on opening) is
    // bad: NaN, negative or fractional.
    for (bad, what) in [(f32::NAN, "NaN"), (-3.0, "negative"), (2.5, "non-integer")] {
        let input = d.join("deep.h5ad");
        txfm::testing::write_dense_h5ad(&input, &names, 1_500, |i| {
            let mut row: Vec<f32> = (0..g).map(|j| ((i * 7 + j * 3) % 5) as f32).collect();
            if i == 1_200 {
                row[4] = bad;
            }
            row
        });
        let o = txfm(&["embed", "--model", "run", "--input", "deep.h5ad", "--output", "deep.emb.h5ad"], d);
        let msg = text(&o);
        assert!(!o.status.success(), "{what}: {msg}");
        assert!(msg.contains("deep.h5ad") && msg.contains("does not hold raw counts") && msg.contains("row 1200"), "{what}: {msg}");
        assert!(!d.join("deep.emb.h5ad").exists(), "{what}: output written");
    }
}

/// A missing `--weights-corpus` is an error, not silently ignored because this model samples
/// uniformly.
#[test]
fn a_missing_weights_corpus_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained(d);
    let o = txfm(&["embed", "--model", "run", "--input", "sim.h5ad", "--output", "e.npy", "--weights-corpus", "no_such_corpus"], d);
    let msg = text(&o);
    assert!(!o.status.success() && msg.contains("no_such_corpus") && msg.contains("--weights-corpus"), "{msg}");
    assert!(!d.join("e.npy").exists());
}

#[test]
fn a_checkpoint_that_yields_non_finite_embeddings_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained(d);
    // Corrupt the weights as a bad disk or a diverged copy would: the CLS token becomes NaN.
    let ckpt = d.join("run/checkpoints/step-0000003/model.safetensors");
    let mut named = tch::Tensor::read_safetensors(&ckpt).unwrap();
    for (name, t) in named.iter_mut() {
        if name == "encoder.cls" {
            *t = t.full_like(f64::NAN);
        }
    }
    tch::Tensor::write_safetensors(&named, &ckpt).unwrap();
    // The checkpoint's recorded checksum catches the changed file first.
    let o = txfm(&["embed", "--model", "run", "--input", "sim.h5ad", "--output", "nan.h5ad"], d);
    let msg = text(&o);
    assert!(!o.status.success() && msg.contains("model.safetensors") && msg.contains("SHA-256"), "{msg}");
    assert!(!d.join("nan.h5ad").exists());
    // Without checksums (a checkpoint from before they were recorded, or NaN weights written as
    // such), the non-finite embeddings stop the run.
    std::fs::remove_file(d.join("run/checkpoints/step-0000003/SHA256SUMS")).unwrap();
    let o = txfm(&["embed", "--model", "run", "--input", "sim.h5ad", "--output", "nan.h5ad"], d);
    let msg = text(&o);
    assert!(!o.status.success(), "{msg}");
    assert!(msg.contains("is not finite") && msg.contains("may be corrupt"), "{msg}");
    assert!(!d.join("nan.h5ad").exists());
}

