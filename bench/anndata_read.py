"""The Python peer of `txfm corpus build`: read every row of an h5ad's X with anndata.

mode "backed": stream X in row chunks from a backed AnnData (the bounded-memory way);
mode "full":   anndata.read_h5ad(path) loads the whole file into memory (what most scripts do).
Prints cells/s and the non-zero count read, so the work is checked to be the same.
"""
import sys
import time

import importlib.metadata

import anndata

path, mode = sys.argv[1], sys.argv[2]
chunk = 4096
t0 = time.perf_counter()
nnz = 0
if mode == "backed":
    a = anndata.read_h5ad(path, backed="r")
    n = a.n_obs
    for i in range(0, n, chunk):
        x = a.X[i : i + chunk]
        nnz += x.nnz
elif mode == "full":
    a = anndata.read_h5ad(path)
    n = a.n_obs
    nnz = a.X.nnz
else:
    raise SystemExit(f"unknown mode {mode}")
dt = time.perf_counter() - t0
print(f"anndata {importlib.metadata.version('anndata')} {mode}: {n} cells, nnz {nnz}, {dt:.1f}s, {n / dt:,.0f} cells/s")
