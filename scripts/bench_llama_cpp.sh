#!/usr/bin/env bash
# Quantized CPU speed side by side: llama.cpp's `llama-bench` and `steerlab bench forward
# --weights quantized` on the same GGUF files, 2 threads, prompt processing of 128 tokens
# (one sequence; steerlab uses all cores: run on a 2-core machine or set RAYON_NUM_THREADS) and generation of 64 tokens (steerlab: one-token forwards, which is what a
# KV-cache generation step costs per token without the cache bookkeeping). Runs alternate
# (llama.cpp, steerlab, llama.cpp, steerlab) so background load hits both.
# Usage: scripts/bench_llama_cpp.sh [MODEL.gguf ...]  (default: SmolLM2 Q4_1 and Gemma 3 270M
# Q4_K_M if cached; steerlab runs Gemma only where the gemma3 architecture is supported).
set -euo pipefail
cd "$(dirname "$0")/.."
home="${STEERLAB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/steerlab}"
scripts/llama_cpp_build.sh >/dev/null
lb="$home/llama.cpp/build/bin/llama-bench"
cargo build --release --quiet
sl=target/release/steerlab
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  for m in "$home/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$home/models/gemma-3-270m-q4_k_m.gguf"; do
    [ -f "$m" ] && models+=("$m")
  done
fi
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${models[@]}"; do
  echo "== $(basename "$m")"
  for round in 1 2; do
    echo "-- round $round"
    "$lb" -m "$m" -t 2 -p 128 -n 64 -r 3 -o md 2>/dev/null | grep -E "pp128|tg64" || echo "llama-bench failed"
    "$sl" bench forward --model "$m" --weights quantized --batch 1 --seq 128 --iters 3 \
      2>&1 | tail -1 | sed 's/^/steerlab pp128: /' || true
    "$sl" bench forward --model "$m" --weights quantized --batch 1 --seq 1 --iters 64 \
      2>&1 | tail -1 | sed 's/^/steerlab tg (1-token forward): /' || true
  done
done
