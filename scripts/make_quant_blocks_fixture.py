"""Writes tests/fixtures/gguf/quant_blocks.json: for every block type steerlab keeps quantized
(Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K), a small matrix of random blocks (random bytes with
finite f16 scales), its values dequantized by the Python `gguf` package, and products computed in
float64 by numpy: y = x W^T (the forward) and dx = dy W (the backward), with x and dy given by the
formula `act` (the test computes the same). Floats are stored as little-endian float32 hex.
These are the independent references of tests/quant_blocks.rs.

Run with the project's torch environment: ~/.cache/steerlab/torchenv/bin/python
scripts/make_quant_blocks_fixture.py
"""
import json
import os

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

ROWS, COLS, M = 4, 256, 8
# Byte offsets of each block's f16 scales (d, and m/dmin where the type has one).
SCALES = {
    "Q4_0": [0], "Q5_0": [0], "Q8_0": [0],
    "Q4_1": [0, 2], "Q5_1": [0, 2], "Q4_K": [0, 2], "Q5_K": [0, 2],
    "Q2_K": [80, 82], "Q3_K": [108], "Q6_K": [208],
}


def act(m, n, salt):
    """Activations `[m, n]`: small multiples of 1/8, `((31 i + 17 j + salt) mod 17 - 8) / 8`."""
    i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    return (((31 * i + 17 * j + salt) % 17) - 8) / 8.0


def hex32(a):
    return np.asarray(a, dtype="<f4").ravel().tobytes().hex()


def main():
    rng = np.random.default_rng(20)
    out = {"rows": ROWS, "cols": COLS, "m": M, "types": {}}
    for name, offsets in SCALES.items():
        qt = GGMLQuantizationType[name]
        block, size = GGML_QUANT_SIZES[qt]
        n_blocks = ROWS * COLS // block
        raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
        for o in offsets:
            scale = (rng.uniform(0.002, 0.05, n_blocks) * rng.choice([-1, 1], n_blocks)).astype(np.float16)
            raw[:, o:o + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
        w = quants.dequantize(raw.reshape(ROWS, -1), qt).astype(np.float64)
        assert w.shape == (ROWS, COLS) and np.isfinite(w).all(), name
        x = act(M, COLS, 1)
        dy = act(M, ROWS, 5)
        out["types"][name] = {
            "bytes": raw.tobytes().hex(),
            "weight": hex32(w),
            "y": hex32(x @ w.T),
            "dx": hex32(dy @ w),
        }
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "gguf", "quant_blocks.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
