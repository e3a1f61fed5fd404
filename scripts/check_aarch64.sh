#!/bin/sh
# Type-checks the library for aarch64 (the NEON path of the CPU kernels, model/fast/cpu_path.rs
# and cpu_matmul.rs) on an x86-64 machine; CI-friendly, exits non-zero on any error. Needs the
# Rust target and, for the C code of zstd-sys, a cross C compiler:
#   rustup target add aarch64-unknown-linux-gnu
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
# It checks, it does not run: the NEON kernels run only on an ARM machine
# (`cargo test --release --test cpu_matmul` there runs every path it has).
set -eu
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || {
  echo "missing Rust target: rustup target add $TARGET" >&2; exit 2; }
CC_aarch64_unknown_linux_gnu=${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc}
command -v "$CC_aarch64_unknown_linux_gnu" >/dev/null || {
  echo "missing cross C compiler $CC_aarch64_unknown_linux_gnu (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 2; }
export CC_aarch64_unknown_linux_gnu
cargo check --release --target "$TARGET" --lib "$@"
echo "aarch64 check: ok"
