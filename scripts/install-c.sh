#!/usr/bin/env bash
# Builds the C library (release) and installs it under PREFIX:
#   PREFIX/lib/libmemshelf.so.1, libmemshelf.so -> libmemshelf.so.1
#   PREFIX/lib/libmemshelf.a
#   PREFIX/include/memshelf.h, memshelf.hpp
#   PREFIX/lib/pkgconfig/memshelf.pc          shared library
#   PREFIX/lib/pkgconfig/memshelf-static.pc   static library (libmemshelf.a)
#   PREFIX/lib/cmake/memshelf/                find_package(memshelf CONFIG):
#       memshelf::memshelf (shared), memshelf::static
#
# Usage: scripts/install-c.sh [--rpath | --no-rpath] PREFIX   (e.g. /usr/local)
#
# Finding libmemshelf.so.1 at run time (no LD_LIBRARY_PATH needed):
#  - PREFIX/lib searched by the dynamic loader (/usr/lib, /usr/local/lib, any
#    directory in /etc/ld.so.conf): the script runs `ldconfig` (as root; else
#    it says to run `sudo ldconfig`), and memshelf.pc carries no rpath.
#  - any other PREFIX (/opt/memshelf, $HOME/.local, a test prefix):
#    memshelf.pc adds `-Wl,-rpath,PREFIX/lib` to its Libs, so a program
#    linked with `pkg-config --libs memshelf` finds the library where it
#    was installed.
#  --rpath / --no-rpath force the rpath in memshelf.pc on or off.
# DESTDIR=/staging installs into /staging/PREFIX (for packagers: the files
# still name PREFIX, and ldconfig is not run).
# MEMSHELF_PROFILE=debug installs a debug build instead (used by the tests).
# Respects CARGO_TARGET_DIR.
set -euo pipefail
rpath=auto
while [ $# -gt 1 ]; do
    case "$1" in
    --rpath) rpath=yes ;;
    --no-rpath) rpath=no ;;
    *) break ;;
    esac
    shift
done
if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: $0 [--rpath | --no-rpath] PREFIX" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
destdir=${DESTDIR:-}
case "$1" in
/*) prefix=$1 ;;
*) prefix=$(mkdir -p "$1" && cd "$1" && pwd) ;;
esac
prefix=${prefix%/}
profile=${MEMSHELF_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
if [ "$profile" = release ]; then
    cargo build --quiet --release -p memshelf-ffi
else
    cargo build --quiet -p memshelf-ffi
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
libdir="$prefix/lib"
dest="$destdir$prefix"

ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
# Does the dynamic loader search DIR without help (ld.so.conf or built in)?
loader_searches() {
    local dir d
    dir=$(readlink -m "$1")
    case "$dir" in /lib | /usr/lib | /lib64 | /usr/lib64) return 0 ;; esac
    while IFS= read -r d; do
        [ "$(readlink -m "$d")" = "$dir" ] && return 0
    done < <("$ldconfig" -v -N 2>/dev/null | sed -n 's/^\([^[:space:]][^:]*\):.*/\1/p')
    return 1
}
if [ "$rpath" = auto ]; then
    if loader_searches "$libdir"; then rpath=no; else rpath=yes; fi
fi
rpath_flag=""
[ "$rpath" = yes ] && rpath_flag=" -Wl,-rpath,\${libdir}"

install -d "$dest/lib/pkgconfig" "$dest/lib/cmake/memshelf" "$dest/include"
install -m 0755 "$target/$profile/libmemshelf.so" "$dest/lib/libmemshelf.so.1"
ln -sf libmemshelf.so.1 "$dest/lib/libmemshelf.so"
install -m 0644 "$target/$profile/libmemshelf.a" "$dest/lib/libmemshelf.a"
install -m 0644 include/memshelf.h include/memshelf.hpp "$dest/include/"
for pc in memshelf memshelf-static; do
    sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@RPATH@|$rpath_flag|" \
        "ffi/$pc.pc.in" > "$dest/lib/pkgconfig/$pc.pc"
done
install -m 0644 ffi/cmake/memshelf-config.cmake "$dest/lib/cmake/memshelf/"
sed -e "s|@VERSION@|$version|" ffi/cmake/memshelf-config-version.cmake.in \
    > "$dest/lib/cmake/memshelf/memshelf-config-version.cmake"
echo "installed memshelf $version under $dest"

if [ "$rpath" = yes ]; then
    echo "memshelf.pc links with -Wl,-rpath,$libdir (not a directory the loader searches)"
elif [ -n "$destdir" ]; then
    echo "DESTDIR set: run ldconfig after the files reach $libdir"
elif [ "$(id -u)" -eq 0 ]; then
    "$ldconfig"
    echo "ran ldconfig: programs find $libdir/libmemshelf.so.1"
elif loader_searches "$libdir"; then
    echo "run 'sudo ldconfig' so programs find $libdir/libmemshelf.so.1"
else
    echo "no rpath (--no-rpath): programs need $libdir in LD_LIBRARY_PATH or ld.so.conf"
fi
