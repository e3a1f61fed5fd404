#!/bin/sh
# CPU f32: the packed GEMM against candle's matmul and torch, per linear-layer shape and for the
# whole forward of the default model, all in one invocation (issue 7; BENCHMARKS.md "CPU forward:
# packed GEMM"). Env: STEERLAB (binary, default: cargo run --bin steerlab --), ITERS (default 5),
# BATCH (4), SEQ (128).
set -e
cd "$(dirname "$0")/.."
S=${STEERLAB:-"cargo run -q --bin steerlab --"}
ITERS=${ITERS:-5}
BATCH=${BATCH:-4}
SEQ=${SEQ:-128}
echo "date $(date -u +%FT%TZ)  load $(cut -d' ' -f1-3 /proc/loadavg)"
$S bench matmul --m $((BATCH * SEQ)) --iters 10
python3 scripts/bench_matmul_torch.py --m $((BATCH * SEQ)) --iters 10
$S bench matmul --m 1 --iters 100
python3 scripts/bench_matmul_torch.py --m 1 --iters 100
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
$S bench forward --weights f32 --batch "$BATCH" --seq "$SEQ" --iters "$ITERS"
STEERLAB_CPU_GEMM=0 $S bench forward --weights f32 --batch "$BATCH" --seq "$SEQ" --iters "$ITERS" | sed 's/^/[candle matmul] /'
python3 scripts/bench_forward_torch.py --attn sdpa --batch "$BATCH" --seq "$SEQ" --iters "$ITERS" 2>/dev/null
python3 scripts/bench_forward_torch.py --attn eager --batch "$BATCH" --seq "$SEQ" --iters "$ITERS" 2>/dev/null
$S bench forward --weights f32 --batch "$BATCH" --seq "$SEQ" --iters "$ITERS"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
