#!/usr/bin/env bash
# Builds memshelf and runs the demo: several processes share one segment,
# each verifying every value it reads; the segment-wide hits, misses and
# evictions are printed every second.
#   scripts/demo.sh [PROCS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p memshelf --example demo -- "${1:-4}" "${2:-5}"
