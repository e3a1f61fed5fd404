#!/usr/bin/env bash
# Runs every target of examples/fuzz_readers.rs (the stable in-process fuzzer) to N executions,
# in chunks of CHUNK executions per seed (seeds FIRST_SEED, FIRST_SEED+1, ...), all targets in
# parallel at nice 19, from a copy of the binary (rebuilding meanwhile does not disturb them).
# Each target logs to LOGDIR/TARGET.log: an interim line every 50 000 executions, a final line
# per seed with its executions per second, and any crash with the saved input's path.
#
#   cargo build --release --example fuzz_readers
#   N=1000000 CHUNK=250000 FIRST_SEED=201 LOGDIR=/tmp/fuzzlogs scripts/fuzz-all.sh [TARGET...]
#   scripts/fuzz-all.sh --summary LOGDIR   # executions and crashes per target, from the logs
set -u
cd "$(dirname "$0")/.."
ALL="jsonl json csv parquet gz zst gguf_model st_model config_json tokenizer_json chat_template gguf_vector st_vector"
if [ "${1:-}" = "--summary" ]; then
    dir=${2:-/tmp/fuzzlogs}
    for t in $ALL; do
        f="$dir/$t.log"
        [ -f "$f" ] || continue
        done_execs=$(grep -E "^$t: [0-9]+ executions, corpus" "$f" | awk '{s+=$2} END {print s+0}')
        seeds=$(grep -cE "^$t: [0-9]+ executions, corpus" "$f")
        partial=$(grep -E "executions so far" "$f" | tail -1 | awk '{print $2}')
        rate=$(grep -E "^$t: [0-9]+ executions, corpus" "$f" | sed -E 's/.* ([0-9]+) exec\/s/\1/' | tr '\n' ' ')
        crashes=$(grep -c "CRASH\|HANG" "$f")
        echo "$t: $done_execs executions in $seeds finished seed(s) (latest interim count: ${partial:-0}); exec/s per seed: ${rate:-?}; crashes/hangs: $crashes"
    done
    exit 0
fi
N=${N:-1000000}
CHUNK=${CHUNK:-250000}
FIRST_SEED=${FIRST_SEED:-201}
LOGDIR=${LOGDIR:-/tmp/fuzzlogs}
TARGETS=${*:-$ALL}
mkdir -p "$LOGDIR"
BIN="$LOGDIR/fuzz_readers.bin"
cp target/release/examples/fuzz_readers "$BIN"
for t in $TARGETS; do
    (
        seed=$FIRST_SEED
        ran=0
        while [ "$ran" -lt "$N" ]; do
            n=$CHUNK
            [ $((N - ran)) -lt "$n" ] && n=$((N - ran))
            nice -n 19 "$BIN" "$n" "$seed" "$t" >>"$LOGDIR/$t.log" 2>&1 ||
                echo "$t: seed $seed exited with status $?" >>"$LOGDIR/$t.log"
            ran=$((ran + n))
            seed=$((seed + 1))
        done
        echo "$t: DONE $ran executions" >>"$LOGDIR/$t.log"
    ) &
done
wait
