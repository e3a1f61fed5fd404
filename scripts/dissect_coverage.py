#!/usr/bin/env python3
"""Compares a `steerlab dissect` report.json with the planted weights of `steerlab data synth`.

usage: dissect_coverage.py TRUTH.json REPORT.json

The report must be grouped by judge and scenario (`--by judge,scenario`) with the planted
factors as columns (`--factors columns`). Continuous factors are fitted on the standardised
difference (f(A) - f(B)) / rms, so their planted weight is multiplied by the factor's
`diff_scale` before comparing. Prints one line per factor x group and the summary:
interval coverage, and sign agreement for planted |w| >= 0.5 (in the raw units of the truth).
"""
import json
import sys


def main():
    truth = json.load(open(sys.argv[1]))
    rep = json.load(open(sys.argv[2]))
    scale = {f["name"]: f.get("diff_scale") or 1.0 for f in rep["factor_definitions"]}
    covered = total = big = big_sign = big_excl = 0
    rows = []
    for g in rep["groups"]:
        judge, scen = g["group"].get("judge"), g["group"].get("scenario")
        w = truth["weights"][judge][scen]
        for f in g["factors"]:
            if f["name"] not in w:
                continue
            planted = w[f["name"]] * scale[f["name"]]
            ok = f["lo95"] <= planted <= f["hi95"]
            covered += ok
            total += 1
            if abs(w[f["name"]]) >= 0.5:
                big += 1
                big_sign += (f["mean"] > 0) == (planted > 0)
                big_excl += f["lo95"] > 0 if planted > 0 else f["hi95"] < 0
            rows.append((g["label"], f["name"], planted, f["mean"], f["lo95"], f["hi95"], ok))
    print(f"{'group':34} {'factor':12} {'planted':>8} {'mean':>8} {'lo95':>8} {'hi95':>8} covered")
    for r in rows:
        print(f"{r[0]:34} {r[1]:12} {r[2]:8.3f} {r[3]:8.3f} {r[4]:8.3f} {r[5]:8.3f} {'yes' if r[6] else 'NO'}")
    print(f"coverage: {covered}/{total} = {100 * covered / max(total, 1):.1f}%")
    print(f"|w| >= 0.5: sign right {big_sign}/{big}, interval excludes 0 with the right sign {big_excl}/{big}")
    rh = [f["rhat"] for g in rep["groups"] for f in g["factors"] if f.get("rhat") is not None]
    if rh:
        print(f"max R-hat {max(rh):.4f}; min ESS {min(f['ess'] for g in rep['groups'] for f in g['factors']):.0f}")


if __name__ == "__main__":
    main()
