#!/usr/bin/env bash
# Builds the C library (release) and installs it under PREFIX:
#   PREFIX/lib/libmemshelf.so.1, libmemshelf.so -> libmemshelf.so.1,
#   PREFIX/lib/libmemshelf.a, PREFIX/include/memshelf.h, memshelf.hpp,
#   PREFIX/lib/pkgconfig/memshelf.pc
# Usage: scripts/install-c.sh PREFIX        (e.g. /usr/local)
# MEMSHELF_PROFILE=debug installs a debug build instead (used by the tests).
# Respects CARGO_TARGET_DIR.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
prefix=$(mkdir -p "$1" && cd "$1" && pwd)
profile=${MEMSHELF_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
if [ "$profile" = release ]; then
    cargo build --quiet --release -p memshelf-ffi
else
    cargo build --quiet -p memshelf-ffi
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
libdir="$prefix/lib"
install -d "$libdir/pkgconfig" "$prefix/include"
install -m 0755 "$target/$profile/libmemshelf.so" "$libdir/libmemshelf.so.1"
ln -sf libmemshelf.so.1 "$libdir/libmemshelf.so"
install -m 0644 "$target/$profile/libmemshelf.a" "$libdir/libmemshelf.a"
install -m 0644 include/memshelf.h include/memshelf.hpp "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" ffi/memshelf.pc.in \
    > "$libdir/pkgconfig/memshelf.pc"
echo "installed memshelf $version under $prefix"
