#!/usr/bin/env python
"""Reference (oracle) fit of scvi-tools 1.4.2 SCVI for validating a Rust reimplementation.

Usage:
  python bench/scvi_reference.py INPUT.h5ad OUT_DIR --epochs N --seed S [--batch-key K]
      [--layer L] [--n-latent 10] [--likelihood zinb|nb|poisson] [--n-hidden 128]
      [--layers 1] [--check-val-every 1] [--threads 2] [--n-fixture 32]

Writes into OUT_DIR:
  latent.npy            posterior mean qz.loc for ALL cells (float32, n_obs x n_latent),
                        via model.get_latent_representation() (give_mean=True)
  latent_var.npy        posterior variance qz.scale**2 for all cells (float32)
  train_idx.npy / val_idx.npy   int64 indices into adata (DataSplitter order)
  params.npz            module.state_dict() as numpy (keys exactly as in PyTorch)
  metrics.json          timings, peak RSS, final epoch train/val metrics, per-epoch history,
                        held-out get_elbo / get_reconstruction_error, config
  val_elbo_per_cell.npy      -(rec + kl) per validation cell (model.get_elbo(return_mean=False);
                             ONE stochastic z sample per cell, seeded just before the call)
  val_recon_per_cell.npy     reconstruction loss (= -log p(x|z), positive) per validation cell
                             (model.get_reconstruction_error(return_mean=False); stochastic z)
  val_det_*.npy         deterministic counterparts computed with z = qz.loc (eval mode):
                        val_det_recon.npy (-log p(x|z=mu)), val_det_kl.npy (KL(q||N(0,I)) summed),
                        val_det_elbo.npy (-(recon+kl))
  fixture.npz           exact forward-pass fixture for the first --n-fixture validation cells in
                        eval mode with z = qz.loc: x, batch, library (log total counts),
                        qz_loc, qz_scale, px_scale, px_rate, px_r (=exp(module.px_r)),
                        px_dropout (logits, zinb only), recon, kl
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("input")
    p.add_argument("out_dir")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--batch-key", default=None)
    p.add_argument("--layer", default=None, help="adata.layers key with raw counts (default: X)")
    p.add_argument("--n-latent", type=int, default=10)
    p.add_argument("--likelihood", choices=["zinb", "nb", "poisson"], default="zinb")
    p.add_argument("--n-hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument(
        "--check-val-every",
        type=int,
        default=1,
        help="validation every N epochs (scvi's own default is 'never' unless early stopping; "
        "1 = compute elbo_validation each epoch; 0 = scvi default, no validation loop). "
        "NB: the validation loop draws z samples, so it shifts the torch RNG stream.",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-fixture", type=int, default=32)
    return p.parse_args(argv)


def peak_rss_mib() -> float:
    # Linux: ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _hist_to_lists(history: dict) -> dict:
    out = {}
    for k, df in history.items():
        try:
            col = df.columns[0]
            out[k] = [float(v) for v in df[col].to_numpy().ravel()]
        except Exception:  # noqa: BLE001
            pass
    return out


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    t_start = time.perf_counter()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    import anndata as ad
    import scvi
    from scvi import REGISTRY_KEYS
    from scvi.module._constants import MODULE_KEYS

    scvi.settings.seed = args.seed  # lightning seed_everything(seed): python, numpy, torch
    scvi.settings.dl_num_workers = 0

    t_load = time.perf_counter()
    adata = ad.read_h5ad(args.input)
    load_s = time.perf_counter() - t_load

    scvi.model.SCVI.setup_anndata(adata, layer=args.layer, batch_key=args.batch_key)
    model = scvi.model.SCVI(
        adata,
        n_hidden=args.n_hidden,
        n_latent=args.n_latent,
        n_layers=args.layers,
        gene_likelihood=args.likelihood,
    )

    trainer_kwargs = dict(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
    )
    if args.check_val_every > 0:
        trainer_kwargs["check_val_every_n_epoch"] = args.check_val_every

    t0 = time.perf_counter()
    model.train(**trainer_kwargs)
    train_wall_s = time.perf_counter() - t0

    train_idx = np.asarray(model.train_indices, dtype=np.int64)
    val_idx = np.asarray(model.validation_indices, dtype=np.int64)
    np.save(os.path.join(args.out_dir, "train_idx.npy"), train_idx)
    np.save(os.path.join(args.out_dir, "val_idx.npy"), val_idx)

    history = _hist_to_lists(model.history)
    final = {k: v[-1] for k, v in history.items() if len(v) > 0}

    module = model.module
    module.eval()

    # --- latent (posterior mean) ---
    latent = model.get_latent_representation(give_mean=True).astype(np.float32)
    np.save(os.path.join(args.out_dir, "latent.npy"), latent)
    qzm, qzv = model.get_latent_representation(return_dist=True)
    np.save(os.path.join(args.out_dir, "latent_var.npy"), qzv.astype(np.float32))

    # --- scvi's own held-out metrics (stochastic: one z sample per cell) ---
    torch.manual_seed(args.seed)
    val_elbo_cells = model.get_elbo(indices=val_idx, return_mean=False)
    val_elbo_cells = val_elbo_cells.cpu().numpy().astype(np.float64)
    torch.manual_seed(args.seed)
    val_elbo_mean = float(model.get_elbo(indices=val_idx, return_mean=True))
    torch.manual_seed(args.seed)
    rec = model.get_reconstruction_error(indices=val_idx, return_mean=False)
    val_rec_cells = rec["reconstruction_loss"].cpu().numpy().astype(np.float64)
    torch.manual_seed(args.seed)
    val_rec_mean = float(
        model.get_reconstruction_error(indices=val_idx, return_mean=True)["reconstruction_loss"]
    )
    np.save(os.path.join(args.out_dir, "val_elbo_per_cell.npy"), val_elbo_cells)
    np.save(os.path.join(args.out_dir, "val_recon_per_cell.npy"), val_rec_cells)
    torch.manual_seed(args.seed)
    train_elbo_mean = float(model.get_elbo(indices=train_idx, return_mean=True))

    # --- deterministic held-out metrics with z = qz.loc (for exact parity tests) ---
    from torch.distributions import Normal, kl_divergence

    dl = model._make_data_loader(adata=adata, indices=val_idx, batch_size=128)
    det_rec, det_kl = [], []
    fx = {k: [] for k in ["x", "batch", "library", "qz_loc", "qz_scale", "px_scale", "px_rate",
                          "px_dropout", "recon", "kl"]}
    n_fx = 0
    with torch.inference_mode():
        for tensors in dl:
            inf_in = module._get_inference_input(tensors)
            inf = module.inference(**inf_in)
            qz = inf[MODULE_KEYS.QZ_KEY]
            inf = dict(inf)
            inf[MODULE_KEYS.Z_KEY] = qz.loc
            gen_in = module._get_generative_input(tensors, inf)
            gen = module.generative(**gen_in)
            px = gen[MODULE_KEYS.PX_KEY]
            x = tensors[REGISTRY_KEYS.X_KEY]
            r = -px.log_prob(x).sum(-1)
            kl = kl_divergence(qz, Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.loc))).sum(-1)
            det_rec.append(r.numpy())
            det_kl.append(kl.numpy())
            if n_fx < args.n_fixture:
                take = min(args.n_fixture - n_fx, x.shape[0])
                fx["x"].append(x[:take].numpy())
                fx["batch"].append(tensors[REGISTRY_KEYS.BATCH_KEY][:take].numpy())
                fx["library"].append(inf[MODULE_KEYS.LIBRARY_KEY][:take].numpy())
                fx["qz_loc"].append(qz.loc[:take].numpy())
                fx["qz_scale"].append(qz.scale[:take].numpy())
                fx["px_scale"].append(px.scale[:take].numpy())
                rate = px.rate if args.likelihood == "poisson" else px.mu
                fx["px_rate"].append(rate[:take].numpy())
                if args.likelihood == "zinb":
                    fx["px_dropout"].append(px.zi_logits[:take].numpy())
                fx["recon"].append(r[:take].numpy())
                fx["kl"].append(kl[:take].numpy())
                n_fx += take
    det_rec = np.concatenate(det_rec).astype(np.float64)
    det_kl = np.concatenate(det_kl).astype(np.float64)
    np.save(os.path.join(args.out_dir, "val_det_recon.npy"), det_rec)
    np.save(os.path.join(args.out_dir, "val_det_kl.npy"), det_kl)
    np.save(os.path.join(args.out_dir, "val_det_elbo.npy"), -(det_rec + det_kl))
    fixture = {k: np.concatenate(v) for k, v in fx.items() if v}
    fixture["val_positions"] = np.arange(n_fx)  # rows = val_idx[:n_fx]
    fixture["adata_rows"] = val_idx[:n_fx]
    if args.likelihood != "poisson" and hasattr(module, "px_r"):
        fixture["px_r"] = torch.exp(module.px_r.detach()).numpy()
    np.savez(os.path.join(args.out_dir, "fixture.npz"), **fixture)

    # --- parameters ---
    sd = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    np.savez(os.path.join(args.out_dir, "params.npz"), **sd)
    param_shapes = {k: list(v.shape) for k, v in sd.items()}

    tp = model.trainer.lightning_module if model.trainer is not None else None
    metrics = {
        "versions": {
            "scvi-tools": scvi.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "config": {
            "input": os.path.abspath(args.input),
            "n_obs": int(adata.n_obs),
            "n_vars": int(adata.n_vars),
            "epochs": args.epochs,
            "seed": args.seed,
            "batch_key": args.batch_key,
            "n_batch": int(model.summary_stats.n_batch),
            "layer": args.layer,
            "n_latent": args.n_latent,
            "n_hidden": args.n_hidden,
            "n_layers": args.layers,
            "gene_likelihood": args.likelihood,
            "check_val_every_n_epoch": args.check_val_every if args.check_val_every > 0 else None,
            "torch_threads": torch.get_num_threads(),
            "batch_size": 128,
            "train_size_default": 0.9,
            "n_epochs_kl_warmup": getattr(tp, "n_epochs_kl_warmup", None),
            "lr": getattr(tp, "lr", None),
            "adam_eps": getattr(tp, "eps", None),
            "weight_decay": getattr(tp, "weight_decay", None),
        },
        "epochs_run": int(model.trainer.current_epoch) if model.trainer is not None else None,
        "n_train": int(train_idx.size),
        "n_val": int(val_idx.size),
        "load_wall_s": load_s,
        "train_wall_s": train_wall_s,
        "total_wall_s": time.perf_counter() - t_start,
        "peak_rss_mib": peak_rss_mib(),
        "final_epoch_metrics_as_logged": final,
        "final": {
            "elbo_train": final.get("elbo_train"),
            "reconstruction_loss_train": final.get("reconstruction_loss_train"),
            "kl_local_train": final.get("kl_local_train"),
            "train_loss": final.get("train_loss"),
            "elbo_validation": final.get("elbo_validation"),
            "reconstruction_loss_validation": final.get("reconstruction_loss_validation"),
            "kl_local_validation": final.get("kl_local_validation"),
            "validation_loss": final.get("validation_loss"),
        },
        "heldout": {
            "note": "get_elbo returns ELBO = -(recon+kl) (higher better, one z sample/cell); "
            "get_reconstruction_error returns +recon (= -log p(x|z), lower better). "
            "det_* use z = qz.loc in eval mode (deterministic).",
            "get_elbo_val_mean": val_elbo_mean,
            "get_elbo_val_mean_from_cells": float(val_elbo_cells.mean()),
            "get_reconstruction_error_val_mean": val_rec_mean,
            "get_reconstruction_error_val_mean_from_cells": float(val_rec_cells.mean()),
            "get_elbo_train_mean": train_elbo_mean,
            "det_val_recon_mean": float(det_rec.mean()),
            "det_val_kl_mean": float(det_kl.mean()),
            "det_val_elbo_mean": float(-(det_rec + det_kl).mean()),
        },
        "history": history,
        "param_shapes": param_shapes,
    }
    metrics["total_wall_s"] = time.perf_counter() - t_start
    metrics["peak_rss_mib"] = peak_rss_mib()
    with open(os.path.join(args.out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps({k: metrics[k] for k in ["epochs_run", "train_wall_s", "peak_rss_mib",
                                              "final", "heldout"]}, indent=2))


if __name__ == "__main__":
    main()
