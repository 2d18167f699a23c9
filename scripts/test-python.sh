#!/usr/bin/env bash
# Builds the Python wheel (scripts/build-wheels.sh: release, abi3,
# manylinux2014), checks it with auditwheel, installs it into a fresh venv
# and runs there: the whole pytest suite against the installed wheel,
# Django's own cache backend tests (BaseCacheTests from the Django source
# release), mypy's stubtest, and mypy --strict plus pyright (strict) on an
# example that uses every feature.
#   scripts/test-python.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
step() { printf '\n--- python: %s (at %d s)\n' "$*" "$((SECONDS - t0))"; }
t0=$SECONDS

step "wheel (scripts/build-wheels.sh)"
WHEEL_DIR=target/wheels-test bash scripts/build-wheels.sh
wheel=$(ls target/wheels-test/memshelf-*-cp311-abi3-manylinux2014_x86_64*.whl)
echo "built in $((SECONDS - t0)) s: $wheel"

step "auditwheel show"
report=$(.venv/bin/auditwheel show "$wheel")
echo "$report"
if ! grep -q '"manylinux_2_17_x86_64"' <<<"$report"; then
  echo "auditwheel: the wheel is not manylinux2014 (manylinux_2_17)" >&2
  exit 1
fi
if grep -qi "external shared libraries" <<<"$report"; then
  echo "auditwheel: the wheel needs external shared libraries" >&2
  exit 1
fi

step "fresh venv with the wheel"
venv=target/py-wheel-venv
rm -rf "$venv"
# No pip of its own and no byte-compiling at install: 15 s instead of 26 s.
python3 -m venv --without-pip "$venv"
.venv/bin/python -m pip --python "$venv/bin/python" install -q --no-compile \
  --disable-pip-version-check -r scripts/requirements-python-test.txt "$wheel"
py="$root/$venv/bin/python"

step "memshelf-agent (the near-cache audit runs the real agent)"
cargo build --quiet -p memshelf-agent
export MEMSHELF_AGENT_BIN="$root/target/debug/memshelf-agent"

step "pytest against the installed wheel"
set +e
MEMSHELF_EXPECT_INSTALLED="$root/$venv" "$py" -m pytest -q -p no:cacheprovider bindings/python/tests "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
[[ $rc -eq 0 ]] || exit $rc

step "Django's BaseCacheTests (Django source release)"
django_version=$("$py" -c 'import django; print(django.get_version())')
src="target/django-src/django-$django_version"
if [[ ! -f "$src/tests/runtests.py" ]]; then
  mkdir -p target/django-src
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d target/django-src "django==$django_version"
  tar -xzf "target/django-src/django-$django_version.tar.gz" -C target/django-src
fi
bash bindings/python/tests/django_compat/run.sh "$py" "$src"

# The type checks run outside the checkout, so that they see the installed
# package (its .pyi and py.typed), not bindings/python/python.
step "mypy stubtest, mypy --strict, pyright (strict)"
example="$root/bindings/python/examples"
(cd "$root/target" && "$py" -m mypy.stubtest memshelf)
(cd "$root/target" && "$py" -m mypy --strict --no-incremental "$example/typed_usage.py")
(cd "$example" && "$root/$venv/bin/pyright" --pythonpath "$py" -p pyrightconfig.json)
(cd "$root/target" && "$py" "$example/typed_usage.py")
echo "python: all passed in $((SECONDS - t0)) s"
