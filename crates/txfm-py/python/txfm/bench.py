"""Evaluation: the perturbation benchmark (Bendidi et al. 2024, as extended by TxFM) and
gene-relationship recall from a model's weights, as ``txfm bench perturb`` / ``txfm bench genes``
compute them."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pandas as pd

from . import _anndata, _txfm
from ._model import model_path
from ._progress import Bar

_METRICS = [("ilisi", "ilisi"), ("lin", "lin"), ("knn", "knn"), ("pcst", "p.cst"), ("bmdb", "bmdb"), ("inv", "inv"),
            ("average", "average")]


def _paths(annotations):
    if isinstance(annotations, (str, os.PathLike)):
        annotations = [annotations]
    return [os.fspath(a) for a in annotations]


def perturb(adata, obsm=("X_txfm",), pert_key: str = "perturbation", batch_key: str = "batch",
            control: str = "control", annotations=(), out=None, seeds: int = 3, quick: bool = False,
            inv: bool = True, postprocess=("none", "center", "scale", "tvn"), device: str = "auto",
            layer: str | None = None, expression: bool = True, model=None, readout: str = "cls", baselines=(),
            guides: str | None = None, progress: bool = True, inv_bf16: bool = False) -> pd.DataFrame:
    """The perturbation benchmark over the embeddings ``adata.obsm[k]`` for ``k`` in ``obsm``:
    ilisi, lin, knn, p.cst, bmdb and inv under each post-processing, mean and sd over ``seeds``
    splits. ``annotations``: the pair databases (a folder of CORUM/HuMAP/Reactome/SIGNOR/StringDB
    files, or ``entity1,entity2`` CSVs). Raw counts in ``X`` (or ``layer``) give inv's target and
    p.cst's unexpressed-gene null.

    Returns the report's table as a DataFrame, one row per embedding × post-processing (metric
    columns in percent except ilisi, a fraction in [0, 1]; ``<metric>_sd`` their sd; ``best`` the embedding's best post-processing),
    with ``df.attrs["report"]`` (the report JSON as a dict), ``["json"]``, ``["markdown"]`` and
    ``["plots"]`` (paths under ``out``; a new temporary folder by default).

    ``model`` is embedded as ``X_txfm`` (with ``readout="cls_mean"`` also ``X_txfm_cls_mean``,
    ``[CLS ; token mean]``, from the same pass). ``model``/``baselines`` (``pca``, ``libnorm``,
    ``scvi``) and ``guides`` (an obsm guide-count matrix) need the data in a file: a backed AnnData, whose embeddings are then read from the file
    (with what ``model``/``baselines`` add); keys only in memory are refused.

    ``inv_bf16=True`` trains inv's decoders under bfloat16 autocast, not the reference's float32:
    on a CPU with AMX the full Jurkat benchmark took 6.2 instead of 10.5 minutes, every inv within
    0.004 points of float32's (BENCHMARKS.md); the report's config records it."""
    out = tempfile.mkdtemp(prefix="txfm-bench-") if out is None else os.fspath(out)
    obsm = [obsm] if isinstance(obsm, str) else list(obsm)
    spec, matrix_name, var_names = _anndata.matrix(adata, layer)
    if (model is not None or baselines or guides) and spec[0] != "file":
        raise ValueError("model=, baselines= and guides= read the data from its file: open it with "
                         "anndata.read_h5ad(path, backed='r'), or add embeddings first with txfm.embed / txfm.baseline")
    from_file = spec[0] == "file" and (model is not None or bool(baselines) or bool(guides))
    if from_file:
        import h5py

        with h5py.File(spec[1], "r") as f:
            in_file = set(f["obsm"].keys()) if "obsm" in f else set()
        added = {f"X_{b}" for b in baselines}
        if model is not None:
            added |= {"X_txfm", "X_txfm_cls_mean"} if readout == "cls_mean" else {"X_txfm"}
        missing = [k for k in obsm if k in adata.obsm and k not in in_file and k not in added]
        if missing:
            raise ValueError(f"{spec[1]}: obsm {missing} are in memory only; with model=/baselines=/guides= the embeddings "
                             "are read from the file: write them to it first (adata.write_h5ad) or leave them out")
        obsm = [k for k in obsm if k in in_file and k not in added]
    embeddings = []
    for k in ([] if from_file else obsm):
        if k not in adata.obsm:
            raise KeyError(f"obsm has no key `{k}`; keys: {', '.join(adata.obsm.keys()) or 'none'}")
        embeddings.append((k, np.ascontiguousarray(adata.obsm[k], dtype=np.float32)))
    # With guides the labels come from the guide matrix; the batches always from obs.
    columns = ([] if guides else [_anndata.categorical(adata, pert_key)]) + [_anndata.categorical(adata, batch_key)]
    settings = {"quick": quick, "seeds": seeds, "postprocess": list(postprocess), "inv": inv, "device": device,
                "inv_bf16": inv_bf16}
    input_cfg = {"obsm_keys": obsm, "pert_key": pert_key, "batch_key": batch_key, "control": control,
                 "expression": expression, "layer": layer if spec[0] == "file" else None}
    if guides:
        input_cfg["guides"] = {"obsm_key": guides, "file": spec[1]}
    bar = Bar(progress, unit="run")
    try:
        report, json_path, md_path, plots = _txfm.bench_perturb(
            spec, _anndata.obs_names(adata), var_names, columns, embeddings, _paths(annotations), out,
            json.dumps(settings), json.dumps(input_cfg), matrix_name=matrix_name,
            model=None if model is None else model_path(model), readout=readout, baselines=list(baselines),
            progress=bar.callback)
    finally:
        bar.close()
    report = json.loads(report)
    rows = []
    for r in report["rows"]:
        row = {"embedding": r["embedding"], "postprocess": r["postprocess"], "dim": r["dim"]}
        for field, name in _METRICS:
            m = r["summary"][field]
            row[name] = m["mean"]
            row[f"{name}_sd"] = m["sd"]
        row["best"] = r["best"]
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update({"report": report, "json": str(json_path), "markdown": str(md_path), "plots": [str(p) for p in plots]})
    return df


def genes(model, annotations, out=None, seeds=(0, 1, 2), encoder_components: int | None = None,
          decoder_components: int | None = None) -> pd.DataFrame:
    """Gene-relationship recall from ``model``'s encoder gene embeddings and decoder gene weights:
    per source and database, the recall of known pairs among the most similar gene pairs and that
    of random-pair nulls. Returns one row per (source, database); ``df.attrs["results"]`` holds
    the full results. ``out``: also write report.md/report.json there."""
    results = json.loads(_txfm.bench_genes(model_path(model), _paths(annotations), None if out is None else os.fspath(out),
                                          encoder_components, decoder_components, list(seeds)))
    rows = []
    for s in results:
        for d in s["databases"]:
            rows.append({"source": s["source"], "database": d["database"], "recall": d["recall"],
                         "null_mean": d["null_mean"], "null_sd": d["null_sd"], "n_pairs_covered": d["n_pairs_covered"],
                         "n_genes_covered": d["n_genes_covered"]})
    df = pd.DataFrame(rows)
    df.attrs["results"] = results
    return df
