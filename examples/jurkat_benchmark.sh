#!/usr/bin/env bash
# The perturbation benchmark on real data: txfm-tiny (pretrained on every shared dataset), PCA and
# (Lib+Log)Norm on the Jurkat CROP-seq screen (Datlinger 2017), against the five EFAAR databases.
#   bash examples/jurkat_benchmark.sh [OUT]        (after ./txfm.sh quickstart has built the binary)
# The last command is the benchmark itself: given a run and raw counts, it embeds, computes the
# baselines and writes the table, the JSON and the plots to OUT/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
txfm=${TXFM:-target/release/txfm}
out=${1:-jurkat-out}
data=../shared/data

rm -rf "$out/run" "$out/bench"
"$txfm" corpus build --manifest examples/shared_corpus.toml --out "$out/corpus" --overwrite
"$txfm" train --corpus "$out/corpus" --preset tiny --steps "${STEPS:-2000}" --out "$out/run"

# Batches: `perturbation_2` (stimulated / unstimulated). `sample` has 367 wells, most of them
# without a control cell to post-process against.
"$txfm" bench perturb \
  --input "$data/perturbation/datlinger2017_cropseq_scperturb_testsubset.h5ad" \
  --model "$out/run" --baseline pca --baseline libnorm \
  --pert-key target_gene --batch-key perturbation_2 --control control \
  --annotations "$data/annotations/efaar" --seeds 3 --out "$out/bench"
