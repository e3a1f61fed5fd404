#!/usr/bin/env python3
"""PyTorch peer of steerlab's SAE trainer, for the training-throughput benchmark.

The same model and recipe as src/sae/model.rs (BatchTopK on |a| with signed activations,
Matryoshka prefix losses, normalised MSE, AuxK for latents dead >= 64 steps, unit-norm decoder
rows with the radial gradient removed, median decoder-bias init, Adam, grad-norm clip 1), trained
on the same embeddings: the cache file steerlab wrote (tensors `a`, `b` = e(A), e(B)).
Trains on Δ and −Δ for a fixed number of epochs (no early stopping) and prints samples/s.

Usage: python3 scripts/sae_torch_bench.py CACHE.safetensors [--latents 32 --k 4 --epochs 20]
(the cache path is printed by `steerlab sae run` in its log; see docs/results/features.md)
"""
import argparse
import time

import torch
from safetensors.torch import load_file


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--latents", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t = load_file(args.cache)
    delta = t["a"] - t["b"]
    x = torch.cat([delta, -delta]).float()
    n, d = x.shape
    m, k = args.latents, args.k
    prefixes = [8, m] if m > 8 else [m]
    g = torch.Generator().manual_seed(0)
    w_dec = torch.empty(m, d).uniform_(-(6 / (d + m)) ** 0.5, (6 / (d + m)) ** 0.5, generator=g)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    w_dec.requires_grad_(True)
    w_enc = w_dec.detach().t().clone().requires_grad_(True)
    b_enc = torch.zeros(m, requires_grad=True)
    b_dec = x.median(dim=0).values.clone().requires_grad_(True)
    params = [w_enc, b_enc, w_dec, b_dec]
    opt = torch.optim.Adam(params, lr=5e-4)
    since = torch.zeros(m, dtype=torch.long)
    threshold = 0.0

    def nmse(pred, target):
        return ((pred - target) ** 2).mean() / ((target - target.mean(0, keepdim=True)) ** 2).mean()

    steps = 0
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, args.batch):
            xb = x[perm[s : s + args.batch]]
            b = xb.shape[0]
            p = (xb - b_dec) @ w_enc + b_enc
            flat = p.flatten()
            _, idx = flat.abs().topk(min(k * b, flat.numel()))
            mask = torch.zeros_like(flat, dtype=torch.bool)
            mask[idx] = True
            mask = mask.view_as(p)
            a = p * mask
            with torch.no_grad():
                kept = a.abs()[mask]
                if kept.numel():
                    threshold = 0.99 * threshold + 0.01 * kept.min().item()
                fired = (a != 0).any(0)
                since += 1
                since[fired] = 0
            loss = 0.0
            recon = None
            for pm in prefixes:
                recon = a[:, :pm] @ w_dec[:pm] + b_dec
                loss = loss + nmse(recon, xb) / len(prefixes)
            dead = since >= 64
            if dead.any():
                e = xb - recon.detach()
                ka = min(2 * k, m, int(dead.sum()))
                dp = (p.abs() * dead).detach()
                _, ai = dp.topk(ka, dim=1)
                amask = torch.zeros_like(p, dtype=torch.bool).scatter_(1, ai, True) & dead
                loss = loss + nmse((p * amask) @ w_dec, e) / 32
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                w_dec.grad -= (w_dec.grad * w_dec).sum(1, keepdim=True) * w_dec
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                w_dec /= w_dec.norm(dim=1, keepdim=True) + 1e-8
            steps += 1
    secs = time.perf_counter() - t0
    print(
        f"pytorch {torch.__version__} threads={torch.get_num_threads()}: rows={n} d={d} M={m} K={k} "
        f"epochs={args.epochs} steps={steps} seconds={secs:.3f} samples/s={n * args.epochs / secs:.0f} "
        f"final loss={float(loss):.4f}"
    )


if __name__ == "__main__":
    main()
