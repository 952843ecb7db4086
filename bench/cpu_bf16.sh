#!/usr/bin/env bash
# CPU bfloat16 autocast against float32, txfm and PyTorch side by side (BENCHMARKS.md, "bfloat16
# on CPU"). Each line is one JSON result. Run on an idle machine after building the release binary:
#   source scripts/env.sh && cargo build --release -p txfm-cli && bash bench/cpu_bf16.sh > cpu_bf16.jsonl
# txfm's CPU autocast is TXFM_CPU_AUTOCAST (off by default); here it is set on and off so the
# same command measures both. PyTorch: torch_reference.py --cpu-autocast. Threads: 2 (the
# project's CI size). bfloat16 is fast only where the CPU has AMX.
set -euo pipefail
cd "$(dirname "$0")/.."
TXFM=${TXFM:-./target/release/txfm}
PY=${TXFM_PYTHON:-python3}
THREADS=${THREADS:-2}
S="--d-model 384 --blocks 6 --heads 6 --k 512 --genes 2000 --decoder-layers 1"
B="--d-model 768 --blocks 12 --heads 12 --k 512 --genes 2000 --decoder-layers 1"
T="--d-model 64 --blocks 2 --heads 4 --k 128 --genes 2000 --decoder-layers 1"
run() { # name, mode (train|embed), shape, batch, steps, warmup
    local name=$1 mode=$2 shape=$3 batch=$4 steps=$5 warmup=$6 embed=""
    [ "$mode" = embed ] && embed="--embed"
    for p in off on; do
        TXFM_CPU_AUTOCAST=$p "$TXFM" bench "$mode" $shape --batch "$batch" --steps "$steps" --warmup "$warmup" \
            --threads "$THREADS" --json | sed "s/^{/{\"case\":\"$name\",\"cpu_autocast\":\"$p\",/"
        local flag=""
        [ $p = on ] && flag="--cpu-autocast"
        "$PY" bench/torch_reference.py $shape $embed $flag --batch "$batch" --steps "$steps" --warmup "$warmup" \
            --threads "$THREADS" --json | sed "s/^{/{\"case\":\"$name\",\"cpu_autocast\":\"$p\",/"
    done
}
run tiny_train train "$T" 64 10 3
run s_train train "$S" 32 4 1
run s_embed embed "$S" 32 8 2
run b_embed embed "$B" 16 4 1
