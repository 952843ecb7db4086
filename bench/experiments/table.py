#!/usr/bin/env python3
"""Markdown table of experiment results (the JSON lines bench/experiments/run.py appends).

    python3 bench/experiments/table.py RESULTS.jsonl [NAME ...]

Rows in file order, or in the order of the NAMEs given (a name may be a prefix: every result
whose name starts with it). Columns: the config diff, how the cells were embedded, validation
loss against the per-gene baseline, representation health, and the benchmark's best row.
"""

import json
import sys


def fmt(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def main():
    path, names = sys.argv[1], sys.argv[2:]
    results = [json.loads(l) for l in open(path) if l.strip()]
    if names:
        results = [r for n in names for r in results if r["name"] == n or r["name"].startswith(n)]
    print("| run | diff from the base | embedding | val loss (baseline) | PR | top | lib R² | best pp | average | bmdb | p.cst | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        diff = ", ".join(f"{k}={json.dumps(v)}" for k, v in r["diff"].items()) or "—"
        if r.get("from_run"):
            diff = f"weights of `{r['from_run'].rstrip('/').split('/')[-2]}`"
        # `embedding` is recorded in the committed log; fresh results say only what was asked.
        embed = r.get("embedding") or (f"K={r['embed_k']}" if r.get("embed_k") else "default")
        if r.get("samplings", 1) > 1 and "samplings" not in embed:
            embed += f", {r['samplings']} samplings"
        h = r.get("health") or {}
        b = r["bench"]
        print(
            f"| {r['name']} | {diff} | {embed} | {fmt(r['val_loss'], 2)} ({fmt(r['val_baseline'], 2)}) | "
            f"{fmt(h.get('participation_ratio'), 2)} | {fmt(h.get('top_share'), 2)} | {fmt(h.get('library_r2'), 2)} | "
            f"{r['postprocess']} | **{fmt(b.get('average'))}** | {fmt(b.get('bmdb'))} | {fmt(b.get('pcst'))} | {r['seconds']['train']:.0f} |"
        )


if __name__ == "__main__":
    main()
