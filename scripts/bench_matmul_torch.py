#!/usr/bin/env python3
"""PyTorch twin of `steerlab bench matmul`: times `x @ w.T` (what an nn.Linear does) in f32 on the
CPU for the linear-layer shapes of one SmolLM2-135M forward, and prints GFLOP/s per shape. Not a test.

    python3 scripts/bench_matmul_torch.py [--m 512] [--iters 20] [--threads 2] [--json]

Shapes (K, N): q/o (576, 576), k/v (576, 192), gate/up (576, 1536), down (1536, 576), LM head (576, 49152).
"""
import argparse
import json
import statistics
import time

import torch

SHAPES = [(576, 576), (576, 192), (576, 1536), (1536, 576), (576, 49152)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=512)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    rows = []
    with torch.no_grad():
        for k, n in SHAPES:
            x = torch.randn(a.m, k, generator=g)
            w = torch.randn(n, k, generator=g)
            torch.matmul(x, w.t())  # warm-up
            times = []
            for _ in range(a.iters):
                t = time.perf_counter()
                torch.matmul(x, w.t())
                times.append(time.perf_counter() - t)
            med = statistics.median(times)
            rows.append({"m": a.m, "k": k, "n": n, "ms": med * 1e3, "gflops": 2 * a.m * k * n / med / 1e9})
    if a.json:
        print(json.dumps({"side": "torch", "threads": torch.get_num_threads(), "rows": rows}))
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        for r in rows:
            print(f"  m {r['m']:4} k {r['k']:5} n {r['n']:6}: {r['ms']:8.3f} ms  {r['gflops']:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
