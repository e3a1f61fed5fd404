#!/usr/bin/env bash
# Usage: scripts/stop_latency.sh T1 [T2 ...]   (seconds after start at which SIGINT is sent; logs in /tmp/stop-T.log)
# Stop latency of the default BiPO run: SIGINT at T seconds, time until the process exits.
bin=${BIN:-target/release/steerlab}
for t in "$@"; do
  out=/tmp/stop-v-$t.safetensors; rm -f $out
  $bin steer train --data ~/.cache/steerlab/data/honesty_pairs.jsonl --method bipo --out $out > /tmp/stop-$t.log 2>&1 &
  pid=$!
  sleep $t
  s=$(date +%s.%N); kill -INT $pid; wait $pid; rc=$?; e=$(date +%s.%N)
  echo "SIGINT at ${t}s: exited rc=$rc after $(echo "$e - $s" | bc) s; load $(cut -d' ' -f1 /proc/loadavg); saved: $(ls $out 2>/dev/null)"
  tail -2 /tmp/stop-$t.log
done
