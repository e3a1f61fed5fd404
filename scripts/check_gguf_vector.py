#!/usr/bin/env python3
"""Independent check of steerlab's GGUF control vectors with llama.cpp's Python `gguf` package.

  check_gguf_vector.py check FILE.gguf EXPECTED.json
      Reads FILE with gguf.GGUFReader and checks what llama.cpp's loader needs: architecture
      `controlvector`, `controlvector.model_hint`, `controlvector.layer_count` equal to the
      number of tensors, every tensor named `direction.N` (N >= 1), F32, 1-D of the expected
      width, values equal to EXPECTED's `directions` ({"N": [floats]}), model hint equal to
      EXPECTED's `model_hint`.
  check_gguf_vector.py write FILE.gguf SPEC.json
      Writes a control vector exactly as repeng's ControlVector.export_gguf does (GGUFWriter,
      same keys), from SPEC ({"model_hint": str, "directions": {"N": [floats]}}), so steerlab's
      importer can be tested on a file it did not write.

Exit status 0 on success, 1 with a message on any mismatch.
"""
import json
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("the Python package `gguf` is missing: pip install gguf")


def field_str(reader, key):
    f = reader.get_field(key)
    if f is None:
        return None
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def field_int(reader, key):
    f = reader.get_field(key)
    if f is None:
        return None
    return int(f.parts[f.data[0]][0])


def check(path, expected_path):
    with open(expected_path) as fh:
        exp = json.load(fh)
    want = {int(k): np.asarray(v, dtype=np.float32) for k, v in exp["directions"].items()}
    r = gguf.GGUFReader(path)
    errors = []
    arch = field_str(r, "general.architecture")
    if arch != "controlvector":
        errors.append(f"general.architecture is {arch!r}, expected 'controlvector'")
    hint = field_str(r, "controlvector.model_hint")
    if hint != exp["model_hint"]:
        errors.append(f"controlvector.model_hint is {hint!r}, expected {exp['model_hint']!r}")
    count = field_int(r, "controlvector.layer_count")
    if count != len(r.tensors):
        errors.append(f"controlvector.layer_count is {count}, but the file has {len(r.tensors)} tensors")
    seen = set()
    for t in r.tensors:
        if not t.name.startswith("direction."):
            errors.append(f"tensor {t.name!r} is not named direction.N")
            continue
        n = int(t.name.split(".", 1)[1])
        if n < 1:
            errors.append(f"{t.name}: llama.cpp rejects direction.0")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            errors.append(f"{t.name}: type {t.tensor_type.name}, expected F32")
        shape = [int(x) for x in t.shape]
        if n in want and shape != [len(want[n])]:
            errors.append(f"{t.name}: shape {shape}, expected [{len(want[n])}]")
            continue
        if n not in want:
            errors.append(f"{t.name}: not expected")
            continue
        got = np.asarray(t.data, dtype=np.float32).reshape(-1)
        if not np.allclose(got, want[n], rtol=0, atol=1e-6):
            errors.append(f"{t.name}: values differ (max abs diff {np.max(np.abs(got - want[n]))})")
        seen.add(n)
    missing = sorted(set(want) - seen)
    if missing:
        errors.append(f"missing directions for layers {missing}")
    if errors:
        sys.exit("\n".join(f"{path}: {e}" for e in errors))
    print(f"{path}: ok ({len(seen)} directions, width {len(next(iter(want.values())))})")


def write(path, spec_path):
    with open(spec_path) as fh:
        spec = json.load(fh)
    arch = "controlvector"
    w = gguf.GGUFWriter(path, arch)
    w.add_string(f"{arch}.model_hint", spec["model_hint"])
    w.add_uint32(f"{arch}.layer_count", len(spec["directions"]))
    for k, v in spec["directions"].items():
        w.add_tensor(f"direction.{int(k)}", np.asarray(v, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: written")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("check", "write"):
        sys.exit(__doc__)
    (check if sys.argv[1] == "check" else write)(sys.argv[2], sys.argv[3])
