#!/usr/bin/env python3
"""Binomial thinning of every cell of a CSR raw-count .h5ad to at most T counts (cells at or
below T are kept as they are), as scanpy's `downsample_counts(counts_per_cell=T)`; zeros the
thinning creates are dropped from the matrix (docs/experiments.md § 31).

    python3 bench/experiments/thin_counts.py IN.h5ad OUT.h5ad T [SEED]

OUT is a copy of IN with X replaced, written to a temporary name and renamed; IN is never
modified. Needs h5py and numpy.
"""
import os
import shutil
import sys

import h5py
import numpy as np


def main(argv):
    if len(argv) not in (4, 5):
        sys.exit(__doc__)
    src, dst, target = argv[1], argv[2], float(argv[3])
    seed = int(argv[4]) if len(argv) == 5 else 0
    if os.path.abspath(src) == os.path.abspath(dst):
        sys.exit(f"error: {dst}: the output would overwrite its input")
    rng = np.random.default_rng(seed)
    tmp = f"{dst}.tmp{os.getpid()}"
    shutil.copyfile(src, tmp)
    try:
        with h5py.File(tmp, "r+") as f:
            x = f["X"]
            if not isinstance(x, h5py.Group) or x.attrs.get("encoding-type") != "csr_matrix":
                sys.exit(f"error: {src}: X is not a CSR matrix")
            indptr, indices, data = x["indptr"][:], x["indices"][:], x["data"][:]
            if np.any(data < 0) or np.any(data != np.round(data)):
                sys.exit(f"error: {src}: X does not hold raw counts")
            counts = data.astype(np.int64)
            out_data, out_idx, out_ptr = [], [], [0]
            for i in range(len(indptr) - 1):
                a, b = indptr[i], indptr[i + 1]
                d, total = counts[a:b], counts[a:b].sum()
                if total > target:
                    d = rng.binomial(d, target / total)
                keep = d > 0
                out_data.append(d[keep])
                out_idx.append(indices[a:b][keep])
                out_ptr.append(out_ptr[-1] + int(keep.sum()))
            dtypes = {k: x[k].dtype for k in ("data", "indices", "indptr")}
            for k in dtypes:
                del x[k]
            x.create_dataset("data", data=np.concatenate(out_data).astype(dtypes["data"]))
            x.create_dataset("indices", data=np.concatenate(out_idx).astype(dtypes["indices"]))
            x.create_dataset("indptr", data=np.asarray(out_ptr).astype(dtypes["indptr"]))
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    print(f"{dst}: {indptr[-1]} → {out_ptr[-1]} non-zero entries, cells thinned to at most {target:g} counts")


if __name__ == "__main__":
    main(sys.argv)
