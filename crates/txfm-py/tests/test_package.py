"""The Python package against the CLI it binds: same numbers, same messages, on real data."""

import json
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import txfm
from conftest import CELLTYPIST, CROPSEQ, EFAAR, run_cli


@pytest.fixture(scope="module")
def cells():
    """600 cells of the CELLxGENE sample (32,786 genes, raw counts, CSR)."""
    a = ad.read_h5ad(CELLTYPIST)
    a = a[:600].copy()
    assert sp.issparse(a.X) and a.X.format == "csr"
    return a


def test_corpus_build_and_train(trained):
    summary, corpus, run, seen = trained
    assert summary["n_samples"] > 7000
    assert [s for s, _ in seen] == list(range(1, 31)) and all(t == 30 for _, t in seen)
    m = txfm.load(run)
    assert m.step == 30 and m.dim == 64
    assert len(m.genes) == len(m.symbols) > 1000
    enc, dec = m.gene_embeddings(), m.decoder_gene_weights()
    assert enc.shape == (len(m.genes), m.dim - 1) and dec.shape[0] == len(m.genes)
    assert np.isfinite(enc).all() and np.isfinite(dec).all() and enc.std() > 0
    assert m.config["steps"] == 30


def test_train_stops_on_request_and_resumes(trained, tmp_path):
    _, corpus, _, _ = trained
    run = tmp_path / "run"
    m = txfm.train(corpus, run, steps=12, checkpoint_every=100, progress=False, on_step=lambda r, t: r["step"] < 5)
    assert m.step == 5, "stopping writes a checkpoint at the step it stopped"
    m = txfm.train(corpus, run, resume=True, progress=False)
    assert m.step == 12
    with pytest.raises(ValueError, match="already holds a run"):
        txfm.train(corpus, run, steps=12, progress=False)


def test_overrides_reach_the_config():
    cfg = txfm.run_config("tiny", steps=7, loader__k=32, model__loss="mse")
    assert "steps = 7" in cfg and "k = 32" in cfg and 'loss = "mse"' in cfg
    with pytest.raises(ValueError, match="no_such_field"):
        txfm.run_config("tiny", no_such_field=1)


def test_embed_equals_cli_bit_for_bit(trained, cells, cli, tmp_path):
    _, _, run, _ = trained
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    out = tmp_path / "emb.npy"
    r = run_cli(cli, "embed", "--model", run, "--input", path, "--output", out, "--seed", 3)
    assert r.returncode == 0, r.stderr
    want = np.load(out)
    a = txfm.embed(cells.copy(), run, seed=3, progress=False)
    assert a.obsm["X_txfm"].dtype == np.float32
    np.testing.assert_array_equal(a.obsm["X_txfm"], want)
    backed = ad.read_h5ad(path, backed="r")
    txfm.embed(backed, txfm.load(run), seed=3, progress=False)
    np.testing.assert_array_equal(backed.obsm["X_txfm"], want)


def test_cls_mean_readout_equals_cli_and_keeps_the_cls(trained, cells, cli, tmp_path):
    _, _, run, _ = trained
    small = cells[:200].copy()
    path = tmp_path / "cells.h5ad"
    small.write_h5ad(path)
    out = tmp_path / "emb.npy"
    r = run_cli(cli, "embed", "--model", run, "--input", path, "--output", out, "--readout", "cls_mean")
    assert r.returncode == 0, r.stderr
    want = np.load(out)
    both = txfm.embed(small.copy(), run, readout="cls_mean", progress=False).obsm["X_txfm"]
    np.testing.assert_array_equal(both, want)
    # The raw read-outs: the CLS is the first half of [CLS ; token mean], bit for bit, and the
    # CLI's --no-axes writes the same.
    raw_out = tmp_path / "raw.npy"
    r = run_cli(cli, "embed", "--model", run, "--input", path, "--output", raw_out, "--readout", "cls_mean", "--no-axes")
    assert r.returncode == 0, r.stderr
    raw_both = txfm.embed(small.copy(), run, readout="cls_mean", principal_axes=False, progress=False).obsm["X_txfm"]
    np.testing.assert_array_equal(raw_both, np.load(raw_out))
    raw_cls = txfm.embed(small.copy(), run, principal_axes=False, progress=False).obsm["X_txfm"]
    assert raw_both.shape == (200, 2 * raw_cls.shape[1])
    np.testing.assert_array_equal(raw_both[:, : raw_cls.shape[1]], raw_cls)
    # The trained run's final checkpoint carries principal axes: each read-out is mapped into its
    # own, a shift and a rotation (same distances, other coordinates).
    for mapped, raw in [(both, raw_both), (txfm.embed(small.copy(), run, progress=False).obsm["X_txfm"], raw_cls)]:
        assert np.abs(mapped - raw).max() > 1e-3
        def distances(x):
            return np.linalg.norm(x[:40, None] - x[None, :40], axis=-1)
        np.testing.assert_allclose(distances(mapped), distances(raw), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="expected cls or cls_mean"):
        txfm.embed(small.copy(), run, readout="mean", progress=False)


def test_csr_csc_and_dense_give_the_same(trained, cells):
    _, _, run, _ = trained
    small = cells[:200].copy()
    ref = txfm.embed(small.copy(), run, progress=False).obsm["X_txfm"]
    for x in [small.X.toarray(), np.asfortranarray(small.X.toarray().astype(np.int32)), sp.csc_matrix(small.X)]:
        b = small.copy()
        b.X = x
        np.testing.assert_array_equal(txfm.embed(b, run, progress=False).obsm["X_txfm"], ref)
    # A layer is read as X would be.
    c = small.copy()
    c.layers["counts"] = c.X.copy()
    c.X = sp.csr_matrix(c.X.shape, dtype=np.float32)
    np.testing.assert_array_equal(txfm.embed(c, run, layer="counts", progress=False).obsm["X_txfm"], ref)


def test_pca_and_libnorm_equal_the_cli(cells, cli, tmp_path):
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    out = tmp_path / "pca.h5ad"
    r = run_cli(cli, "baseline", "pca", path, "--out", out, "--n-top-genes", 1000, "--n-comps", 20)
    assert r.returncode == 0, r.stderr
    want = ad.read_h5ad(out).obsm["X_pca"]
    a = txfm.baseline.pca(cells.copy(), n_comps=20, n_top_genes=1000, progress=False)
    np.testing.assert_allclose(a.obsm["X_pca"], want, rtol=0, atol=1e-5)
    assert a.varm["PCs"].shape == (cells.n_vars, 20) and (np.abs(a.varm["PCs"]).sum(1) > 0).sum() == 1000
    assert np.all(np.diff(a.uns["pca"]["variance"]) <= 0)
    b = cells.copy()
    b.X = b.X.toarray()
    np.testing.assert_array_equal(txfm.baseline.pca(b, n_comps=20, n_top_genes=1000, progress=False).obsm["X_pca"], a.obsm["X_pca"])

    out = tmp_path / "libnorm.h5ad"
    r = run_cli(cli, "baseline", "libnorm", path, "--out", out)
    assert r.returncode == 0, r.stderr
    want = ad.read_h5ad(out).obsm["X_libnorm"]
    a = txfm.baseline.libnorm(cells.copy())
    np.testing.assert_array_equal(a.obsm["X_libnorm"], want)
    # Its definition, recomputed here: log1p(counts / library size · 1e4) over the genes kept.
    keep = [cells.var_names.get_loc(g) for g in a.uns["X_libnorm"]["genes"]]
    x = cells.X.toarray().astype(np.float64)
    direct = np.log1p(x / x.sum(1, keepdims=True) * 1e4)[:, keep]
    np.testing.assert_allclose(a.obsm["X_libnorm"], direct, rtol=1e-6, atol=1e-6)


def test_bench_perturb_equals_the_cli(cli, tmp_path):
    screen = ad.read_h5ad(CROPSEQ)
    txfm.baseline.pca(screen, n_comps=20, progress=False)
    path = tmp_path / "screen.h5ad"
    screen.write_h5ad(path)
    keys = dict(pert_key="target_gene", batch_key="perturbation_2", control="control")
    df = txfm.bench.perturb(screen, obsm=["X_pca"], annotations=EFAAR, out=tmp_path / "py", seeds=1, quick=True,
                            inv=False, postprocess=["none", "center"], progress=False, **keys)
    assert list(df["postprocess"]) == ["none", "center"] and set(df["embedding"]) == {"X_pca"}
    assert df[["lin", "knn", "average"]].notna().all().all() and ((df["average"] >= 0) & (df["average"] <= 100)).all()
    assert json.load(open(df.attrs["json"]))["rows"][0]["embedding"] == "X_pca"
    assert all(pd.io.common.file_exists(p) for p in df.attrs["plots"])
    r = run_cli(cli, "bench", "perturb", "--input", path, "--obsm", "X_pca", "--pert-key", "target_gene",
                "--batch-key", "perturbation_2", "--control", "control", "--annotations", EFAAR, "--seeds", 1, "--quick",
                "--no-inv", "--postprocess", "none,center", "--device", "cpu", "--out", tmp_path / "cli")
    assert r.returncode == 0, r.stderr
    cli_rows = json.load(open(tmp_path / "cli" / "report.json"))["rows"]
    for row, want in zip(df.itertuples(), cli_rows):
        assert row.average == pytest.approx(want["summary"]["average"]["mean"], abs=1e-9)
        assert row.lin == pytest.approx(want["summary"]["lin"]["mean"], abs=1e-9)


def test_bench_perturb_inv_in_bfloat16_is_recorded(tmp_path):
    screen = ad.read_h5ad(CROPSEQ)
    screen = screen[:, np.sort(np.asarray(screen.X.sum(axis=0)).ravel().argsort()[-200:])].copy()
    txfm.baseline.pca(screen, n_comps=10, progress=False)
    keys = dict(pert_key="target_gene", batch_key="perturbation_2", control="control", seeds=1, quick=True,
                annotations=EFAAR, postprocess=["none"], progress=False, device="cpu")
    f32 = txfm.bench.perturb(screen, obsm=["X_pca"], out=tmp_path / "f32", **keys)
    bf16 = txfm.bench.perturb(screen, obsm=["X_pca"], out=tmp_path / "bf16", inv_bf16=True, **keys)
    assert bf16.attrs["report"]["config"]["reconstruct"]["autocast"] == "bf16"
    assert "autocast" not in f32.attrs["report"]["config"]["reconstruct"]
    assert bf16["inv"].iloc[0] != f32["inv"].iloc[0] and abs(bf16["inv"].iloc[0] - f32["inv"].iloc[0]) < 2.0
    assert bf16["lin"].iloc[0] == f32["lin"].iloc[0], "only inv's decoder changes precision"


def test_bench_genes(trained):
    _, _, run, _ = trained
    df = txfm.bench.genes(run, EFAAR, seeds=[0])
    assert set(df["source"]) == {"encoder", "decoder"}
    assert {"CORUM", "combined"} <= set(df["database"]) or len(set(df["database"])) >= 5
    assert ((df["recall"] >= 0) & (df["recall"] <= 1)).all()


def test_bad_input_raises_with_the_cli_message(trained, cells, cli, tmp_path):
    _, _, run, _ = trained
    bad = cells[:50].copy()
    bad.X = bad.X * 0.5
    with pytest.raises(ValueError, match="does not hold raw counts") as e:
        txfm.embed(bad, run, progress=False)
    path = tmp_path / "bad.h5ad"
    bad.write_h5ad(path)
    r = run_cli(cli, "embed", "--model", run, "--input", path, "--output", tmp_path / "x.npy")
    assert r.returncode != 0
    py_msg = str(e.value).split(": X does not hold raw counts")[1]
    assert py_msg in r.stderr, (py_msg, r.stderr)
    with pytest.raises(FileNotFoundError, match="no_such_run"):
        txfm.load(tmp_path / "no_such_run")
    with pytest.raises(KeyError, match="layers"):
        txfm.embed(cells, run, layer="nope", progress=False)
    with pytest.raises(ValueError, match="unsorted"):
        c = cells[:20].copy()
        c.X.indices[:2] = c.X.indices[:2][::-1].copy()
        c.X.has_sorted_indices = False
        txfm.embed(c, run, progress=False)


def test_notebook_example_runs(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import DATA, REPO

    env = dict(os.environ, TXFM_NOTEBOOK_STEPS="20", TXFM_NOTEBOOK_OUT=str(tmp_path), TXFM_SHARED_DATA=str(DATA))
    r = subprocess.run([sys.executable, str(REPO / "examples" / "notebook.py")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "X_txfm" in r.stdout and "combined" in r.stdout
    assert (tmp_path / "bench" / "report.json").exists() and (tmp_path / "run" / "checkpoints" / "latest").exists()


def test_scvi_equals_the_cli(cli, tmp_path):
    screen = ad.read_h5ad(CROPSEQ)[:800].copy()
    path = tmp_path / "screen.h5ad"
    screen.write_h5ad(path)
    r = run_cli(cli, "baseline", "scvi", path, "--out", tmp_path / "scvi.h5ad", "--batch-key", "sample",
                "--max-epochs", 3, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    want = ad.read_h5ad(tmp_path / "scvi.h5ad").obsm["X_scvi"]
    txfm.baseline.scvi(screen, batch_key="sample", max_epochs=3, progress=False, save=tmp_path / "model")
    np.testing.assert_array_equal(screen.obsm["X_scvi"], want)
    assert len(screen.uns["X_scvi"]["history"]) == 3 and (tmp_path / "model" / "weights.safetensors").exists()


def test_training_leaves_torch_threads_as_it_found_them(trained, tmp_path):
    # libtorch's thread count is process-wide and shared with PyTorch: a run that lowers it for
    # the loader's sake must restore it (it stayed at 1 after training, and later results then
    # depended on whether a model had been trained in the same process).
    import torch

    _, corpus, _, _ = trained
    before = torch.get_num_threads()
    txfm.train(corpus, tmp_path / "run", steps=2, progress=False)
    assert torch.get_num_threads() == before


def test_direct_calls_with_inconsistent_shapes_are_refused():
    from txfm import _txfm

    names, genes = [f"c{i}" for i in range(7)], [f"g{j}" for j in range(9)]
    with pytest.raises(ValueError, match="a 9 × 7 array for 7 cells × 9 genes"):
        _txfm.libnorm(("dense", np.ones((9, 7), dtype=np.float32)), names, genes)
    with pytest.raises(ValueError, match="obs column b: 1 values for 7 cells"):
        _txfm.scvi(("dense", np.ones((7, 9), dtype=np.float32)), names, genes, [("b", [0], ["x"])], batch_key="b")
    packed = np.zeros((7, 9), dtype=[("a", "u1"), ("b", "<f4")])
    packed["b"] = np.arange(63, dtype=np.float32).reshape(7, 9)
    with pytest.raises(TypeError, match="not aligned"):
        _txfm.libnorm(("dense", packed["b"]), names, genes, n_top_genes=None)
    # Through the package the field is copied aligned and read right.
    a = ad.AnnData(X=packed["b"])
    txfm.baseline.libnorm(a, n_top_genes=None)
    x = packed["b"].astype(np.float64)
    np.testing.assert_allclose(a.obsm["X_libnorm"], np.log1p(x / x.sum(1, keepdims=True) * 1e4), rtol=1e-6, atol=1e-6)


def test_overrides_accept_epochs_none_and_numpy_scalars():
    import tomllib

    cfg = tomllib.loads(txfm.run_config("tiny", epochs=2))
    assert cfg["epochs"] == 2 and "steps" not in cfg
    cfg = tomllib.loads(txfm.run_config("tiny", steps=np.int64(40), optimizer__grad_clip=None, autocast=np.bool_(False)))
    assert cfg["steps"] == 40 and "grad_clip" not in cfg["optimizer"] and cfg["autocast"] is False


def test_bench_perturb_adds_a_baseline_to_a_backed_file(trained, tmp_path):
    screen = ad.read_h5ad(CROPSEQ)[::5].copy()
    path = tmp_path / "screen.h5ad"
    screen.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    df = txfm.bench.perturb(backed, baselines=["libnorm"], pert_key="target_gene", batch_key="perturbation_2",
                            control="control", annotations=EFAAR, out=tmp_path / "b", seeds=1, quick=True, inv=False,
                            postprocess=["none"], progress=False)
    assert list(df["embedding"]) == ["X_libnorm"]
    # A model read out both ways in one pass: the CLS and [CLS ; token mean], twice as wide.
    _, _, run, _ = trained
    df = txfm.bench.perturb(backed, model=run, readout="cls_mean", pert_key="target_gene", batch_key="perturbation_2",
                            control="control", annotations=EFAAR, out=tmp_path / "m", seeds=1, quick=True, inv=False,
                            postprocess=["none"], progress=False)
    assert list(df["embedding"]) == ["X_txfm", "X_txfm_cls_mean"] and list(df["dim"]) == [64, 128]
    # Only the read-out asked for is added: with the CLS read-out an in-memory X_txfm_cls_mean is
    # refused, not silently dropped as if the model had written it.
    backed.obsm["X_txfm_cls_mean"] = np.zeros((backed.n_obs, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="in memory only"):
        txfm.bench.perturb(backed, obsm=["X_txfm_cls_mean"], model=run, pert_key="target_gene",
                           batch_key="perturbation_2", control="control", annotations=EFAAR, out=tmp_path / "n",
                           seeds=1, quick=True, inv=False, progress=False)
    backed.obsm["X_mem"] = np.zeros((backed.n_obs, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="in memory only"):
        txfm.bench.perturb(backed, obsm=["X_mem"], baselines=["libnorm"], pert_key="target_gene",
                           batch_key="perturbation_2", control="control", annotations=EFAAR, out=tmp_path / "c",
                           seeds=1, quick=True, inv=False, progress=False)
