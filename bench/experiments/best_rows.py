#!/usr/bin/env python3
"""Each embedding's best post-processing row of several `txfm bench perturb` reports (one per
training seed), as mean ± sd over the reports, one Markdown table row per embedding:

    python3 bench/experiments/best_rows.py LABEL DIR1/report.json DIR2/report.json ...

Columns: ilisi (×100), lin, knn, p.cst, bmdb, inv, average; the best post-processing of each report
in parentheses. A metric a report leaves undefined (null) is left out of its mean, and shown as —
where no report defines it.
"""
import json
import statistics
import sys

METRICS = ["ilisi", "lin", "knn", "pcst", "bmdb", "inv", "average"]


def mean(row, metric):
    v = row["summary"].get(metric, {}).get("mean")
    return None if v is None else v * (100 if metric == "ilisi" else 1)


def fmt(values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    label, by_embedding = argv[1], {}
    for path in argv[2:]:
        with open(path) as f:
            rows = json.load(f)["rows"]
        for embedding in dict.fromkeys(r["embedding"] for r in rows):
            # The best row as run.py and learning_curve.py pick it (an undefined average last).
            best = max((r for r in rows if r["embedding"] == embedding), key=lambda r: mean(r, "average") or -1)
            by_embedding.setdefault(embedding, []).append(best)
    for embedding, best in by_embedding.items():
        postprocess = "/".join(r["postprocess"] for r in best)
        cells = " | ".join(fmt([mean(r, m) for r in best]) for m in METRICS)
        print(f"| {label} {embedding} ({postprocess}) | {cells} | n={len(best)}")


if __name__ == "__main__":
    main(sys.argv)
