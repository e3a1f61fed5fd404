#!/bin/sh
# Runs every `steerlab bench` and its PyTorch / NumPyro twin in this one invocation, on the same
# inputs and the same machine, and prints the ratios (steerlab speed / twin speed; > 1 means
# steerlab is faster). Not a test. From the repository root:
#
#   sh scripts/bench_all.sh                       # CPU, default model, f32
#   STEERLAB="sh run-on-gpu.sh steerlab.gz" DEVICE=cuda DTYPE=bf16 MODEL="--random qwen2:1.5b" \
#     BATCH=8 SEQ=256 ONLY="forward bipo" sh scripts/bench_all.sh
#   ROUNDS=3 ONLY="forward bipo" sh scripts/bench_all.sh   # 3 alternating rounds, one table
#
# Each round runs every pair back to back (steerlab, then its twin), so both sides see the same
# load; the last lines are a Markdown table (CPU model and SIMD features, load before and after,
# each ratio per round and their range), ready to paste into BENCHMARKS.md.
#
# Environment (defaults in brackets):
#   STEERLAB  command that runs steerlab [$CARGO_TARGET_DIR/release/steerlab, else target/release/steerlab]
#   PYTHON    [~/.cache/steerlab/torchenv/bin/python if present, else python3]
#   DEVICE [cpu]    DTYPE [f32]    ITERS [5]
#   MODEL     steerlab/twin model flags ["" = the cached SmolLM2 GGUF; or "--random llama:smollm2"]
#   BATCH/SEQ forward batch × seq [4 × 128];  BIPO_BATCH/BIPO_SEQ pairs × seq [4 × 128]
#   LAYER     steered block for bipo [n_layers / 2]
#   GRAD_OPS  bipo gradient ops: fused, composed, fused-attention or block [block, the default]
#   ONLY      subset of "forward bipo sae dissect" [all]
#   OUT       folder for the JSON lines and data files [a temporary folder]
#   ROUNDS    alternating rounds of every selected benchmark [1]
set -eu
cd "$(dirname "$0")/.."
STEERLAB=${STEERLAB:-${CARGO_TARGET_DIR:-target}/release/steerlab}
TORCHENV_PY="$HOME/.cache/steerlab/torchenv/bin/python"
if [ -z "${PYTHON:-}" ] && [ -x "$TORCHENV_PY" ]; then PYTHON=$TORCHENV_PY; fi
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-1}
DEVICE=${DEVICE:-cpu}
DTYPE=${DTYPE:-f32}
ITERS=${ITERS:-5}
MODEL=${MODEL:-}
BATCH=${BATCH:-4}
SEQ=${SEQ:-128}
BIPO_BATCH=${BIPO_BATCH:-$BATCH}
BIPO_SEQ=${BIPO_SEQ:-$SEQ}
ONLY=${ONLY:-forward bipo sae dissect}
GRAD_OPS=${GRAD_OPS:-block}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
LAYER_FLAG=""
[ -n "${LAYER:-}" ] && LAYER_FLAG="--layer $LAYER"
# "--model P" is spelled the same on both sides; so is "--random SHAPE".
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%MZ)
echo "# $START $(uname -n) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); device $DEVICE $DTYPE; results in $OUT"
# The CPU and the SIMD features that matter to the kernels (STEERLAB_CPU_PATH, if set, forces
# steerlab's path; the path that ran is printed next to each ratio).
CPU_MODEL=$( (grep -m1 'model name' /proc/cpuinfo 2>/dev/null || sysctl -n machdep.cpu.brand_string 2>/dev/null || uname -m) | sed 's/^model name[[:space:]]*:[[:space:]]*//')
CPU_FLAGS=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | tr ' ' '\n' \
  | grep -E '^(avx|avx2|fma|avx512[a-z0-9_]*|avx_vnni|amx[a-z0-9_]*|neon|asimd[a-z0-9]*|sve[0-9]*|bf16|i8mm)$' | tr '\n' ' ')
echo "# cpu: $CPU_MODEL; features: ${CPU_FLAGS:-unknown}; STEERLAB_CPU_PATH=${STEERLAB_CPU_PATH:-<best>}"

# run NAME CMD...: runs CMD, keeps its last output line (the JSON object) in $OUT/NAME.json
# (and a copy per round in $OUT/NAME.rROUND.json)
run() {
  name=$1; shift
  echo "\$ $*" >&2
  "$@" > "$OUT/$name.log"
  tail -n 1 "$OUT/$name.log" > "$OUT/$name.json"
  cp "$OUT/$name.json" "$OUT/$name.r$round.json"
}

# ratio A B KEY HIGHER_IS_BETTER: prints KEY of A and B and speed ratio A/B
ratio() {
  "$PYTHON" - "$OUT/$1.json" "$OUT/$2.json" "$3" "$4" "$round" "$OUT/ratios.tsv" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
k, hib = sys.argv[3], sys.argv[4] == "1"
ra = a[k] / b[k] if hib else b[k] / a[k]
name_a = sys.argv[1].rsplit("/", 1)[1][:-5]
name_b = sys.argv[2].rsplit("/", 1)[1][:-5]
path = f"   [cpu path {a['cpu_path']}]" if a.get("cpu_path") else ""
print(f"{name_a:28} {k} {a[k]:12.3f}   {name_b:28} {b[k]:12.3f}   speed ratio {ra:5.2f}x{path}")
with open(sys.argv[6], "a") as f:
    f.write("\t".join([sys.argv[5], name_a, name_b, k, repr(a[k]), repr(b[k]), repr(ra), a.get("cpu_path", "")]) + "\n")
PY
}

round=1
: > "$OUT/ratios.tsv"
while [ "$round" -le "$ROUNDS" ]; do
[ "$ROUNDS" -gt 1 ] && echo "# round $round of $ROUNDS, $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
for what in $ONLY; do
  case $what in
  forward)
    run forward_steerlab $STEERLAB bench forward $MODEL --weights f32 --device "$DEVICE" --dtype "$DTYPE" --batch "$BATCH" --seq "$SEQ" --iters "$ITERS" --json
    run forward_torch_eager "$PYTHON" scripts/bench_forward_torch.py $MODEL --device "$DEVICE" --dtype "$DTYPE" --batch "$BATCH" --seq "$SEQ" --iters "$ITERS" --attn eager --json
    run forward_torch_sdpa "$PYTHON" scripts/bench_forward_torch.py $MODEL --device "$DEVICE" --dtype "$DTYPE" --batch "$BATCH" --seq "$SEQ" --iters "$ITERS" --attn sdpa --json
    ratio forward_steerlab forward_torch_eager tokens_per_s 1
    ratio forward_steerlab forward_torch_sdpa tokens_per_s 1
    ;;
  bipo)
    run bipo_steerlab $STEERLAB bench bipo $MODEL $LAYER_FLAG --weights f32 --device "$DEVICE" --dtype "$DTYPE" --batch "$BIPO_BATCH" --seq "$BIPO_SEQ" --iters "$ITERS" --grad-ops "$GRAD_OPS" --json
    run bipo_torch_authors "$PYTHON" scripts/bench_bipo_torch.py $MODEL $LAYER_FLAG --device "$DEVICE" --dtype "$DTYPE" --batch "$BIPO_BATCH" --seq "$BIPO_SEQ" --iters "$ITERS" --attn sdpa --recipe authors --json
    run bipo_torch_cached "$PYTHON" scripts/bench_bipo_torch.py $MODEL $LAYER_FLAG --device "$DEVICE" --dtype "$DTYPE" --batch "$BIPO_BATCH" --seq "$BIPO_SEQ" --iters "$ITERS" --attn sdpa --recipe cached --json
    ratio bipo_steerlab bipo_torch_authors ms_per_step 0
    ratio bipo_steerlab bipo_torch_cached ms_per_step 0
    ;;
  sae)
    run sae_steerlab $STEERLAB bench sae --n "${SAE_N:-2000}" --dim "${SAE_DIM:-384}" --latents 32 --k 4 --epochs 20 --save-data "$OUT/sae_data.safetensors" --json
    "$PYTHON" scripts/sae_torch_bench.py "$OUT/sae_data.safetensors" --latents 32 --k 4 --epochs 20 > "$OUT/sae_torch.log"
    "$PYTHON" - "$OUT/sae_torch.log" > "$OUT/sae_torch.json" <<'PY'
import json, re, sys
m = re.search(r"samples/s=([0-9.]+)", open(sys.argv[1]).read())
print(json.dumps({"bench": "sae", "side": "torch", "samples_per_s": float(m.group(1))}))
PY
    ratio sae_steerlab sae_torch samples_per_s 1
    ;;
  dissect)
    run dissect_steerlab $STEERLAB bench dissect --pairs "${PAIRS:-400}" --factors "${FACTORS:-6}" --sampler nuts --save-data "$OUT/dissect_data.json" --json
    run dissect_laplace $STEERLAB bench dissect --pairs "${PAIRS:-400}" --factors "${FACTORS:-6}" --sampler laplace --iters 5 --json
    run dissect_numpyro "$PYTHON" scripts/bench_dissect_numpyro.py "$OUT/dissect_data.json" --json
    ratio dissect_steerlab dissect_numpyro s_per_fit 0
    ratio dissect_laplace dissect_numpyro s_per_fit 0
    "$PYTHON" - "$OUT/dissect_steerlab.json" "$OUT/dissect_numpyro.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["mean"] for p in sys.argv[1:3])
print(f"dissect NUTS posterior means: max |steerlab - numpyro| = {max(abs(x - y) for x, y in zip(a, b)):.4f}")
PY
    ;;
  *) echo "unknown benchmark $what" >&2; exit 2 ;;
  esac
done
round=$((round + 1))
done

# The Markdown table: one row per pair, the ratio of every round and their range.
"$PYTHON" - "$OUT/ratios.tsv" "$START" "$(date -u +%H:%MZ)" "$(uname -n)" "$(nproc)" "$CPU_MODEL" "${CPU_FLAGS:-unknown}" \
  "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" "$DEVICE $DTYPE" "$ROUNDS" "$BATCH x $SEQ" "$BIPO_BATCH x $BIPO_SEQ" <<'PY'
import statistics, sys
tsv, start, end, host, cores, cpu, flags, load0, load1, dev, rounds, fwd_shape, bipo_shape = sys.argv[1:14]
rows = {}
for line in open(tsv):
    r, a, b, k, va, vb, ra, path = line.rstrip("\n").split("\t")
    rows.setdefault((a, b, k), []).append((int(r), float(va), float(vb), float(ra), path))
print()
print(f"{start}–{end}, {host}: **{cpu}**, {cores} cores; features `{flags.strip()}`; "
      f"load {load0} before, {load1} after; {dev}; forward {fwd_shape}, BiPO {bipo_shape} pairs; "
      f"{rounds} alternating round(s)")
print()
print("| steerlab | twin | metric | steerlab (median) | twin (median) | ratio per round | ratio range | cpu path |")
print("|---|---|---|---|---|---|---|---|")
for (a, b, k), v in rows.items():
    v.sort()
    ratios = [x[3] for x in v]
    paths = sorted({x[4] for x in v if x[4]}) or ["-"]
    print(f"| {a} | {b} | {k} | {statistics.median(x[1] for x in v):.1f} | "
          f"{statistics.median(x[2] for x in v):.1f} | {' · '.join(f'{x:.2f}×' for x in ratios)} | "
          f"**{min(ratios):.2f}–{max(ratios):.2f}×** | {', '.join(paths)} |")
PY
