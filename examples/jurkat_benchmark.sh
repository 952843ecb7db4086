#!/usr/bin/env bash
# The perturbation benchmark on real data: TxFM (the CPU recipe, pretrained on every shared
# dataset, then fine-tuned self-supervised on the screen itself: the paper's transductive
# setting), PCA, (Lib+Log)Norm and scVI (fitted on the screen, scvi-tools' defaults: about 4
# minutes on 2 cores) on the Jurkat CROP-seq screen (Datlinger 2017), against the
# five EFAAR databases.
#   bash examples/jurkat_benchmark.sh [OUT]        (after ./txfm.sh quickstart has built the binary)
# STEPS (pretraining, default 1500) and FT_STEPS (fine-tuning, default 1500) set the budget;
# SEED (default 0) the training seed (the model's initialisation and the loader's split, order and
# visible genes; the fine-tuning run keeps it); BENCH_ARGS adds flags to the benchmark (e.g.
# "--quick --no-inv" for a fast look). The README's table repeats this over SEED = 0, 1, 2.
# The last command is the benchmark itself: given a run and raw counts, it embeds, computes the
# baselines and writes the table, the JSON and the plots to OUT/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
txfm=${TXFM:-target/release/txfm}
out=${1:-jurkat-out}
data=../shared/data

rm -rf "$out/run" "$out/run_ft" "$out/bench"
"$txfm" corpus build --manifest examples/shared_corpus.toml --out "$out/corpus" --overwrite
"$txfm" corpus build --manifest examples/jurkat_corpus.toml --out "$out/jurkat_corpus" --overwrite
"$txfm" train --corpus "$out/corpus" --preset small --steps "${STEPS:-1500}" --seed "${SEED:-0}" --out "$out/run"
"$txfm" finetune --from "$out/run" --corpus "$out/jurkat_corpus" --steps "${FT_STEPS:-1500}" --out "$out/run_ft"

# Batches: `perturbation_2` (stimulated / unstimulated). `sample` has 367 wells, most of them
# without a control cell to post-process against.
"$txfm" bench perturb \
  --input "$data/perturbation/datlinger2017_cropseq_scperturb_testsubset.h5ad" \
  --model "$out/run_ft" --baseline pca --baseline libnorm --baseline scvi \
  --pert-key target_gene --batch-key perturbation_2 --control control \
  --annotations "$data/annotations/efaar" --seeds 3 --out "$out/bench" ${BENCH_ARGS:-}
