#!/usr/bin/env bash
# txfm's scVI against scvi-tools 1.4.2 (bench/scvi_compare.py): forward pass, held-out ELBO,
# latent agreement, time and memory, then the perturbation benchmark of both embeddings.
#   bash bench/scvi_compare.sh [EPOCHS] [OUT]     (after ./txfm.sh quickstart has built the binary)
# scvi-tools goes into its own cached venv ($TXFM_SCVI_VENV, default ~/.cache/txfm/venv-scvi-1.4.2;
# about 3 minutes and 5.6 GB once). The input is the shared Jurkat CROP-seq screen.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-100}
out=${2:-/tmp/scvi-compare}
venv=${TXFM_SCVI_VENV:-$HOME/.cache/txfm/venv-scvi-1.4.2}
if [ ! -x "$venv/bin/python" ]; then
  python3.11 -m venv "$venv"
  "$venv/bin/pip" install -q "scvi-tools==1.4.2" "torch==2.11.0" anndata scipy scikit-learn
fi
input=../shared/data/perturbation/datlinger2017_cropseq_scperturb_testsubset.h5ad
"$venv/bin/python" bench/scvi_compare.py "$input" "$out" --epochs "$epochs" --batch-key perturbation_2
target/release/txfm bench perturb --input "$out/both.h5ad" --obsm X_scvi --obsm X_scvi_tools \
  --pert-key target_gene --batch-key perturbation_2 --control control \
  --annotations ../shared/data/annotations/efaar --quick --no-inv --seeds 3 --out "$out/bench"
