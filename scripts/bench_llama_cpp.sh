#!/usr/bin/env bash
# Quantized CPU speed side by side: llama.cpp's `llama-bench` and `steerlab bench forward
# --weights quantized` on the same GGUF files, 2 threads, prompt processing of 128 tokens (one
# sequence; logits at the last position only, as llama-bench computes them: `--last-logits`)
# and generation of 64 tokens (steerlab: one-token forwards with logits, which is what a
# KV-cache generation step costs per token without the cache bookkeeping). Runs alternate
# (llama.cpp, steerlab, llama.cpp, steerlab) so background load hits both. Ends with a
# ready-to-paste Markdown table (mean of the rounds) framed by the load average before and after.
# llama-bench is built once into the cache by scripts/llama_cpp_build.sh (reused when present).
# Usage: scripts/bench_llama_cpp.sh [MODEL.gguf ...]  (default: SmolLM2 Q4_1 and Gemma 3 270M
# Q4_K_M if cached). ROUNDS (default 2) sets the number of alternations.
set -euo pipefail
cd "$(dirname "$0")/.."
home="${STEERLAB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/steerlab}"
scripts/llama_cpp_build.sh >/dev/null
lb="$home/llama.cpp/build/bin/llama-bench"
sl=target/release/steerlab
cargo build --release --quiet
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  for m in "$home/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$home/models/gemma-3-270m-q4_k_m.gguf"; do
    [ -f "$m" ] && models+=("$m")
  done
fi
rounds="${ROUNDS:-2}"
# A native build on a CPU with AMX crashes in ggml's AMX matmul (SIGSEGV in
# ggml_backend_amx_mul_mat, seen on a 2-vCPU Xeon VM); its weight repacking (which picks the AMX
# buffers) is then turned off with `--repack 0`, and the table says so.
lb_flags=()
if ! "$lb" -m "${models[0]}" -t 2 -p 8 -n 0 -r 1 >/dev/null 2>&1; then
  lb_flags=(--repack 0)
  echo "llama-bench failed with weight repacking; running it with --repack 0"
fi
export RAYON_NUM_THREADS=2
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
start="$(date -u '+%Y-%m-%d %H:%M')"
echo "machine: $cpu, load $load_before"
rows=()
for m in "${models[@]}"; do
  name="$(basename "$m")"
  echo "== $name"
  lpp=() ltg=() spp=() stg=()
  for round in $(seq "$rounds"); do
    j="$("$lb" -m "$m" -t 2 -p 128 -n 64 -r 3 "${lb_flags[@]}" -o json 2>/dev/null || echo '[]')"
    lpp+=("$(jq -r '.[] | select(.n_prompt == 128 and .n_gen == 0) | .avg_ts' <<<"$j")")
    ltg+=("$(jq -r '.[] | select(.n_prompt == 0 and .n_gen == 64) | .avg_ts' <<<"$j")")
    p="$("$sl" bench forward --model "$m" --weights quantized --last-logits --batch 1 --seq 128 --iters 3 --json 2>/dev/null | tail -1 | jq -r .tokens_per_s || true)"
    t="$("$sl" bench forward --model "$m" --weights quantized --batch 1 --seq 1 --iters 64 --json 2>/dev/null | tail -1 | jq -r .tokens_per_s || true)"
    spp+=("$p") stg+=("$t")
    echo "round $round: llama.cpp pp128 ${lpp[-1]} tg64 ${ltg[-1]} | steerlab pp128 $p tg(1-token forward) $t tokens/s"
  done
  mean() { printf '%s\n' "$@" | awk '$1+0 > 0 { s += $1; n++ } END { if (n) printf "%.1f", s / n; else printf "n/a" }'; }
  each() { printf '%s\n' "$@" | awk '{ printf "%s%.1f", (NR > 1 ? ", " : ""), $1 }'; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f×", a / b; else printf "n/a" }'; }
  for test in pp128 tg64; do
    if [ "$test" = pp128 ]; then l=("${lpp[@]}") s=("${spp[@]}"); else l=("${ltg[@]}") s=("${stg[@]}"); fi
    lm="$(mean "${l[@]}")" sm="$(mean "${s[@]}")"
    rows+=("| $name | $test | $lm ($(each "${l[@]}")) | $sm ($(each "${s[@]}")) | $(ratio "$sm" "$lm") |")
  done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Run $start–$(date -u '+%H:%M') UTC, $cpu, 2 threads each, load average before $load_before, after $load_after; \`scripts/bench_llama_cpp.sh\` (rounds: $rounds, alternating; tokens/s, mean (each round))${lb_flags[*]:+; llama-bench with ${lb_flags[*]}}."
echo
echo "| model | test | llama.cpp tokens/s | steerlab quantized tokens/s | steerlab / llama.cpp |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
