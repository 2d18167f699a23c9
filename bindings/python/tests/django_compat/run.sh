#!/usr/bin/env bash
# Runs Django's BaseCacheTests against memshelf.django.MemshelfCache.
#   run.sh PYTHON DJANGO_SOURCE_DIR
# PYTHON: an interpreter with memshelf and the same Django version installed;
# DJANGO_SOURCE_DIR: the unpacked Django source release (its tests/ folder).
set -euo pipefail
py=$1 src=$2
here=$(cd "$(dirname "$0")" && pwd)
cp "$here/tests_memshelf.py" "$src/tests/cache/tests_memshelf.py"
cd "$src/tests"
exec "$py" -W ignore::DeprecationWarning runtests.py --settings=test_sqlite --parallel=1 -v 1 cache.tests_memshelf
