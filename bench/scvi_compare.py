#!/usr/bin/env python
"""`txfm baseline scvi` against scvi-tools 1.4.2 on the same data, settings and seed.

Usage (in the scvi-tools venv; bench/scvi_compare.sh makes it):
    python bench/scvi_compare.py INPUT.h5ad OUT --epochs N [--batch-key K] [--txfm BIN]

1. scvi-tools fits seeds 0 and 1 (bench/scvi_reference.py: time, peak RSS, held-out metrics);
   txfm fits seed 0 (time and peak RSS through bench/peak_rss.py).
2. Forward pass: txfm's trained weights are loaded into scvi-tools' own SCVI module; its
   `get_latent_representation` must reproduce txfm's obsm['X_scvi'] (the same network, the same
   numbers, to float rounding).
3. Held-out fit: both models' ELBO per cell on scvi-tools' validation cells, computed by
   scvi-tools' code (one z sample per cell, seeded; and deterministically with z = E[q(z|x)]).
4. Latent agreement: the overlap of each cell's 15 nearest neighbours and the mean canonical
   correlation between txfm's latent and scvi-tools' (seed 0), beside the same two numbers for
   scvi-tools' seed 1 against its seed 0 (two fits of one method: the agreement to expect).
5. OUT/both.h5ad holds the input with obsm X_scvi (txfm) and X_scvi_tools (seed 0), for
   `txfm bench perturb`. OUT/compare.json holds every number.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def read_safetensors(path):
    import numpy as np

    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=kinds[t["dtype"]]).reshape(t["shape"])
    return out


def to_scvi_names(weights):
    """txfm's VarStore names → scvi-tools' state_dict names (n_layers = 1 and more)."""
    out = {}
    for name, v in weights.items():
        parts = name.split(".")
        if parts[0] in ("encoder", "decoder"):
            layer, kind, leaf = parts[1], parts[2], parts[3]
            prefix = "z_encoder.encoder" if parts[0] == "encoder" else "decoder.px_decoder"
            out[f"{prefix}.fc_layers.Layer {layer}.{0 if kind == 'linear' else 1}.{leaf}"] = v
        elif parts[0] in ("mean_encoder", "var_encoder"):
            out[f"z_encoder.{name}"] = v
        elif parts[0] == "px_scale":
            out[f"decoder.px_scale_decoder.0.{parts[1]}"] = v
        elif parts[0] == "px_dropout":
            out[f"decoder.px_dropout_decoder.{parts[1]}"] = v
        else:
            out[name] = v
    return out


def knn_overlap(a, b, k=15):
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    na = NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a, return_distance=False)[:, 1:]
    nb = NearestNeighbors(n_neighbors=k + 1).fit(b).kneighbors(b, return_distance=False)[:, 1:]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def mean_cca(a, b):
    import numpy as np

    qa, _ = np.linalg.qr(a - a.mean(0))
    qb, _ = np.linalg.qr(b - b.mean(0))
    return float(np.linalg.svd(qa.T @ qb, compute_uv=False).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("input")
    p.add_argument("out")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-key")
    p.add_argument("--txfm", default=os.path.join(HERE, "..", "target", "release", "txfm"))
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    batch = ["--batch-key", args.batch_key] if args.batch_key else []

    for seed in (0, 1):
        d = os.path.join(args.out, f"scvi_tools_s{seed}")
        if not os.path.exists(os.path.join(d, "metrics.json")):
            subprocess.run([sys.executable, os.path.join(HERE, "scvi_reference.py"), args.input, d, "--epochs", str(args.epochs), "--seed", str(seed), *batch], check=True, stdout=subprocess.DEVNULL)
    import numpy as np

    # txfm holds out scvi-tools' validation cells, so both are scored on cells neither saw.
    val_file = os.path.join(args.out, "val_cells.txt")
    np.savetxt(val_file, np.load(os.path.join(args.out, "scvi_tools_s0", "val_idx.npy")), fmt="%d")
    txfm_h5ad = os.path.join(args.out, "txfm.h5ad")
    run = subprocess.run(
        [sys.executable, os.path.join(HERE, "peak_rss.py"), "txfm", "--", args.txfm, "baseline", "scvi", args.input, "--out", txfm_h5ad, "--max-epochs", str(args.epochs), "--seed", "0", "--embedding-only", "--validation-cells", val_file, *batch],
        check=True, capture_output=True, text=True,
    )
    txfm_run = json.loads(run.stdout.strip().splitlines()[-1])

    import anndata as ad
    import torch
    import scvi

    torch.set_num_threads(2)
    ref = {s: json.load(open(os.path.join(args.out, f"scvi_tools_s{s}", "metrics.json"))) for s in (0, 1)}
    z_tools = {s: np.load(os.path.join(args.out, f"scvi_tools_s{s}", "latent.npy")) for s in (0, 1)}
    val_idx = np.load(os.path.join(args.out, "scvi_tools_s0", "val_idx.npy"))
    z_txfm = ad.read_h5ad(txfm_h5ad).obsm["X_scvi"]

    # txfm's weights in scvi-tools' module.
    adata = ad.read_h5ad(args.input)
    scvi.model.SCVI.setup_anndata(adata, batch_key=args.batch_key)
    model = scvi.model.SCVI(adata)
    weights = to_scvi_names(read_safetensors(os.path.join(args.out, "txfm.scvi", "weights.safetensors")))
    state = model.module.state_dict()
    unused = {k for k in state if k.startswith("l_encoder.") or k.startswith("decoder.px_r_decoder.") or k.endswith("num_batches_tracked")}
    missing = sorted(set(state) - set(weights) - unused)
    extra = sorted(set(weights) - set(state))
    assert not missing and not extra, (missing, extra)
    for k, v in weights.items():
        assert tuple(state[k].shape) == v.shape, (k, state[k].shape, v.shape)
        state[k] = torch.from_numpy(v.copy())
    model.module.load_state_dict(state)
    model.is_trained_ = True
    model.module.eval()
    z_via_tools = model.get_latent_representation()
    forward_max_abs = float(np.abs(z_via_tools - z_txfm).max())

    torch.manual_seed(0)
    txfm_elbo = -float(model.get_elbo(indices=val_idx))
    torch.manual_seed(0)
    txfm_rec = float(model.get_reconstruction_error(indices=val_idx)["reconstruction_loss"])

    both = adata.copy()
    both.obsm["X_scvi"] = z_txfm
    both.obsm["X_scvi_tools"] = z_tools[0]
    both.write_h5ad(os.path.join(args.out, "both.h5ad"))

    out = {
        "input": args.input,
        "epochs": args.epochs,
        "batch_key": args.batch_key,
        "n_val": int(val_idx.size),
        "forward_max_abs_diff": forward_max_abs,
        "latent_scale": float(np.abs(z_txfm).max()),
        "heldout_elbo_per_cell": {
            "txfm": txfm_elbo,
            "scvi_tools_s0": -ref[0]["heldout"]["get_elbo_val_mean"],
        },
        "heldout_reconstruction_per_cell": {"txfm": txfm_rec, "scvi_tools_s0": ref[0]["heldout"]["get_reconstruction_error_val_mean"]},
        "knn15_overlap": {"txfm_vs_tools_s0": knn_overlap(z_txfm, z_tools[0]), "tools_s1_vs_tools_s0": knn_overlap(z_tools[1], z_tools[0])},
        "mean_cca": {"txfm_vs_tools_s0": mean_cca(z_txfm, z_tools[0]), "tools_s1_vs_tools_s0": mean_cca(z_tools[1], z_tools[0])},
        "train_seconds": {"txfm_total": txfm_run["seconds"], "scvi_tools_s0_train": ref[0]["train_wall_s"], "scvi_tools_s0_total": ref[0]["total_wall_s"]},
        "peak_rss_mib": {"txfm": txfm_run["peak_rss_mib"], "scvi_tools_s0": ref[0]["peak_rss_mib"]},
    }
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
