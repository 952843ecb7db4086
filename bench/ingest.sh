#!/usr/bin/env bash
# h5ad → corpus ingestion: `txfm corpus build` vs Python anndata reading the same simulated file.
#   bash bench/ingest.sh [N_CELLS] [N_GENES]     (default 1000000 20000; WORK=/tmp/txfm-bench)
# Writes the simulated file once (cached in $WORK), then times each reader with its peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q -p txfm-cli
N=${1:-1000000}; G=${2:-20000}; WORK=${WORK:-/tmp/txfm-bench}
mkdir -p "$WORK"
h5ad="$WORK/sim_${N}x${G}.h5ad"
if [ ! -f "$h5ad" ]; then
  python bench/peak_rss.py simulate -- target/release/txfm simulate --preset large --cells "$N" --genes "$G" --out "$h5ad"
fi
ls -l "$h5ad"
cat > "$WORK/manifest.toml" <<TOML
[filters]
min_cells_per_gene = 0
min_genes_per_cell = 0
[[dataset]]
name = "sim"
path = "$h5ad"
gene_ids = "raw"
obs_columns = ["perturbation", "batch"]
TOML
python bench/peak_rss.py "txfm corpus build" -- target/release/txfm corpus build --manifest "$WORK/manifest.toml" --out "$WORK/corpus" --overwrite
du -sh "$WORK/corpus"
python bench/peak_rss.py "anndata backed chunks" -- python bench/anndata_read.py "$h5ad" backed
if [ "${FULL:-0}" = 1 ]; then
  python bench/peak_rss.py "anndata read_h5ad (whole file)" -- python bench/anndata_read.py "$h5ad" full
fi
