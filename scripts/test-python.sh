#!/usr/bin/env bash
# Builds the Python module into the project venv (.venv) and runs its tests.
#   scripts/test-python.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements-dev.txt
# maturin and cargo disagree on PyO3's environment: keep the module's build
# in its own target dir (BUILD-NOTES trap 3) unless the caller chose one.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/py}"
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop -q -m bindings/python/Cargo.toml
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider bindings/python/tests "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit $rc
