#!/usr/bin/env bash
# Tests of the invalidation agent and the memshelf CLI: lints, unit tests
# and integration tests against real redis-servers started by the tests on
# free loopback ports (plain, TLS with certificates made by openssl, ACL
# users, a 3-master Cluster, a Sentinel; the tracking feed's near-cache
# mode in agent/tests/tracking.rs). CI needs:
# apt-get install -y redis-server openssl   (scripts/setup.sh does it)
#   scripts/test-agent.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
for tool in redis-server redis-cli openssl; do
    if ! command -v "$tool" >/dev/null; then
        echo "$tool is not on PATH: apt-get install -y redis-server openssl (scripts/setup.sh)" >&2
        exit 1
    fi
done
cargo fmt -p memshelf-agent -p memshelf-cli -- --check
cargo clippy -p memshelf-agent -p memshelf-cli --all-targets -- -D warnings
cargo test -p memshelf-agent -p memshelf-cli
RUSTDOCFLAGS="-D warnings" cargo doc -p memshelf-agent -p memshelf-cli --no-deps --quiet

# The CLI end to end: put, get, publish --dry-run, stats, keys, delete, unlink.
cargo build -p memshelf-cli --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/memshelf"
name="cli-test-$$-$RANDOM"
rdir=$(mktemp -d)
cleanup() {
    "$bin" unlink "$name" 2>/dev/null || true
    [[ -f "$rdir/pid" ]] && kill "$(cat "$rdir/pid")" 2>/dev/null || true
    rm -rf "$rdir"
}
trap cleanup EXIT
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
# publish through the redis crate: a password and a database index honoured.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$rdir" \
    --requirepass clipw --daemonize yes --pidfile "$rdir/pid" >/dev/null
for _ in $(seq 100); do redis-cli -p "$port" -a clipw --no-auth-warning ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
"$bin" publish --broker "redis://:clipw@127.0.0.1:$port/3" --stream inval del a b | grep -q '^added [0-9]*-[0-9]*$'
test "$(redis-cli -p "$port" -a clipw --no-auth-warning -n 3 XLEN inval)" = 1
test "$(redis-cli -p "$port" -a clipw --no-auth-warning -n 0 XLEN inval)" = 0
"$bin" publish --broker "redis://:clipw@127.0.0.1:$port" hb | grep -q 'published to 0 subscriber'
if "$bin" publish --broker "redis://:wrong@127.0.0.1:$port" hb 2>"$rdir/err"; then echo "wrong password accepted" >&2; exit 1; fi
grep -qi 'authentication' "$rdir/err"
if "$bin" publish --broker "redis://127.0.0.1:$port/x" hb 2>/dev/null; then echo "bad db accepted" >&2; exit 1; fi
"$bin" unlink "$name"
echo "agent and CLI tests passed"
