"""How an AnnData's matrix and obs reach the extension: as its numpy buffers (in memory) or as
its file (backed)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import scipy.sparse as sp


def matrix(adata, layer: str | None):
    """``(spec, matrix_name, var_names)`` for the extension: ``("file", path, layer)`` for a
    backed AnnData, else ``("csr"|"csc", indptr, indices, data)`` or ``("dense", array)`` over the
    matrix's own buffers. ``layer``: None (X), "raw" (raw.X) or a key of ``layers``."""
    var_names = adata.var_names
    if layer == "raw":
        if adata.raw is None:
            raise ValueError("layer='raw': this AnnData has no .raw")
        var_names = adata.raw.var_names
    if adata.isbacked:
        path = os.fspath(adata.filename)
        return ("file", path, layer), _matrix_name(layer), [str(v) for v in var_names]
    if layer is None:
        x = adata.X
    elif layer == "raw":
        x = adata.raw.X
    else:
        if layer not in adata.layers:
            raise KeyError(f"layer '{layer}' not in adata.layers ({', '.join(adata.layers.keys()) or 'none'})")
        x = adata.layers[layer]
    if x is None:
        raise ValueError(f"{_matrix_name(layer)} is empty (None): txfm reads raw counts from it")
    return _spec(x, layer), _matrix_name(layer), [str(v) for v in var_names]


def _matrix_name(layer):
    return "X" if layer is None else ("raw/X" if layer == "raw" else f"layers['{layer}']")


def _spec(x, layer):
    if sp.issparse(x):
        if x.format not in ("csr", "csc"):
            # COO/LIL/DOK have no row access; CSR is scipy's own conversion (a sparse copy).
            x = x.tocsr()
        return (x.format, _aligned(x.indptr), _aligned(x.indices), _aligned(x.data))
    if isinstance(x, np.ndarray):
        return ("dense", _aligned(x))
    if isinstance(x, np.matrix):
        return ("dense", _aligned(np.asarray(x)))
    raise TypeError(
        f"{_matrix_name(layer)} is a {type(x).__module__}.{type(x).__name__}; txfm reads scipy CSR/CSC, "
        "numpy arrays, or a backed AnnData (read_h5ad(path, backed='r'))"
    )


def _aligned(a):
    # Read in place whatever the strides; copied only if misaligned (e.g. a field of a packed
    # structured array), which the extension cannot read as a slice of its element type.
    return np.require(a, requirements="A")


def obs_names(adata):
    return [str(n) for n in adata.obs_names]


def categorical(adata, key: str):
    """``(key, codes, categories)`` of an obs column (missing values code -1)."""
    if key not in adata.obs.columns:
        raise KeyError(f"obs has no column `{key}`; columns: {', '.join(map(str, adata.obs.columns))}")
    c = adata.obs[key].astype("category")
    codes = np.asarray(c.cat.codes, dtype=np.int32).tolist()
    return (key, codes, [str(v) for v in c.cat.categories])
