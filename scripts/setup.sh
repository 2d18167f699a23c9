#!/usr/bin/env bash
# Installs everything the tests and the demo need. Idempotent.
#   scripts/setup.sh
# System packages (Debian/Ubuntu, needs root or sudo): redis-server and
# openssl (agent tests: TLS certificates, Cluster, Sentinel), valgrind,
# pkg-config and cmake (C tests), prometheus (promtool and a real server),
# tmux and curl (observability and CLI tests), python3-venv. The Rust
# toolchain, Python 3 and Node.js 20 must already be there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v openssl >/dev/null || need+=(openssl)
command -v valgrind >/dev/null || need+=(valgrind)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cmake >/dev/null || need+=(cmake)
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v promtool >/dev/null || need+=(prometheus)
command -v tmux >/dev/null || need+=(tmux)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  echo "[setup] apt-get install ${need[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  # The packages must not start their services (prometheus would listen on
  # 9090): the tests start their own servers on random loopback ports.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && own_policy=1
  fi
  rc=0
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" || rc=$?
  [[ -z $own_policy ]] || $SUDO rm -f "$policy"
  ((rc == 0)) || exit "$rc"
fi

for tool in cargo python3 node npm; do
  command -v "$tool" >/dev/null || { echo "[setup] $tool is required but not installed" >&2; exit 1; }
done

# Python: a project venv with the build and test tools (pinned): maturin,
# ziglang (links the manylinux2014 wheel), auditwheel, pytest, Django, mypy,
# pyright (which fetches its node package from npm on first use: done here).
if [[ ! -x .venv/bin/python ]]; then
  echo "[setup] creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements-dev.txt
.venv/bin/pyright --version >/dev/null

# Node: the pinned build and test tools of bindings/node (@napi-rs/cli,
# typescript, keyv, @keyv/test-suite, vitest), from its lockfile. Scripts
# are not run (no package of the set needs one: sqlite3, a dependency of
# @keyv/test-suite the suite never loads, would try to download a binary).
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "[setup] Node.js >= 20 is required (found $(node --version))" >&2
  exit 1
fi
lock=bindings/node/package-lock.json
stamp=bindings/node/node_modules/.memshelf-lock-sha
if [[ ! -f $stamp ]] || [[ $(cat "$stamp") != $(sha256sum "$lock" | cut -d' ' -f1) ]]; then
  echo "[setup] npm ci in bindings/node"
  (cd bindings/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  sha256sum "$lock" | cut -d' ' -f1 > "$stamp"
fi

# Rust components used by the test command.
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "[setup] done"
