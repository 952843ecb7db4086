"""Baselines on the same data as the model: ``pca``, ``libnorm`` ((Lib+Log)Norm) and ``scvi``,
computed as ``txfm baseline`` computes them."""

from __future__ import annotations

import json
import os

import numpy as np

from . import _anndata, _txfm
from ._progress import Bar


def pca(adata, n_comps: int = 50, n_top_genes: int | None = None, layer: str | None = None, key: str = "X_pca",
        allow_non_counts: bool = False, progress: bool = True):
    """PCA of normalise_total(1e4) + log1p of the raw counts (all genes, or ``n_top_genes``
    Seurat-flavour highly variable genes); exact where cheap, else a randomized SVD run to a
    residual test. Writes ``obsm[key]`` (``n_obs × n_comps``), ``varm["PCs"]`` (zero for genes
    left out) and ``uns["pca"]`` (``variance``, ``variance_ratio``, ``params``), as scanpy does,
    and returns ``adata``."""
    spec, matrix_name, var_names = _anndata.matrix(adata, layer)
    bar = Bar(progress, unit="row")
    try:
        fit = _txfm.pca(spec, _anndata.obs_names(adata), var_names, matrix_name=matrix_name, n_comps=n_comps,
                        n_top_genes=n_top_genes, allow_non_counts=allow_non_counts, progress=bar.callback)
    finally:
        bar.close()
    if fit["warning"]:
        import warnings

        warnings.warn(fit["warning"], stacklevel=2)
    adata.obsm[key] = fit["scores"]
    if layer != "raw":
        pcs = np.zeros((adata.n_vars, fit["components"].shape[0]), dtype=np.float32)
        pcs[np.asarray(fit["var_indices"], dtype=np.int64)] = fit["components"].T
        adata.varm["PCs"] = pcs
    adata.uns["pca"] = {
        "variance": np.asarray(fit["variance"]),
        "variance_ratio": np.asarray(fit["variance_ratio"]),
        "params": {"n_comps": n_comps, "n_top_genes": n_top_genes, "solver": fit["solver"], "target_sum": 1e4, "log1p": True},
    }
    return adata


def libnorm(adata, n_top_genes: int | None = 2000, layer: str | None = None, key: str = "X_libnorm",
            target_sum: float = 1e4, allow_non_counts: bool = False):
    """The paper's (Lib+Log)Norm baseline: each cell's log1p(counts / library size · target_sum)
    over its ``n_top_genes`` highly variable genes (all genes when there are no more), as
    ``obsm[key]``; the genes kept go to ``uns[key]["genes"]``. Returns ``adata``."""
    spec, matrix_name, var_names = _anndata.matrix(adata, layer)
    keep, x = _txfm.libnorm(spec, _anndata.obs_names(adata), var_names, matrix_name=matrix_name,
                            n_top_genes=n_top_genes, target_sum=target_sum, allow_non_counts=allow_non_counts)
    adata.obsm[key] = x
    adata.uns[key] = {"genes": np.asarray([var_names[i] for i in keep], dtype=object), "target_sum": target_sum}
    return adata


def scvi(adata, batch_key: str | None = None, n_latent: int | None = None, max_epochs: int | None = None,
         preset: str = "default", layer: str | None = None, key: str = "X_scvi", seed: int | None = None,
         device: str = "cpu", save=None, progress: bool = True):
    """scVI (Lopez et al. 2018) with scvi-tools' model and defaults (``preset``: ``default``,
    ``txeval``, ``txfm``), ``batch_key`` as its batch covariate, fitted on the raw counts: the
    latent means go to ``obsm[key]`` and the per-epoch ELBO to ``uns[key]["history"]``. ``save``:
    a folder for the model (for ``txfm.bench.genes``-style read-outs with ``txfm bench genes
    --scvi``). Returns ``adata``."""
    spec, matrix_name, var_names = _anndata.matrix(adata, layer)
    columns = [] if batch_key is None else [_anndata.categorical(adata, batch_key)]
    bar = Bar(progress, unit="epoch")
    try:
        latent, history = _txfm.scvi(spec, _anndata.obs_names(adata), var_names, columns, matrix_name=matrix_name,
                                     batch_key=batch_key, preset=preset, n_latent=n_latent, max_epochs=max_epochs,
                                     seed=seed, device=device, save=None if save is None else os.fspath(save),
                                     progress=bar.callback)
    finally:
        bar.close()
    adata.obsm[key] = latent
    adata.uns[key] = {"history": json.loads(history), "batch_key": batch_key, "preset": preset}
    return adata
