#!/usr/bin/env bash
# The local judge (issue 21, item 3) on the sentiment set, for docs/results/steering.md:
# trains a CAA vector on the sentiment pairs at one layer, then `steer judge` has the same model
# rate greedy generations at -2..+2 (behaviour 1-4, coherence 1-4), compare each steered answer
# with the unsteered one (order swapped) and the labelled held-out answers, and reports its
# self-agreement and its Spearman correlation with the A/B score.
#
# Usage: MODEL=smollm2 LAYER=20 OUT=judge-smollm2 scripts/judge_evidence.sh
#        MODEL=gemma3-270m LAYER=9 OUT=judge-gemma3 scripts/judge_evidence.sh
#   STEERLAB=binary (default target/release/steerlab), MULTS (default -2,-1,0,1,2),
#   PROMPTS (default 6), LABELLED (default 20), TOKENS (default 32)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${STEERLAB:-target/release/steerlab}
MODEL=${MODEL:-smollm2}
LAYER=${LAYER:-20}
OUT=${OUT:-judge-$MODEL}
MULTS=${MULTS:--2,-1,0,1,2}
mkdir -p "$OUT"
python3 scripts/make_sentiment_set.py "$OUT" >/dev/null
V="$OUT/caa_L$LAYER.safetensors"
if [[ ! -s "$V" ]]; then
  "$BIN" steer train --model "$MODEL" --data "$OUT/sentiment_train.jsonl" --method caa \
    --layers "$LAYER" --limit 64 --out "$V" --json >"$OUT/train.json"
fi
{ date -u; uptime; } >"$OUT/machine.txt"
t0=$SECONDS
"$BIN" steer judge --model "$MODEL" --vector "$V" --eval "$OUT/sentiment_heldout.jsonl" \
  --eval-limit 30 --behaviour "speaks positively and approvingly about what it describes" \
  --multipliers="$MULTS" --n-prompts "${PROMPTS:-6}" --labelled "${LABELLED:-20}" \
  --gen-tokens "${TOKENS:-32}" --out "$OUT/judge" | tee "$OUT/judge.txt"
echo "wall $((SECONDS - t0)) s" | tee -a "$OUT/judge.txt"
