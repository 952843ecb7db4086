#!/usr/bin/env python3
"""One controlled model-quality experiment: a run config diff → train → embed → benchmark.

Usage (from the repository root, after `./txfm.sh quickstart --out QS`):

    python3 bench/experiments/run.py --qs QS --out EXP NAME [key=value ...] [--embed-k N]
        [--samplings S] [--seeds 1] [--full]

`key=value` overrides the quickstart's run config (dotted TOML paths, values parsed as TOML:
`model.gene_embedding_std=1.0`, `optimizer.lr=3e-3`, `model.value_encoding='"mlp"'`); a key
under `model.` that also exists under `loader.` with the same meaning (n_visible/k,
sampling_tau/tau) is set on both. The run trains on QS/corpus, embeds QS/sim.h5ad, and runs
`txfm bench perturb` against the simulator's true pairs (quick, no inv, one seed unless --full:
the reference settings with inv and 3 seeds). One JSON line per experiment is appended to
EXP/results.jsonl: the config diff, the commands' wall times, the final validation loss and
its baseline, the representation health, and the benchmark's best post-processing row.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib

TXFM = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "txfm")
PAIRED = {"model.n_visible": "loader.k", "model.sampling_tau": "loader.tau"}


def set_path(config, dotted, value):
    keys = dotted.split(".")
    node = config
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def parse_value(text):
    return tomllib.loads(f"v = {text}")["v"]


def run(cmd, log):
    started = time.time()
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.time() - started


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--qs", required=True, help="quickstart output folder")
    p.add_argument("--out", required=True)
    p.add_argument("--base", help="base run config (default: QS/run/config.toml)")
    p.add_argument("--embed-k", help="K at embedding (default: the model's)")
    p.add_argument("--samplings", type=int, default=1)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--full", action="store_true", help="reference benchmark settings, with inv")
    p.add_argument("--from-run", help="embed and benchmark this trained run instead of training (its config is the one used)")
    args = p.parse_args()

    base = args.base or (os.path.join(args.from_run, "config.toml") if args.from_run else os.path.join(args.qs, "run", "config.toml"))
    with open(base, "rb") as f:
        config = tomllib.load(f)
    diff = {}
    for o in args.overrides:
        key, _, text = o.partition("=")
        value = parse_value(text)
        diff[key] = value
        set_path(config, key, value)
        if key in PAIRED:
            set_path(config, PAIRED[key], value)
    out = os.path.join(args.out, args.name)
    os.makedirs(out, exist_ok=True)
    cfg_path = os.path.join(out, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(config, f, indent=1)
    log = os.path.join(out, "log.txt")
    if args.from_run:
        run_dir, t_train = args.from_run, 0.0
    else:
        run_dir = os.path.join(out, "run")
        if os.path.exists(run_dir):
            subprocess.run(["rm", "-rf", run_dir], check=True)
        t_train = run([TXFM, "train", "--corpus", os.path.join(args.qs, "corpus"), "--config", cfg_path, "--out", run_dir], log)
    cells = os.path.join(out, "cells.h5ad")
    embed = [TXFM, "embed", "--model", run_dir, "--input", os.path.join(args.qs, "sim.h5ad"), "--output", cells, "--key", "X_txfm", "--samplings", str(args.samplings)]
    if args.embed_k:
        embed += ["--k", str(args.embed_k)]
    t_embed = run(embed, log)
    bench_dir = os.path.join(out, "bench")
    bench = [TXFM, "bench", "perturb", "--input", cells, "--obsm", "X_txfm", "--annotations", os.path.join(args.qs, "sim.pairs.csv"), "--seeds", str(args.seeds if not args.full else max(args.seeds, 3)), "--out", bench_dir, "--device", "cpu"]
    if not args.full:
        bench += ["--quick", "--no-inv"]
    t_bench = run(bench, log)

    records = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if l.strip()]
    last = [r for r in records if "val_loss" in r][-1]
    report = json.load(open(os.path.join(bench_dir, "report.json")))
    rows = [r for r in report["rows"] if r["embedding"] == "X_txfm"]
    best = max(rows, key=lambda r: (r["summary"]["average"]["mean"] or -1))
    summary = {k: v.get("mean") for k, v in best["summary"].items() if isinstance(v, dict)}
    result = {
        "name": args.name,
        "diff": diff,
        "from_run": args.from_run,
        "embed_k": args.embed_k,
        "samplings": args.samplings,
        "full": args.full,
        "steps": last["step"],
        "val_loss": last["val_loss"],
        "val_baseline": last["val_baseline"],
        "health": last.get("health"),
        "health_curve": [(r["step"], r["health"]) for r in records if r.get("health")],
        "samples_per_s": last["samples_per_s"],
        "postprocess": best["postprocess"],
        "bench": summary,
        "seconds": {"train": t_train, "embed": t_embed, "bench": t_bench},
    }
    with open(os.path.join(args.out, "results.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")
    h = last.get("health") or {}
    lab = h.get("label") or {}
    print(
        f"{args.name}: val {last['val_loss']:.2f} (base {last['val_baseline']:.2f}) PR {h.get('participation_ratio', 0):.2f} "
        f"top {h.get('top_share', 0):.2f} libR2 {h.get('library_r2', 0):.2f} kNN {lab.get('accuracy', 0):.3f}/{lab.get('chance', 0):.3f} | "
        f"avg {summary.get('average')} ({best['postprocess']}) bmdb {summary.get('bmdb')} pcst {summary.get('p_cst') or summary.get('pcst')} | "
        f"train {t_train:.0f}s embed {t_embed:.0f}s bench {t_bench:.0f}s"
    )


if __name__ == "__main__":
    sys.exit(main())
