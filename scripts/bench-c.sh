#!/usr/bin/env bash
# Builds the C library (release) and benches/c/bench.c (-O2, static link),
# then prints get/put ns per op with 1 and 2 processes.
#   scripts/bench-c.sh [OPS_PER_PHASE] [KEYS]
# Respects CARGO_TARGET_DIR and CC.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release -p memshelf-ffi
mkdir -p "$target/c-bench"
"${CC:-cc}" -std=c99 -O2 -Wall -Wextra -Werror -Iinclude benches/c/bench.c \
    -o "$target/c-bench/bench" "$target/release/libmemshelf.a" \
    -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
"$target/c-bench/bench" "$@"
