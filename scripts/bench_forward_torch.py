#!/usr/bin/env python3
"""PyTorch (transformers) forward throughput on the same weights (or the same random-init
shape) and token ids as `steerlab bench forward`, for BENCHMARKS.md. Not a test.

    pip install torch transformers gguf accelerate
    python3 scripts/bench_forward_torch.py [--model PATH | --random llama:smollm2] [--batch 4]
        [--seq 128] [--iters 5] [--attn eager|sdpa] [--device cpu|cuda] [--dtype f32|bf16] [--json]

--model is an HF folder or a .gguf file (default: the cached SmolLM2-135M-Instruct);
transformers dequantizes GGUF to f32 (gguf_file=).
"""
import argparse
import json
import statistics
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from bench_common import bench_ids, default_model, gpu_peak_mb, load_model, peak_rss_mb  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=default_model())
    ap.add_argument("--random", default=None, help="random-init shape, e.g. llama:smollm2, qwen2:1.5b")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--attn", default="eager", help="eager or sdpa")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="f32", help="f32, bf16 or f16")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    model = load_model(a.model, a.random, a.device, a.dtype, a.attn)
    if not a.json:
        print(f"loaded in {time.perf_counter() - t0:.2f} s; torch {torch.__version__}, {torch.get_num_threads()} threads")
    ids = bench_ids(a.batch, a.seq, model.config.vocab_size).to(a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)  # warm-up
        sync()
        times = []
        for _ in range(a.iters):
            t = time.perf_counter()
            model(input_ids=ids, use_cache=False)
            sync()
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    r = {
        "bench": "forward", "side": f"torch-{a.attn}", "device": a.device, "dtype": a.dtype,
        "batch": a.batch, "seq": a.seq, "iters": a.iters, "ms_per_iter": med * 1e3,
        "tokens_per_s": a.batch * a.seq / med, "peak_rss_mb": peak_rss_mb(),
        "gpu_mem_mb": gpu_peak_mb(a.device), "threads": torch.get_num_threads(),
    }
    if a.json:
        print(json.dumps(r))
    else:
        print(f"torch {a.device} {a.dtype} {a.attn:6} batch {a.batch} x {a.seq}: median {med:.3f} s  {r['tokens_per_s']:.0f} tokens/s")


if __name__ == "__main__":
    main()
