#!/usr/bin/env bash
# Render each panel of the desktop app under a virtual X server and save PNGs to
# docs/screenshots/<panel>.png (or $OUT_DIR). The app loads the default model (if fetched) and,
# for the Data panel, a dataset: $STEERLAB_DATA if set, else a planted synthetic set written by
# `steerlab data synth`; the Generate panel answers $STEERLAB_PROMPT (default: the capital of
# France, greedy, chat template). Needs: apt-get install -y xvfb xauth libx11-6 libx11-xcb1 libxcursor1
# libxi6 libxkbcommon-x11-0 libgl1 libgl1-mesa-dri
#   scripts/screenshot.sh                 # all panels
#   scripts/screenshot.sh model data      # some panels
#   SIZE=1280x1100 scripts/screenshot.sh steer-landscape   # the Steer panel's layer sweep + Pareto front
#   SIZE=1920x1080 OUT_DIR=/tmp/big scripts/screenshot.sh   # another window size (default 1280x800)
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${OUT_DIR:-docs/screenshots}"
size="${SIZE:-1280x800}"
mkdir -p "$out_dir"
command -v xvfb-run >/dev/null || { echo "screenshot.sh: xvfb-run not found (apt-get install -y xvfb xauth)" >&2; exit 1; }

cargo build --release --bin steerlab
bin="${CARGO_TARGET_DIR:-target}/release/steerlab"

panels=("$@")
[ ${#panels[@]} -gt 0 ] || panels=(model generate data steer features dissect)

data="${STEERLAB_DATA:-}"
if [ -z "$data" ]; then
  data="$(mktemp -d)/synth.jsonl"
  "$bin" data synth --out "$data" --n 300 --seed 1 >/dev/null
fi

for p in "${panels[@]}"; do
  png="$out_dir/$p.png"
  rm -f "$png"
  echo "screenshot.sh: $p -> $png" >&2
  prompt=""
  [ "$p" = generate ] && prompt="${STEERLAB_PROMPT:-What is the capital of France?}"
  pdata="$data"
  if [ "$p" = dissect ] && [ -z "${STEERLAB_DATA:-}" ]; then
    # Two judges (gpt-4, human) with planted factor weights: grouped by judge, Laplace live.
    pdata="$(mktemp -d)/synth1200.jsonl"
    "$bin" data synth --out "$pdata" --n 1200 --seed 1 >/dev/null
  fi
  steer_env=()
  if [ "$p" = steer ]; then
    # A sentiment pair set and held-out A/B items; BiPO trains, sweeps and scores ×2 before the grab.
    demo="$(mktemp -d)"
    python3 scripts/steer_demo_data.py "$demo"
    pdata="$demo/sentiment_pairs.jsonl"
    steer_env=(STEERLAB_STEER_EVAL="$demo/sentiment_ab.jsonl" STEERLAB_STEER_METHOD=bipo
      STEERLAB_STEER_EPOCHS=2 STEERLAB_STEER_LR=0.1 STEERLAB_STEER_STRENGTH=2
      STEERLAB_SCREENSHOT_TIMEOUT="${STEERLAB_SCREENSHOT_TIMEOUT:-900}")
  fi
  panel="$p"
  if [ "$p" = steer-landscape ]; then
    # The layer × strength section: CAA trains, then a sweep of 6 layers × 5 strengths fills the
    # heatmap and the Pareto front (scroll position: the panel's bottom, so a taller window).
    demo="$(mktemp -d)"
    python3 scripts/steer_demo_data.py "$demo"
    pdata="$demo/sentiment_pairs.jsonl"
    panel=steer
    steer_env=(STEERLAB_STEER_EVAL="$demo/sentiment_ab.jsonl" STEERLAB_STEER_METHOD=caa
      STEERLAB_STEER_LAYERS=20 STEERLAB_STEER_STRENGTH=1
      STEERLAB_STEER_LANDSCAPE="${LANDSCAPE:-4,8,12,16,20,24;-2,-1,0,1,2}"
      STEERLAB_SCREENSHOT_TIMEOUT="${STEERLAB_SCREENSHOT_TIMEOUT:-1800}")
  fi
  env "${steer_env[@]}" STEERLAB_SCREENSHOT="$png" STEERLAB_PANEL="$panel" STEERLAB_DATA="$pdata" STEERLAB_PROMPT="$prompt" \
    STEERLAB_WINDOW="$size" xvfb-run -a -s "-screen 0 ${size}x24" "$bin" gui
  [ -s "$png" ] || { echo "screenshot.sh: no PNG written for $p" >&2; exit 1; }
done
