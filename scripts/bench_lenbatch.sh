#!/usr/bin/env bash
# Before/after timings of batching by length (BENCHMARKS.md, "Batching by length"), phases
# interleaved so that both builds see the same machine load.
#   scripts/bench_lenbatch.sh BEFORE_BIN AFTER_BIN PAIRS.jsonl AB.jsonl [PHASES]
# BEFORE_BIN / AFTER_BIN: examples/bench_lenbatch built (dev profile) at the commit before and
# after the change (the before build has no --group-by-length option and no padding phase).
set -euo pipefail
before=$1 after=$2 pairs=$3 items=$4
phases=${5:-epoch eval caa llm minilm}
common=(--pairs "$pairs" --items "$items" --batch 8 --layer 14)
"$after" "${common[@]}" --phases padding
for ph in $phases; do
  echo "== $ph  loadavg $(cat /proc/loadavg)"
  nice -n 10 "$before" "${common[@]}" --phases "$ph" | sed 's/^/before /'
  nice -n 10 "$after" "${common[@]}" --phases "$ph" | sed 's/^/after  /'
  if [ "$ph" = epoch ]; then
    nice -n 10 "$after" "${common[@]}" --phases "$ph" --group-by-length | sed 's/^/after+group /'
  fi
done
