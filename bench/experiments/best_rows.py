#!/usr/bin/env python3
"""Each embedding's best post-processing row of several `txfm bench perturb` reports (one per
training seed), as mean ± sd over the reports, one Markdown table row per embedding:

    python3 bench/experiments/best_rows.py LABEL DIR1/report.json DIR2/report.json ...

Columns: ilisi (×100), lin, knn, p.cst, bmdb, inv, average; the best post-processing of each report
in parentheses.
"""
import json, sys, statistics as st

M = ['ilisi','lin','knn','pcst','bmdb','inv','average']
acc = {}
for p in sys.argv[2:]:
    r = json.load(open(p))
    best = {}
    for row in r['rows']:
        e = row['embedding']; a = row['summary']['average']['mean']
        if e not in best or a > best[e]['summary']['average']['mean']: best[e] = row
    for e, row in best.items():
        acc.setdefault(e, []).append((row['postprocess'], [row['summary'][m]['mean'] * (100 if m == 'ilisi' else 1) for m in M]))
for e, rs in acc.items():
    cols = list(zip(*[v for _, v in rs]))
    fmt = lambda c: f"{st.mean(c):.1f} ± {st.stdev(c):.1f}" if len(c) > 1 else f"{c[0]:.1f}"
    print(f"| {sys.argv[1]} {e} ({'/'.join(pp for pp,_ in rs)}) | " + " | ".join(fmt(c) for c in cols) + f" | n={len(rs)}")
