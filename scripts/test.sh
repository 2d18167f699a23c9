#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust workspace
# (engine unit/doc tests, multi-process and kill tests, the agent against a
# real redis-server), the dashboard and alert rules against promtool and a
# real Prometheus, the CLI's live views, the C/C++ tests (with valgrind), the
# Python module and the Node addon; the memshelf crate packaged as for
# crates.io and built from the package. Installs what they need first
# (scripts/setup.sh,
# idempotent).
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s\n' "$*"; }

step "setup (scripts/setup.sh)"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "cargo package -p memshelf (the crate as published builds; offline)"
cargo package -p memshelf --allow-dirty --offline --quiet

step "loom model checks (model/: bucket lock and publish, item write/read, leases, tags, registration lock)"
# Exhaustive within the preemption bound; its own target dir (--cfg loom
# rebuilds every dependency). ~1 min on 2 cores at the default bound 2.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" \
    cargo test -p memshelf-model --release

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "Agent and CLI end to end (scripts/test-agent.sh)"
bash scripts/test-agent.sh

step "Observability and live CLI views (scripts/test-observability.sh)"
bash scripts/test-observability.sh

step "C and C++ (scripts/test-c.sh)"
bash scripts/test-c.sh

step "Python (scripts/test-python.sh)"
bash scripts/test-python.sh

step "Node (scripts/test-node.sh)"
bash scripts/test-node.sh

printf '\nall tests passed\n'
