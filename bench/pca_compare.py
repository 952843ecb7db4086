"""Explained-variance ratios of `txfm baseline pca` (<out>.pca.json) and scanpy (pca_scanpy.py's
JSON) side by side: largest per-component and total differences, and each side's phase times.

Usage: python bench/pca_compare.py TXFM.pca.json SCANPY.json
"""
import json
import sys

import numpy as np

t, s = (json.load(open(f)) for f in sys.argv[1:3])
a, b = np.array(t["explained_variance_ratio"]), np.array(s["explained_variance_ratio"])
print(json.dumps({
    "n_comps": len(a),
    "txfm_total_ratio": round(float(a.sum()), 6),
    "scanpy_total_ratio": round(float(b.sum()), 6),
    "max_abs_diff_ratio": float(np.abs(a - b).max()),
    "total_diff_ratio": float(a.sum() - b.sum()),
    "max_rel_diff_variance": float(np.abs(np.array(t["explained_variance"]) / np.array(s["explained_variance"]) - 1).max()),
    "txfm_seconds": {"stats": round(t["seconds_stats"], 2), "svd": round(t["seconds_svd"], 2)},
    "scanpy_seconds": {k: round(v, 2) for k, v in s["seconds"].items()},
    "scanpy_solver": s["params"].get("svd_solver"),
}))
