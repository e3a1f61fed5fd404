#!/usr/bin/env bash
# Before/after cost of batching by length (BENCHMARKS.md, "Batching by length"), phases
# interleaved so that both builds see the same machine load. Each phase runs in its own
# process; besides the wall time the example prints, /usr/bin/time adds the process's CPU
# seconds (user + sys, model load included), steadier than wall time on a shared machine.
#   scripts/bench_lenbatch.sh BEFORE_BIN AFTER_BIN PAIRS.jsonl AB.jsonl [PHASES]
# BEFORE_BIN / AFTER_BIN: examples/bench_lenbatch built (dev profile) at the commit before and
# after the change (the before build has no --group-by-length option and no padding phase).
set -euo pipefail
before=$1 after=$2 pairs=$3 items=$4
phases=${5:-cache epoch eval caa llm minilm}
common=(--pairs "$pairs" --items "$items" --batch 8 --layer 14)
run() {
  local tag=$1
  shift
  /usr/bin/time -f "$tag cpu_s %U user %S sys %e wall" nice -n 10 "$@" 2>&1 | sed "s/^{/$tag {/"
}
run load "$after" "${common[@]}" --phases padding
for ph in $phases; do
  echo "== $ph  loadavg $(cat /proc/loadavg)"
  run before "$before" "${common[@]}" --phases "$ph"
  run after "$after" "${common[@]}" --phases "$ph"
  if [ "$ph" = epoch ]; then
    run after+group "$after" "${common[@]}" --phases "$ph" --group-by-length
  fi
done
