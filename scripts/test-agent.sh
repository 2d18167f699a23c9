#!/usr/bin/env bash
# Tests of the invalidation agent and the memshelf CLI: lints, unit tests
# and integration tests against a real redis-server (started by the tests
# on a free loopback port). CI needs: apt-get install -y redis-server
#   scripts/test-agent.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
if ! command -v redis-server >/dev/null; then
    echo "redis-server is not on PATH: apt-get install -y redis-server" >&2
    exit 1
fi
cargo fmt -p memshelf-agent -p memshelf-cli -- --check
cargo clippy -p memshelf-agent -p memshelf-cli --all-targets -- -D warnings
cargo test -p memshelf-agent -p memshelf-cli
RUSTDOCFLAGS="-D warnings" cargo doc -p memshelf-agent -p memshelf-cli --no-deps --quiet

# The CLI end to end: put, get, publish --dry-run, stats, keys, delete, unlink.
cargo build -p memshelf-cli --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/memshelf"
name="cli-test-$$-$RANDOM"
trap '"$bin" unlink "$name" 2>/dev/null || true' EXIT
"$bin" put "$name" k1 hello --ttl 60 --tag t --capacity 1MiB
test "$("$bin" get "$name" k1)" = hello
"$bin" put "$name" k2 world
test "$("$bin" keys "$name" --prefix k | sort | tr '\n' ' ')" = "k1 k2 "
"$bin" stats "$name" | grep -q '^entries=2$'
"$bin" stats "$name" --json | grep -q '"entries":2'
test "$("$bin" delete "$name" k1 nope)" = 1
if "$bin" get "$name" k1; then echo "deleted key still present" >&2; exit 1; fi
"$bin" clear "$name"
if "$bin" get "$name" k2; then echo "cleared key still present" >&2; exit 1; fi
"$bin" publish --dry-run --cache "$name" --origin w:1 --seq 3 del a b | grep -q '"op":"del","keys":\["a","b"\],"cache":"'"$name"'","origin":"w:1","seq":3,"ts":'
"$bin" unlink "$name"
echo "agent and CLI tests passed"
