"""scanpy's PCA pipeline on an h5ad of raw counts, timed: the peer of `txfm baseline pca`.

Usage: python bench/pca_scanpy.py IN.h5ad OUT.json [--n-comps 50] [--n-top-genes N] [--target-sum 1e4]

read_h5ad (whole file in memory, as scanpy works; a CSR X whose indptr and indices differ in
dtype, as txfm's simulator writes, gets one dtype for both, without which scikit-learn's sparse PCA
fails) → normalize_total → log1p →
[highly_variable_genes(flavor="seurat", n_top_genes)] → pca(n_comps) with scanpy's default solver
for the input → write the h5ad with obsm['X_pca']. Writes the explained variance (ratio), the HVG
indices and per-phase seconds to OUT.json. Run it from the scanpy venv (see pca_scanpy.sh).
"""
import argparse
import json
import time
from importlib.metadata import version

import numpy as np
import scanpy as sc
import scipy.sparse as sp

p = argparse.ArgumentParser()
p.add_argument("h5ad")
p.add_argument("out")
p.add_argument("--n-comps", type=int, default=50)
p.add_argument("--n-top-genes", type=int)
p.add_argument("--target-sum", type=float, default=1e4)
p.add_argument("--write")
a = p.parse_args()

t = {}
t0 = time.perf_counter()
adata = sc.read_h5ad(a.h5ad)
X = adata.X
if sp.issparse(X) and X.indptr.dtype != X.indices.dtype:
    # anndata keeps the file's index dtypes; txfm's simulator writes int32 indices with an int64
    # indptr, and scikit-learn's sparse mean/variance (used by the PCA of sparse input) needs both
    # of one dtype. Cast to int32 where it holds them, as scipy itself would, else both to int64.
    small = max(X.nnz, X.shape[1]) < np.iinfo(np.int32).max
    X.indptr = X.indptr.astype(np.int32 if small else np.int64)
    X.indices = X.indices.astype(np.int32 if small else np.int64)
t["read"] = time.perf_counter() - t0
t1 = time.perf_counter()
sc.pp.normalize_total(adata, target_sum=a.target_sum)
sc.pp.log1p(adata)
hvg = None
if a.n_top_genes:
    sc.pp.highly_variable_genes(adata, flavor="seurat", n_top_genes=a.n_top_genes)
    hvg = np.flatnonzero(adata.var["highly_variable"].to_numpy()).tolist()
t["preprocess"] = time.perf_counter() - t1
t2 = time.perf_counter()
sc.pp.pca(adata, n_comps=a.n_comps, mask_var="highly_variable" if a.n_top_genes else None)
t["pca"] = time.perf_counter() - t2
if a.write:
    t3 = time.perf_counter()
    adata.write_h5ad(a.write)
    t["write"] = time.perf_counter() - t3
t["total"] = time.perf_counter() - t0
u = adata.uns["pca"]
json.dump({
    "scanpy": version("scanpy"),
    "params": u.get("params", {}),
    "explained_variance": np.asarray(u["variance"]).tolist(),
    "explained_variance_ratio": np.asarray(u["variance_ratio"]).tolist(),
    "hvg": hvg,
    "seconds": t,
}, open(a.out, "w"), default=str)
