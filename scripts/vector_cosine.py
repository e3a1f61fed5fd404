#!/usr/bin/env python3
"""Cosine similarity and norms of steerlab vectors (native .safetensors), layer by layer.

    python3 scripts/vector_cosine.py A.safetensors B.safetensors [C.safetensors ...]

Prints, for every layer the files share, each vector's norm and the cosine of every pair.
Reads the safetensors layout directly (8-byte header length, JSON header, raw little-endian
F32 data), so it needs only numpy. Used by docs/results/steering.md (learning-rate sweep).
"""
import itertools
import json
import os
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {t['dtype']}, expected F32")
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + start : 8 + n + end], dtype="<f4").astype(np.float64)
    return out


def main():
    paths = sys.argv[1:]
    if len(paths) < 2:
        sys.exit(__doc__)
    vecs = {p: load(p) for p in paths}
    shared = sorted(set.intersection(*(set(v) for v in vecs.values())))
    if not shared:
        sys.exit("the files share no layer")
    for layer in shared:
        print(layer)
        for p in paths:
            print(f"  |{os.path.basename(p)}| = {np.linalg.norm(vecs[p][layer]):.4f}")
        for a, b in itertools.combinations(paths, 2):
            x, y = vecs[a][layer], vecs[b][layer]
            c = float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
            print(f"  cos({os.path.basename(a)}, {os.path.basename(b)}) = {c:.5f}")


if __name__ == "__main__":
    main()
