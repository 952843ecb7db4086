#!/usr/bin/env bash
# Issue 5's GPU measurements in one script, for a machine with an NVIDIA GPU and torch 2.11 in its
# python3 (or the project venv). Build the binary where it is convenient, then run this beside it:
#
#   bash bench/gpu.sh [train|embed|file|all] [OUT_DIR]      (default: all, bench-gpu/)
#
#   train  TxFM-B (K = 2048, G = 20,000) training steps: txfm vs bench/torch_reference.py in the
#          same run, bf16 autocast + SDPA, the reference also under torch.compile; samples/s, MFU
#          against --peak-tflops (989, H100/H200 SXM bf16 dense; set PEAK_TFLOPS) and peak memory.
#   embed  the same for the forward pass to the CLS (what `txfm embed` runs).
#   file   `txfm embed` of a simulated 10^6-cell × 20,000-gene .h5ad with an untrained TxFM-B
#          checkpoint (the throughput does not depend on the weights): cells/s end to end.
#
# Each result is one JSON line in OUT_DIR/*.jsonl; the lines to copy into BENCHMARKS.md are printed.
# Environment: TXFM (the binary; default target/release/txfm), PYTHON (default: the project venv's
# python if present, else python3), BATCHES (training batch sizes, default "32 64"), EMBED_BATCHES
# (default "256 512"), FILE_CELLS (cells of the `file` step, default 10^6), COMPILE (1: also time the
# reference under torch.compile, the default; 0: skip it, it costs a minute of compiling per size),
# PEAK_TFLOPS.
# SMOKE=1 runs every step on the CPU with a tiny model and file, to check the script itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
what=${1:-all}
out=${2:-bench-gpu}
mkdir -p "$out"
txfm=${TXFM:-target/release/txfm}
python=${PYTHON:-$( [ -x "${TXFM_PYTHON:-}" ] && echo "$TXFM_PYTHON" || echo python3 )}
peak=${PEAK_TFLOPS:-989}
batches=${BATCHES:-32 64}

# The binary's rpath names the torch of the machine it was built on; here it uses this python's.
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if missing=$(ldd "$txfm" | grep 'not found'); then
  echo "error: $txfm cannot load these libraries here:" >&2
  echo "$missing" >&2
  echo "(libmpi: install openmpi, or build with TXFM_NO_MPI=1 for single-GPU runs)" >&2
  exit 1
fi
smoke=${SMOKE:-0}
device=cuda
if [ "$smoke" = 1 ]; then device=cpu; else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
fi
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/gpu.txt"

# TxFM-B: 12 blocks × 768, 12 heads, K = 2048, 4-layer residual decoder as wide as d.
genes=20000
model=(--d-model 768 --blocks 12 --heads 12 --k 2048 --genes $genes --decoder-layers 4)
common=(--device "$device" --warmup 5 --steps 20 --json --peak-tflops "$peak")
preset=b sim=large cells=()
[ -n "${FILE_CELLS:-}" ] && cells=(--cells "$FILE_CELLS")
embed_batches=${EMBED_BATCHES:-256 512}
compile=${COMPILE:-1}
if [ "$smoke" = 1 ]; then
  genes=2000
  model=(--d-model 32 --blocks 1 --heads 2 --k 64 --genes $genes --decoder-layers 1)
  common=(--device cpu --warmup 1 --steps 2 --json --peak-tflops "$peak")
  batches=4 embed_batches=8 preset=tiny sim=tiny cells=(--cells 3000)
fi

pair() { # mode batch [extra flags]
  local mode=$1 batch=$2
  shift 2
  local flag=()
  [ "$mode" = embed ] && flag=(--embed)
  "$txfm" bench "$mode" "${model[@]}" "${common[@]}" --batch "$batch" | tee -a "$out/$mode.jsonl"
  "$python" bench/torch_reference.py "${model[@]}" "${common[@]}" "${flag[@]}" --batch "$batch" | tee -a "$out/$mode.jsonl"
  if [ "$compile" = 1 ]; then
    "$python" bench/torch_reference.py "${model[@]}" "${common[@]}" "${flag[@]}" --batch "$batch" --compile | tee -a "$out/$mode.jsonl"
  fi
}

if [ "$what" = train ] || [ "$what" = all ]; then
  for b in $batches; do pair train "$b"; done
fi
if [ "$what" = embed ] || [ "$what" = all ]; then
  for b in $embed_batches; do pair embed "$b"; done
fi
if [ "$what" = file ] || [ "$what" = all ]; then
  work="$out/file"
  mkdir -p "$work"
  # An untrained TxFM-B checkpoint over the simulator's 20,000 genes: 2 steps on a small corpus.
  [ -f "$work/small.h5ad" ] || "$txfm" simulate --preset "$sim" --cells 4000 --genes "$genes" --out "$work/small.h5ad"
  printf '[filters]\nmin_cells_per_gene = 1\nmin_genes_per_cell = 1\n\n[[dataset]]\nname = "sim"\npath = "small.h5ad"\ngene_ids = "raw"\n' >"$work/corpus.toml"
  [ -d "$work/corpus" ] || "$txfm" corpus build --manifest "$work/corpus.toml" --out "$work/corpus"
  [ -d "$work/run" ] || "$txfm" train --corpus "$work/corpus" --preset "$preset" --steps 2 --device "$device" --out "$work/run"
  [ -f "$work/cells.h5ad" ] || "$txfm" simulate --preset "$sim" --genes "$genes" "${cells[@]}" --out "$work/cells.h5ad"
  start=$(date +%s.%N)
  "$txfm" embed --model "$work/run" --input "$work/cells.h5ad" --output "$work/emb.npy" --device "$device" --batch-size 512
  end=$(date +%s.%N)
  # python, not bc, for the arithmetic: GPU images often lack bc.
  "$python" -c "import json, numpy, sys; n = numpy.load('$work/emb.npy', mmap_mode='r').shape[0]; s = $end - $start; print(json.dumps({'impl': 'txfm embed', 'cells': n, 'seconds': round(s, 2), 'cells_per_s': round(n / s)}))" | tee -a "$out/file.jsonl"
fi

"$python" - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("\n| mode | impl | batch | samples/s | TFLOP/s | MFU | peak MiB |\n|---|---|---|---|---|---|---|")
for mode in ("train", "embed"):
    f = out / f"{mode}.jsonl"
    if f.exists():
        for r in map(json.loads, f.read_text().splitlines()):
            impl = r["impl"] + (" + compile" if r.get("compile") else "")
            mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "-"
            print(f"| {mode} | {impl} | {r['batch']} | {r['samples_per_s']:.1f} | {r['achieved_tflops']:.1f} | {mfu} | {r.get('peak_memory_mib') or '-'} |")
f = out / "file.jsonl"
if f.exists():
    for line in f.read_text().splitlines():
        print(line)
PY
