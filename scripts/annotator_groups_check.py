#!/usr/bin/env python3
"""Scores `steerlab dissect --annotator-groups` against the planted truth of
`steerlab data synth --annotator-groups G`: adjusted Rand index of the found groups, and how
many per-group 95% intervals cover the planted weights (each found group is matched to the
planted group most of its members come from; `length` is compared on the encoded scale,
planted weight x diff_scale). Standard library only.

usage: scripts/annotator_groups_check.py REPORT.json TRUTH.json
"""
import json
import sys
from collections import Counter
from math import comb


def ari(a, b):
    n = len(a)
    pairs = Counter(zip(a, b))
    index = sum(comb(m, 2) for m in pairs.values())
    rows = sum(comb(m, 2) for m in Counter(a).values())
    cols = sum(comb(m, 2) for m in Counter(b).values())
    total = comb(n, 2)
    expected = rows * cols / total
    top = 0.5 * (rows + cols)
    return 1.0 if top == expected else (index - expected) / (top - expected)


def main(report_path, truth_path):
    report = json.load(open(report_path))
    truth = json.load(open(truth_path))
    planted = truth["annotator_groups"]
    weights = truth["group_weights"]
    scale = {f["name"]: f.get("diff_scale") or 1.0 for f in report["factor_definitions"]}
    found, want = [], []
    covered = total = 0
    lines = []
    for g in report["annotator_groups"]:
        votes = Counter(planted[m] for m in g["members"])
        match = votes.most_common(1)[0][0]
        for m in g["members"]:
            found.append(g["group"])
            want.append(planted[m])
        for f in g["factors"]:
            w = weights[str(match)][f["name"]] * scale[f["name"]]
            ok = f["lo95"] <= w <= f["hi95"]
            covered += ok
            total += 1
            lines.append(
                f"  group {g['group']} (planted {match}) {f['name']:<12} planted {w:+.3f} "
                f"fit {f['mean']:+.3f} [{f['lo95']:+.3f}, {f['hi95']:+.3f}] {'ok' if ok else 'MISS'}"
            )
    info = report.get("annotator_grouping", {})
    print(f"groups found: {len(report['annotator_groups'])} (planted {len(weights)}); "
          f"BIC {info.get('bic')}; silhouette {info.get('silhouette')}")
    print(f"adjusted Rand index: {ari(found, want):.3f} over {len(found)} annotators")
    print(f"95% intervals covering the planted weight: {covered}/{total}")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
