#!/bin/bash
# One training seed of the quickstart's recipe on a variant of its simulated screen, benchmarked as
# the quickstart does (quick settings, with inv, 3 benchmark seeds), beside the exact PCA
# (docs/experiments.md § 31).
#
#   bash bench/experiments/screen_variant.sh QS DIR SIMCONFIG SEED [TAG] ['model lines']
#
# QS: a `./txfm.sh quickstart --out QS` folder (its corpus manifest and run config are reused);
# DIR: the variant's folder; SIMCONFIG: a TOML file of SimConfig fields that differ from the
# quickstart's (empty: the quickstart's own screen, simulation seed 0); SEED: the training seed
# (`seed` and `loader.seed`); TAG names the run (default `run`); the last argument adds lines
# (`;`-separated) to the run config's [model] table, for a patched build's settings.
# DIR's sim.h5ad and corpus are reused when present; a re-run replaces DIR/TAG<SEED> and its logs.
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,13p "$0" >&2; exit 2; }
T=${TXFM:-$(dirname "$0")/../../target/release/txfm}
QS=$1; D=$2; CFG=$3; S=$4; TAG=${5:-run}; EXTRA=${6:-}
mkdir -p "$D"
[ -f "$D/sim.h5ad" ] || "$T" simulate --config "$CFG" --out "$D/sim.h5ad" --seed 0
if [ ! -d "$D/corpus" ]; then
  sed 's#^path = .*#path = "sim.h5ad"#' "$QS/corpus.toml" > "$D/corpus.toml"
  "$T" corpus build --manifest "$D/corpus.toml" --out "$D/corpus"
fi
python3 - "$QS/run/config.toml" "$S" "$EXTRA" > "$D/$TAG$S.toml" <<'PY'
import sys
config, seed, extra = sys.argv[1:4]
for line in open(config):
    # The top-level seed and [loader]'s: what `txfm quickstart --train-seed` sets.
    print(f"seed = {seed}\n" if line.startswith("seed = ") else line, end="")
    if line.strip() == "[model]" and extra:
        print(extra.replace(";", "\n"))
PY
rm -rf "${D:?}/$TAG$S"
"$T" train --corpus "$D/corpus" --config "$D/$TAG$S.toml" --out "$D/$TAG$S" > "$D/train_$TAG$S.log" 2>&1
"$T" bench perturb --input "$D/sim.h5ad" --model "$D/$TAG$S" --readout cls_mean --baseline pca \
  --annotations "$D/sim.pairs.csv" --quick --seeds 3 --out "$D/bench_$TAG$S" > "$D/bench_$TAG$S.log" 2>&1
grep -E '^\| X_.*\*\*' "$D/bench_$TAG$S/report.md"
