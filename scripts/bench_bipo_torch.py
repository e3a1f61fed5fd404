#!/usr/bin/env python3
"""PyTorch twin of `steerlab bench bipo`: one BiPO step as the BiPO authors' recipe runs it, on the
same shapes and token ids. Not a test.

The authors' recipe (Cao et al. 2024, their DPO trainer with a hooked block): TWO model copies,
the policy with the steering vector added (x d) to the output of block L at every position and a
frozen reference; every step runs the reference forward under no_grad and the policy forward on
chosen + rejected together, sums response-token log-probs from full-vocabulary logits, takes the
DPO loss -log sigmoid(d * beta * (pi_logratio - ref_logratio)), and back-propagates into the vector
only (every weight frozen); AdamW on the vector.

--recipe cached computes the reference log-probs once before timing (what steerlab does) but
still runs the whole policy model each step.

    python3 scripts/bench_bipo_torch.py [--model PATH | --random llama:smollm2] [--batch 4]
        [--seq 128] [--layer L] [--iters 5] [--device cpu|cuda] [--dtype f32|bf16]
        [--attn eager|sdpa] [--recipe authors|cached] [--json]
--batch counts preference pairs (2 x batch sequences per forward), as in steerlab.
"""
import argparse
import copy
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, __import__("os").path.dirname(__file__))
from bench_common import bench_pairs, default_model, gpu_peak_mb, load_model, peak_rss_mb  # noqa: E402


def response_logps(logits, labels, resp_mask):
    """Sum of log p(label) over response positions, from logits [B, T, V] (f32 log-softmax)."""
    logp = logits[:, :-1].float().log_softmax(-1)
    tok = logp.gather(-1, labels[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (tok * resp_mask[:, 1:]).sum(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=default_model())
    ap.add_argument("--random", default=None)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--layer", type=int, default=None, help="steered block (default n_layers // 2)")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--recipe", default="authors", choices=["authors", "cached"])
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    dev = a.device
    policy = load_model(a.model, a.random, dev, a.dtype, a.attn)
    for p in policy.parameters():
        p.requires_grad_(False)
    reference = copy.deepcopy(policy)  # the second copy of the authors' recipe
    cfg = policy.config
    layer = cfg.num_hidden_layers // 2 if a.layer is None else a.layer
    v = torch.zeros(cfg.hidden_size, dtype=next(policy.parameters()).dtype, device=dev, requires_grad=True)
    state = {"d": 1.0}

    def hook(_mod, _inp, out):
        if isinstance(out, tuple):
            return (out[0] + state["d"] * v,) + tuple(out[1:])
        return out + state["d"] * v

    policy.model.layers[layer].register_forward_hook(hook)
    opt = torch.optim.AdamW([v], lr=0.02, weight_decay=0.05)

    pairs = bench_pairs(a.batch, a.seq, cfg.vocab_size)
    seqs = [p + c for p, c, _ in pairs] + [p + r for p, _, r in pairs]  # chosen..., rejected...
    ids = torch.tensor(seqs, device=dev)
    plen = len(pairs[0][0])
    resp = torch.zeros_like(ids, dtype=torch.float32)
    resp[:, plen:] = 1.0
    n = a.batch
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)

    def ref_logps():
        with torch.no_grad():
            return response_logps(reference(input_ids=ids, use_cache=False).logits, ids, resp)

    cached = ref_logps() if a.recipe == "cached" else None
    fw, bw, all_ = [], [], []
    for it in range(a.iters + 1):
        state["d"] = 1.0 if it % 2 == 0 else -1.0
        t = time.perf_counter()
        ref = cached if cached is not None else ref_logps()
        pol = response_logps(policy(input_ids=ids, use_cache=False).logits, ids, resp)
        pi_ratio = pol[:n] - pol[n:]
        ref_ratio = ref[:n] - ref[n:]
        loss = -F.logsigmoid(state["d"] * a.beta * (pi_ratio - ref_ratio)).mean()
        lv = float(loss.detach())  # synchronises
        tf = time.perf_counter() - t
        opt.zero_grad()
        loss.backward()
        sync()
        tb = time.perf_counter() - t
        opt.step()
        sync()
        ta = time.perf_counter() - t
        assert v.grad is not None and torch.isfinite(torch.tensor(lv))
        if it > 0:
            fw.append(tf * 1e3)
            bw.append((tb - tf) * 1e3)
            all_.append(ta * 1e3)
    r = {
        "bench": "bipo", "side": f"torch-{a.attn}-{a.recipe}", "device": dev, "dtype": a.dtype,
        "batch": a.batch, "seq": a.seq, "layer": layer, "iters": a.iters,
        "forward_ms": statistics.median(fw), "backward_ms": statistics.median(bw),
        "ms_per_step": statistics.median(all_), "peak_rss_mb": peak_rss_mb(),
        "gpu_mem_mb": gpu_peak_mb(dev), "threads": torch.get_num_threads(),
    }
    if a.json:
        print(json.dumps(r))
    else:
        print(
            f"torch bipo ({a.recipe}, {a.attn}) {dev} {a.dtype} {a.batch} pairs x {a.seq}, layer {layer}: "
            f"{r['ms_per_step']:.1f} ms/step (forward {r['forward_ms']:.1f}, backward {r['backward_ms']:.1f}), "
            f"peak RSS {r['peak_rss_mb']:.0f} MiB"
            + (f", GPU peak {r['gpu_mem_mb']:.0f} MiB" if r["gpu_mem_mb"] else "")
        )


if __name__ == "__main__":
    main()
