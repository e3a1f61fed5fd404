#!/usr/bin/env python3
"""Ceiling for planted-factor recovery: how well is each factor difference linearly readable
from the embedding differences at all? For every planted factor of `steerlab data synth` data:
the fraction of pairs where it differs, the held-out r of a ridge probe on Δ = e(A) - e(B)
(fit on the first 80% of pairs, scored on the rest), and the r of the projection on the
supervised mean-difference direction. An unsupervised SAE feature cannot be expected to beat the
probe.

Usage: python3 scripts/sae_probe_ceiling.py DATA.jsonl TRUTH.json CACHE.safetensors
(CACHE: the embedding cache file steerlab wrote for DATA, tensors `a`, `b`).
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def main() -> None:
    data, truth_path, cache = sys.argv[1:4]
    rows = [json.loads(l) for l in open(data) if l.strip()]
    truth = json.load(open(truth_path))
    t = load_file(cache)
    a, b = t["a"].astype(np.float64), t["b"].astype(np.float64)
    n = len(rows)
    assert a.shape[0] == n, "cache rows do not match the data"
    D = a - b
    tr = np.arange(n) < int(0.8 * n)
    X = np.c_[D, np.ones(n)]
    print("| factor | pairs differing | probe r (held out) | mean-difference r |")
    print("|---|---|---|---|")
    for fac in sorted(truth["factors"]):
        y = np.array([r["factors_a"].get(fac, 0) - r["factors_b"].get(fac, 0) for r in rows])
        w = np.linalg.solve(X[tr].T @ X[tr] + 1e-2 * np.eye(X.shape[1]), X[tr].T @ y[tr])
        probe = np.corrcoef(X[~tr] @ w, y[~tr])[0, 1]
        md = D[y > 0].mean(0) - D[y < 0].mean(0)
        mdr = np.corrcoef(D @ md, y)[0, 1]
        print(f"| {fac} | {np.mean(y != 0):.2f} | {probe:.3f} | {mdr:.3f} |")


if __name__ == "__main__":
    main()
