"""Rotate embeddings into their principal axes (docs/experiments.md § 22): each .npy `[n, d]` is
centred on its column means and multiplied by the eigenvectors of its covariance, largest
variance first, so that the benchmark's per-column `scale` whitens it as it whitens PCA's scores.
Distances are unchanged (an orthogonal map after centring).

    python3 bench/experiments/principal_axes.py IN.npy OUT.npy [IN2.npy OUT2.npy ...]

The axes are fitted on the rows given: in the log's transductive settings those are the training
corpus's cells. Needs numpy. OUT is written to a temporary name and renamed; IN is never modified.
"""
import os
import sys

import numpy as np


def principal_axes(x):
    x = x.astype(np.float64)
    centred = x - x.mean(0)
    _, vectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    return (centred @ vectors[:, ::-1]).astype(np.float32)


def main(argv):
    pairs = argv[1:]
    if not pairs or len(pairs) % 2:
        sys.exit(__doc__)
    for src, dst in zip(pairs[::2], pairs[1::2]):
        if os.path.abspath(src) == os.path.abspath(dst):
            sys.exit(f"error: {dst}: the output would overwrite its input")
        x = np.load(src)
        if x.ndim != 2 or not np.isfinite(x).all():
            sys.exit(f"error: {src}: expected a finite [n, d] matrix, got shape {x.shape}")
        tmp = f"{dst}.tmp{os.getpid()}.npy"
        np.save(tmp, principal_axes(x))
        os.replace(tmp, dst)


if __name__ == "__main__":
    main(sys.argv)
