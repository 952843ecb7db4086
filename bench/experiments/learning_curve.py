#!/usr/bin/env python3
"""Learning curve: the benchmark average of a run's checkpoints against training samples, with
PCA's average as a line.

    python3 bench/experiments/learning_curve.py --qs QS --run RUN --out DIR [--pca 55.0]

Embeds QS/sim.h5ad with every checkpoint of RUN (`txfm embed`, its defaults), runs the same
benchmark as bench/experiments/run.py (quick, no inv, one seed), writes DIR/curve.json and, when
matplotlib is importable, DIR/learning_curve.png.
"""

import argparse
import glob
import json
import os
import subprocess
import tomllib

TXFM = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "txfm")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--qs", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--pca", type=float, help="PCA's average in the same benchmark mode")
    p.add_argument("--before", type=float, help="the pre-issue recipe's average, drawn as a line")
    p.add_argument("--plot-only", action="store_true", help="redraw DIR/curve.json without re-running")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.plot_only:
        return plot(json.load(open(os.path.join(args.out, "curve.json")))["points"], args)
    batch = tomllib.load(open(os.path.join(args.run, "config.toml"), "rb"))["loader"]["batch_size"]
    points = []
    for ckpt in sorted(glob.glob(os.path.join(args.run, "checkpoints", "step-*"))):
        step = int(ckpt.rsplit("-", 1)[1])
        cells = os.path.join(args.out, f"cells-{step}.h5ad")
        bench = os.path.join(args.out, f"bench-{step}")
        subprocess.run([TXFM, "embed", "--model", ckpt, "--input", os.path.join(args.qs, "sim.h5ad"), "--output", cells], check=True, capture_output=True)
        subprocess.run([TXFM, "bench", "perturb", "--input", cells, "--obsm", "X_txfm", "--annotations", os.path.join(args.qs, "sim.pairs.csv"),
                        "--seeds", "1", "--quick", "--no-inv", "--out", bench, "--device", "cpu"], check=True, capture_output=True)
        rows = json.load(open(os.path.join(bench, "report.json")))["rows"]
        best = max(rows, key=lambda r: r["summary"]["average"]["mean"] or -1)
        points.append({"step": step, "samples": step * batch, "average": best["summary"]["average"]["mean"], "postprocess": best["postprocess"]})
        os.remove(cells)
        print(points[-1])
    json.dump({"run": args.run, "pca": args.pca, "points": points}, open(os.path.join(args.out, "curve.json"), "w"), indent=1)
    plot(points, args)


def plot(points, args):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: curve.json only")
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p["samples"] for p in points], [p["average"] for p in points], "o-", label="TxFM (CPU recipe, seed 0)")
    if args.pca is not None:
        ax.axhline(args.pca, color="grey", ls="--", label="PCA")
    if args.before is not None:
        ax.axhline(args.before, color="tab:red", ls=":", label="pre-issue recipe (400 steps)")
    ax.set_ylim(0, 60)
    ax.set_xlabel("training samples")
    ax.set_ylabel("benchmark average (quick, no inv)")
    ax.set_title("Quickstart screen: benchmark average during training")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "learning_curve.png"), dpi=120)


if __name__ == "__main__":
    main()
