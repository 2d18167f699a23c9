#!/usr/bin/env bash
# Installs everything the tests and the demo need. Idempotent.
#   scripts/setup.sh
# System packages (Debian/Ubuntu, needs root or sudo): redis-server (agent
# tests), valgrind and pkg-config (C tests), python3-venv. The Rust toolchain,
# Python 3 and Node.js 20 must already be there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v valgrind >/dev/null || need+=(valgrind)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
if ((${#need[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  echo "[setup] apt-get install ${need[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"
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

# Rust components used by the test command.
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "[setup] done"
