#!/usr/bin/env bash
# Builds the Node addon (debug) and runs its tests with node's test runner.
#   scripts/test-node.sh
# Needs: cargo, Node.js >= 18 (20 in CI). No npm packages: the tests use
# only node:test and the built addon. Respects CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The addon (copied to bindings/node/memshelf.node by build.js) and the Rust
# example the interop test runs.
node bindings/node/build.js
cargo build --quiet -p memshelf-node --examples

cd bindings/node
node --test test/
