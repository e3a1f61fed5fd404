#!/usr/bin/env bash
# Set up steerlab's embedded defaults (once, from PyPI), build, and open the app with the default model.
#   ./run.sh            set up, then open the app (extra arguments go to `steerlab gui`)
#   ./run.sh --setup    set up only (what CI and a headless machine run before `cargo test --release`)
# The build is the release profile that the test command (`cargo test --release --no-fail-fast`) shares.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/fetch-defaults.sh
cargo build --release
./target/release/steerlab data fetch   # convert the default data sets (offline)
if [ "${1:-}" = "--setup" ]; then
  echo "steerlab: set up; open the app with ./run.sh, run the tests with: cargo test --release --no-fail-fast" >&2
  exit 0
fi
exec ./target/release/steerlab gui "$@"
