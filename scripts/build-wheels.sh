#!/usr/bin/env bash
# Builds the wheel users install: abi3 (one wheel for CPython >= 3.11),
# manylinux2014 (glibc >= 2.17; linked by zig from PyPI's ziglang, so the
# build machine's newer glibc does not leak in), x86-64 Linux, release,
# stripped.
#   scripts/build-wheels.sh [--sdist]      # into target/wheels/ (or $WHEEL_DIR)
# --sdist also writes the source distribution (needs Rust to install).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements-dev.txt
out="${WHEEL_DIR:-target/wheels}"
mkdir -p "$out"
rm -f "$out"/memshelf-*.whl
# maturin finds zig through the ziglang package of the venv's Python.
PATH="$PWD/.venv/bin:$PATH" maturin build --release --strip --zig \
  --compatibility manylinux2014 -m bindings/python/Cargo.toml \
  --target-dir target/wheel -o "$out"
if [[ "${1:-}" == "--sdist" ]]; then
  PATH="$PWD/.venv/bin:$PATH" maturin sdist -m bindings/python/Cargo.toml -o "$out"
fi
ls "$out"/memshelf-*
