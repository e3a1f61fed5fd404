#!/usr/bin/env python3
"""Planted-factor recovery of a `steerlab sae run` on `steerlab data synth` data.

For each planted factor: the best |r| over features between the feature's activation
(activations.safetensors, rows = pairs in file order) and the factor difference f(A) - f(B);
the feature achieving it; and the expressed-preference sign implied by that feature
(sign(effect) * sign(r)) against the sign of the planted weight (mean over judges and scenarios);
and "span r": the held-out correlation of a least-squares fit of the factor difference on all
features' activations (first 80% of pairs fit, last 20% scored) -- how much of the factor the
dictionary carries at all, spread over features or not.

Usage: python3 scripts/sae_factor_recovery.py DATA.jsonl TRUTH.json OUT_DIR [OUT_DIR ...]
Prints a Markdown table per output folder.
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open


def main() -> None:
    data, truth_path, outs = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows = [json.loads(l) for l in open(data) if l.strip()]
    truth = json.load(open(truth_path))
    factors = sorted(truth["factors"])
    w = truth["weights"]
    mean_w = {f: float(np.mean([w[j][s][f] for j in w for s in w[j]])) for f in factors}
    diff = {f: np.array([r["factors_a"].get(f, 0.0) - r["factors_b"].get(f, 0.0) for r in rows]) for f in factors}
    for out in outs:
        act = load_file(f"{out}/activations.safetensors")["activations"].astype(np.float64)
        with safe_open(f"{out}/activations.safetensors", "np") as fh:
            ids = json.loads(fh.metadata()["pair_ids"])
        assert ids == [r["id"] for r in rows], "activations are not in file order"
        rep = json.load(open(f"{out}/report.json"))
        eff = {f["index"]: (f["effect"] or {}).get("coef") for f in rep["features"]}
        o = rep["options"]["sae"]
        print(f"\n### {out}: M = {o['latents']}, K = {o['k']}, val FVE {rep['val_fve']:.3f}, L0 {rep['val_l0']:.2f}\n")
        print("| factor | best abs(r) | feature | r | span r | feature effect | implied sign | planted mean weight | agrees |")
        print("|---|---|---|---|---|---|---|---|---|")
        n = act.shape[0]
        tr = np.arange(n) < int(0.8 * n)
        X = np.c_[act, np.ones(n)]
        for f in factors:
            y = diff[f]
            best = (0.0, None, 0.0)
            for j in range(act.shape[1]):
                x = act[:, j]
                if x.std() == 0 or y.std() == 0:
                    continue
                r = float(np.corrcoef(x, y)[0, 1])
                if abs(r) > best[0]:
                    best = (abs(r), j, r)
            b, j, r = best
            w = np.linalg.lstsq(X[tr], y[tr], rcond=None)[0]
            span = float(np.corrcoef(X[~tr] @ w, y[~tr])[0, 1]) if y[~tr].std() > 0 else float("nan")
            e = eff.get(j)
            implied = "–" if e is None or j is None else ("+" if e * r > 0 else "−")
            planted = "+" if mean_w[f] > 0 else ("−" if mean_w[f] < 0 else "0")
            agree = "–" if implied == "–" or planted == "0" else ("yes" if implied == planted else "no")
            ef = "–" if e is None else f"{e:+.3f}"
            print(f"| {f} | {b:.3f} | {j} | {r:+.3f} | {span:.3f} | {ef} | {implied} | {mean_w[f]:+.2f} | {agree} |")


if __name__ == "__main__":
    main()
