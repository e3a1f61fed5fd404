#!/usr/bin/env bash
# GUI responsiveness benchmark: open the app under Xvfb (1280x800) while background jobs run,
# draw continuously, and write per-frame CPU-time percentiles (eframe's cpu_usage: UI + paint,
# llvmpipe) for all frames and for the frames drawn while a job ran. The app closes itself
# once no job runs (screenshot mode). Needs what scripts/screenshot.sh needs.
#
#   scripts/frame-bench.sh [OUT.json] [load|bipo|sae]
#     load (default): load the default model and open a 3000-row synthetic dataset (Data panel).
#     bipo: load the default model and train BiPO on 16 tiny pairs (2 epochs, batch 4, layer
#           14) in the Steer panel: frames are measured while training steps run.
#     sae:  embed 400 synthetic pairs with MiniLM and train the SAE in the Features panel
#           (STEERLAB_FEATURES_TRAIN=minilm): frames are measured while it embeds and trains.
# Output: JSON to OUT (default frame-stats.json), printed at the end with the load average
# before and after (other processes share the cores: report it with the numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-frame-stats.json}"
job="${2:-load}"
command -v xvfb-run >/dev/null || { echo "frame-bench.sh: xvfb-run not found" >&2; exit 1; }
cargo build --release --bin steerlab
bin="${CARGO_TARGET_DIR:-target}/release/steerlab"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
case "$job" in
  load)
    data="${STEERLAB_DATA:-$tmp/synth.jsonl}"
    [ -e "$data" ] || "$bin" data synth --out "$data" --n 3000 --seed 1 >/dev/null
    STEERLAB_FRAME_STATS="$out" STEERLAB_SCREENSHOT="$tmp/last.png" \
      STEERLAB_PANEL="${STEERLAB_PANEL:-data}" STEERLAB_DATA="$data" \
      xvfb-run -a -s "-screen 0 1280x800x24" "$bin" gui
    ;;
  bipo)
    data="$tmp/pairs.jsonl"
    for i in $(seq 0 15); do
      printf '{"id":"p%d","prompt":"Tell me about item %d.","chosen":"I love item %d, it is wonderful and bright.","rejected":"Item %d is awful and I hate it."}\n' \
        "$i" "$i" "$i" "$i"
    done >"$data"
    STEERLAB_FRAME_STATS="$out" STEERLAB_SCREENSHOT="$tmp/last.png" \
      STEERLAB_SCREENSHOT_TIMEOUT="${STEERLAB_SCREENSHOT_TIMEOUT:-900}" \
      STEERLAB_PANEL=steer STEERLAB_DATA="$data" STEERLAB_STEER_METHOD=bipo \
      STEERLAB_STEER_LAYERS=14 STEERLAB_STEER_EPOCHS=2 \
      xvfb-run -a -s "-screen 0 1280x800x24" "$bin" gui
    ;;
  sae)
    data="$tmp/synth.jsonl"
    "$bin" data synth --out "$data" --n 400 --seed 1 >/dev/null
    STEERLAB_FRAME_STATS="$out" STEERLAB_SCREENSHOT="$tmp/last.png" \
      STEERLAB_SCREENSHOT_TIMEOUT="${STEERLAB_SCREENSHOT_TIMEOUT:-900}" \
      STEERLAB_PANEL=features STEERLAB_DATA="$data" STEERLAB_FEATURES_TRAIN=minilm \
      xvfb-run -a -s "-screen 0 1280x800x24" "$bin" gui
    ;;
  *)
    echo "frame-bench.sh: unknown job '$job' (load, bipo or sae)" >&2
    exit 2
    ;;
esac
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cat "$out"
