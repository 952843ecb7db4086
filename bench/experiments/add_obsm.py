"""Write embeddings computed elsewhere (e.g. `txfm embed --output X.npy` on a GPU machine) into a
copy of an .h5ad's obsm, so `txfm bench perturb --obsm KEY` can score them beside other keys.

    python3 bench/experiments/add_obsm.py IN.h5ad OUT.h5ad X_key=emb.npy [X_key2=emb2.npy ...]

Each .npy must have IN's n_obs rows, in IN's obs order (what `txfm embed` writes). Needs h5py
and numpy. OUT is written to a temporary name and renamed; IN is never modified.
"""
import os
import shutil
import sys

import h5py
import numpy as np


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    src, dst, pairs = argv[1], argv[2], argv[3:]
    if os.path.abspath(src) == os.path.abspath(dst):
        sys.exit(f"error: {dst}: the output would overwrite its input")
    tmp = f"{dst}.tmp{os.getpid()}"
    shutil.copyfile(src, tmp)
    try:
        with h5py.File(tmp, "r+") as f:
            n_obs = f["obs"][f["obs"].attrs["_index"]].shape[0]
            obsm = f.require_group("obsm")
            obsm.attrs.setdefault("encoding-type", "dict")
            obsm.attrs.setdefault("encoding-version", "0.1.0")
            for pair in pairs:
                key, path = pair.split("=", 1)
                x = np.load(path).astype(np.float32)
                if x.ndim != 2 or x.shape[0] != n_obs:
                    raise SystemExit(f"error: {path}: shape {x.shape}, expected ({n_obs}, d) for {src}")
                if not np.isfinite(x).all():
                    raise SystemExit(f"error: {path}: non-finite values")
                if key in obsm:
                    del obsm[key]
                d = obsm.create_dataset(key, data=x)
                d.attrs["encoding-type"] = "array"
                d.attrs["encoding-version"] = "0.2.0"
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


if __name__ == "__main__":
    main(sys.argv)
