#!/usr/bin/env bash
# Regenerates include/memshelf.h from ffi/src with cbindgen (the library,
# as a dev-dependency of memshelf-ffi; no cbindgen binary needed).
#   scripts/gen-header.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MEMSHELF_BLESS=1 cargo test --quiet -p memshelf-ffi --test header -- --exact committed_header_is_current >/dev/null
echo "wrote include/memshelf.h"
