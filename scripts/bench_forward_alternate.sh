#!/bin/bash
# CPU forward throughput, steerlab against transformers sdpa, run alternately ROUNDS times so both
# sides see the same machine weather (this VM drifts ±15% between back-to-back runs). Each extra
# argument is an environment setting for one more steerlab variant (e.g. STEERLAB_CPU_FUSED=0);
# "X=1" is the default build. Not a test. From the repository root:
#
#   STEERLAB=<release binary> ROUNDS=3 bash scripts/bench_forward_alternate.sh X=1 STEERLAB_CPU_FUSED=0
#   ... bash scripts/bench_forward_alternate.sh STEERLAB_CPU_PATH=avx512 STEERLAB_CPU_PATH=avx2
#
# Env: STEERLAB (binary, default: cargo run --release), PYTHON [python3], ROUNDS [3], ITERS [5],
# BATCH [4], SEQ [128].
set -e
cd "$(dirname "$0")/.."
S=${STEERLAB:-"cargo run -q --release --bin steerlab --"}
R=${ROUNDS:-3}; IT=${ITERS:-5}; B=${BATCH:-4}; T=${SEQ:-128}; PY=${PYTHON:-python3}
[ $# -gt 0 ] || set -- X=1
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg), batch $B x $T, $IT iterations per run"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
for _ in $(seq "$R"); do
  for cfg in "$@"; do
    v=$(env $cfg $S bench forward --weights f32 --batch "$B" --seq "$T" --iters "$IT" 2>&1 | grep -o "[0-9]* tokens/s" | cut -d' ' -f1)
    echo "steerlab $cfg|$v"
  done
  v=$($PY scripts/bench_forward_torch.py --attn sdpa --batch "$B" --seq "$T" --iters "$IT" 2>/dev/null | grep -o "[0-9]* tokens/s" | cut -d' ' -f1)
  echo "transformers sdpa|$v"
  echo "# load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done | $PY -c "
import sys
rows = {}
for line in sys.stdin:
    k, v = line.rstrip().rsplit('|', 1)
    rows.setdefault(k, []).append(int(v))
for k, v in rows.items():
    s = sorted(v)
    print(f'{k:40s} tokens/s {v}  median {s[len(s) // 2]}')
"
