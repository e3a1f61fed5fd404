#!/usr/bin/env bash
# Print the path of a Python interpreter that has the independent readers steerlab's tests use to
# check exported files (llama.cpp's `gguf`, `safetensors`, `numpy`), creating it on first use; with the
# argument `openai`, one with the official OpenAI client instead (the server test).
#
# The environment lives in the steerlab cache ($STEERLAB_PYENV, else $STEERLAB_HOME/pyenv, else
# ~/.cache/steerlab/pyenv), so `cargo test` needs nothing installed by hand beyond Python 3. It is a
# virtual environment where `python3 -m venv` works, else a `pip install --target` folder used
# through a small wrapper script. Concurrent callers (parallel tests) wait on one lock.
set -euo pipefail
home="${STEERLAB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/steerlab}"
env_dir="${STEERLAB_PYENV:-$home/pyenv}"
# The readers and their versions: bump REQS_VERSION with them so existing environments are redone.
REQS="gguf==0.19.0 safetensors==0.8.0 numpy"
REQS_VERSION=1
CHECK='import gguf, safetensors, numpy'
# `scripts/pyenv.sh openai`: a separate environment with the official OpenAI Python client, for the
# server test (tests/serve_openai.rs); kept apart so the readers' environment is never redone for it.
if [ "${1:-}" = openai ]; then
  env_dir="${STEERLAB_PYENV_OPENAI:-$home/pyenv-openai}"
  REQS="openai==3.51.0"
  REQS_VERSION=1
  CHECK='import openai'
fi
stamp="$env_dir/.steerlab-ready-$REQS_VERSION"
py="$(command -v python3 || command -v python || true)"
if [ -z "$py" ]; then
  echo "steerlab: python3 is needed by the tests that read exported files back (install Python 3)" >&2
  exit 1
fi
if [ ! -e "$stamp" ]; then
  mkdir -p "$(dirname "$env_dir")"
  exec 9>"$env_dir.lock"
  flock 9
  if [ ! -e "$stamp" ]; then
    rm -rf "$env_dir"
    echo "steerlab: creating the test readers' Python environment in $env_dir ($REQS) ..." >&2
    if "$py" -m venv "$env_dir" >/dev/null 2>&1 && [ -x "$env_dir/bin/python" ]; then
      "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check $REQS >&2
    else
      # No venv module (Debian without python3-venv): install into a folder and wrap the interpreter.
      rm -rf "$env_dir"
      mkdir -p "$env_dir/bin" "$env_dir/site"
      "$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$env_dir/site" $REQS >&2
      printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec "%s" "$@"\n' \
        "$env_dir/site" "$py" >"$env_dir/bin/python"
      chmod +x "$env_dir/bin/python"
    fi
    "$env_dir/bin/python" -c "$CHECK" >&2
    touch "$stamp"
  fi
fi
echo "$env_dir/bin/python"
