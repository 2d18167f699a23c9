#!/usr/bin/env bash
# The near-cache demo: a redis-server, memshelf-agent in tracking mode (it
# deletes from the host's segment every key any client writes in Redis),
# four Python workers reading through memshelf.redis.NearCache, and a writer
# updating keys with redis-cli. Prints the hit ratio, the Redis GETs saved
# and the stale reads (0). Needs what scripts/setup.sh installs; builds the
# agent and the Python wheel on first use.
#   scripts/demo-nearcache.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
work=$(mktemp -d)
seg="demo-nearcache-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f "/dev/shm/memshelf.$seg" "/dev/shm/memshelf.$seg-acks"
  rm -rf "$work"
}
trap cleanup EXIT

echo "building memshelf-agent and the Python wheel (first run: a few minutes)"
cargo build --quiet --release -p memshelf-agent
venv=target/demo-venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import memshelf.redis, redis' 2>/dev/null \
   || [[ -n "$(find bindings/python core -newer "$venv/bin/python" -name '*.rs' -o -newer "$venv/bin/python" -name '*.py' | head -n 1)" ]]; then
  WHEEL_DIR=target/wheels-demo bash scripts/build-wheels.sh >"$work/wheel.log" 2>&1 \
    || { cat "$work/wheel.log" >&2; exit 1; }
  rm -rf "$venv"
  python3 -m venv --without-pip "$venv"
  .venv/bin/python -m pip --python "$venv/bin/python" install -q --disable-pip-version-check \
    "redis==8.1.0" "$(ls target/wheels-demo/memshelf-*-cp311-abi3-manylinux2014_x86_64*.whl)"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
mport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/memshelf-agent --segment "$seg" --create-capacity 64MiB \
  --broker "redis://127.0.0.1:$port" --feed tracking --tracking-prefix demo: \
  --metrics-addr "127.0.0.1:$mport" --log-level error &
pids+=($!)
for _ in $(seq 200); do curl -fsS "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
echo "redis-server on :$port, memshelf-agent (tracking demo:*) with metrics on :$mport"
"$venv/bin/python" bindings/python/examples/nearcache_demo.py "$port" "$seg" "$seconds"
