"""``txfm.embed``."""

from __future__ import annotations

from . import _anndata, _txfm
from ._model import model_path
from ._progress import Bar


def embed(adata, model, key: str = "X_txfm", layer: str | None = None, k: int | None = None, samplings: int = 1,
          readout: str = "cls", principal_axes: bool = True, device: str = "cpu", seed: int | None = None, batch_size: int = 256, gene_ids: str = "auto",
          allow_non_counts: bool = False, threads: int | None = None, progress: bool = True):
    """Embeds every cell (row) of ``adata`` with ``model`` into ``adata.obsm[key]`` (float32
    ``n_obs × d``, the CLS output; ``readout="cls_mean"``: ``n_obs × 2d``, the CLS beside the mean
    of the visible genes' output tokens) and returns ``adata``. ``principal_axes``: map it into the
    principal axes fitted on the training corpus at the end of training (a shift and a rotation:
    distances unchanged, columns uncorrelated and ordered by variance, as a PCA's); ``False``, or a
    checkpoint without axes, gives the raw read-out.

    Raw counts are read from ``X`` (or ``layer``: a ``layers`` key or ``"raw"``); its genes are
    mapped onto the model's vocabulary (symbols, Ensembl ids, versioned ids) as ``txfm embed``
    maps them. ``k``: visible genes per cell (default: as the model was trained); ``samplings``:
    average of this many draws; ``seed``: the draws' seed (default: the run's). The same seed gives
    the same embedding as ``txfm embed``, bit for bit."""
    spec, matrix_name, var_names = _anndata.matrix(adata, layer)
    bar = Bar(progress, unit="cell")
    try:
        emb = _txfm.embed(model_path(model), spec, _anndata.obs_names(adata), var_names, matrix_name=matrix_name, k=k,
                          samplings=samplings, readout=readout, principal_axes=principal_axes, seed=seed, batch_size=batch_size, device=device, gene_ids=gene_ids,
                          allow_non_counts=allow_non_counts, threads=threads, progress=bar.callback)
    finally:
        bar.close()
    adata.obsm[key] = emb
    return adata
