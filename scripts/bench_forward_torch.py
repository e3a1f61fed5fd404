#!/usr/bin/env python3
"""PyTorch (transformers, eager attention) forward throughput on the same weights and token ids
as `examples/bench_forward.rs`, for the comparison in BENCHMARKS.md. Not a test.

    pip install torch transformers gguf accelerate
    python3 scripts/bench_forward_torch.py [--model PATH] [--batch 4] [--seq 128] [--iters 5]

--model is an HF folder or a .gguf file (default: the embedded SmolLM2-135M-Instruct in the
steerlab cache); transformers dequantizes GGUF to f32 (gguf_file=).
"""
import argparse
import os
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def default_model():
    home = os.environ.get("STEERLAB_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "steerlab"
    )
    return os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def bench_ids(batch, seq, vocab):
    # Same pattern as bench_ids() in examples/bench_forward.rs.
    return torch.tensor([[(b * 131 + t * 7919 + 13) % vocab for t in range(seq)] for b in range(batch)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=default_model())
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--attn", default="eager", help="eager or sdpa")
    a = ap.parse_args()
    t0 = time.perf_counter()
    if a.model.endswith(".gguf"):
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(a.model), gguf_file=os.path.basename(a.model), dtype=torch.float32,
            attn_implementation=a.attn,
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation=a.attn)
    model.eval()
    print(f"loaded in {time.perf_counter() - t0:.2f} s; torch {torch.__version__}, {torch.get_num_threads()} threads")
    ids = bench_ids(a.batch, a.seq, model.config.vocab_size)
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)  # warm-up
        times = []
        for _ in range(a.iters):
            t = time.perf_counter()
            model(input_ids=ids, use_cache=False)
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"torch {a.attn:6} batch {a.batch} x {a.seq}: median {med:.3f} s  {a.batch * a.seq / med:.0f} tokens/s")


if __name__ == "__main__":
    main()
