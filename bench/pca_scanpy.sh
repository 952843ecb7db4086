#!/usr/bin/env bash
# `txfm baseline pca` vs scanpy's normalize_total → log1p → [HVG] → pca on the same h5ad.
#   bash bench/pca_scanpy.sh IN.h5ad [N_TOP_GENES]      (WORK=/tmp/txfm-bench-pca)
# scanpy runs from its own venv (~/.cache/txfm/bench-scanpy, made here off the project venv), never
# the project's. Prints wall time and peak RSS of each (bench/peak_rss.py), then the explained
# variance ratios side by side (bench/pca_compare.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
IN=$1; HVG=${2:-}; WORK=${WORK:-/tmp/txfm-bench-pca}; mkdir -p "$WORK"
SC=${SCANPY_VENV:-$HOME/.cache/txfm/bench-scanpy}
if [ ! -x "$SC/bin/python" ] || ! "$SC/bin/python" -c "import scanpy" 2>/dev/null; then
  python -m venv --system-site-packages "$SC" && "$SC/bin/pip" install -q scanpy
fi
[ -x target/release/txfm ] || cargo build --release -q -p txfm-cli
name=$(basename "$IN" .h5ad)${HVG:+_hvg$HVG}
hvg_txfm=(); hvg_py=()
if [ -n "$HVG" ]; then hvg_txfm=(--n-top-genes "$HVG"); hvg_py=(--n-top-genes "$HVG"); fi
echo "input: $IN ($(du -h "$IN" | cut -f1)); nproc $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)"
python bench/peak_rss.py "txfm baseline pca" -- target/release/txfm baseline pca "$IN" --out "$WORK/$name.txfm.h5ad" "${hvg_txfm[@]}"
python bench/peak_rss.py "scanpy" -- "$SC/bin/python" bench/pca_scanpy.py "$IN" "$WORK/$name.scanpy.json" "${hvg_py[@]}" --write "$WORK/$name.scanpy.h5ad"
python bench/pca_compare.py "$WORK/$name.txfm.pca.json" "$WORK/$name.scanpy.json"
