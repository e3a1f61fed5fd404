#!/usr/bin/env bash
# GUI responsiveness benchmark: open the app under Xvfb (1280x800) while background jobs run
# (load the default model, open a dataset), draw continuously, and write per-frame CPU-time
# percentiles (eframe's cpu_usage: UI + paint, llvmpipe) for all frames and for the frames drawn
# while a job ran. Output: JSON to $1 (default frame-stats.json). Needs what scripts/screenshot.sh
# needs.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-frame-stats.json}"
command -v xvfb-run >/dev/null || { echo "frame-bench.sh: xvfb-run not found" >&2; exit 1; }
cargo build --bin steerlab
bin="${CARGO_TARGET_DIR:-target}/debug/steerlab"
tmp="$(mktemp -d)"
data="${STEERLAB_DATA:-$tmp/synth.jsonl}"
[ -e "$data" ] || "$bin" data synth --out "$data" --n 3000 --seed 1 >/dev/null
STEERLAB_FRAME_STATS="$out" STEERLAB_SCREENSHOT="$tmp/last.png" STEERLAB_PANEL="${STEERLAB_PANEL:-data}" \
  STEERLAB_DATA="$data" xvfb-run -a -s "-screen 0 1280x800x24" "$bin" gui
cat "$out"
