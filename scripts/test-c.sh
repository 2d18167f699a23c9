#!/usr/bin/env bash
# Builds the C library (debug) and runs every test of the C ABI:
#  - lints of memshelf-ffi (rustfmt, clippy -D warnings);
#  - cargo tests of memshelf-ffi: the committed include/memshelf.h is what
#    cbindgen generates now (fails when stale), and the C<->Rust interop test;
#  - the header compiles alone as C99 and as C++17 (-pedantic);
#  - tests/c/test_api.c and test_threads.c linked against the shared AND the
#    static library, then under valgrind (memcheck, leak check);
#  - the C++ RAII wrapper test (include/memshelf.hpp), also under valgrind
#    and built with -fsanitize=address,undefined;
#  - scripts/install-c.sh into a temporary prefix, and a program built with
#    pkg-config flags (shared and --static) against the installed copy.
# Needs: cargo, gcc/g++ (cc/c++), valgrind, pkg-config.
# Respects CARGO_TARGET_DIR (default: target/), CC and CXX.
#   scripts/test-c.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
out="$target/c-tests"
# The shared library's SONAME is libmemshelf.so.1: link through a folder
# that has that name too (as an install has).
libdir="$out/lib"
CC=${CC:-cc}
CXX=${CXX:-c++}
CFLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -g -Iinclude)
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -pedantic -g -Iinclude)
STATIC_LIBS=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)
VALGRIND=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible -q)
mkdir -p "$out"

step() { printf '\n=== %s\n' "$*"; }

step "rustfmt + clippy (memshelf-ffi)"
cargo fmt -p memshelf-ffi -- --check
cargo clippy --quiet -p memshelf-ffi --all-targets -- -D warnings

step "cargo build + test (header freshness, C<->Rust interop)"
cargo build --quiet -p memshelf-ffi
cargo test --quiet -p memshelf-ffi

mkdir -p "$libdir"
ln -sf "$target/debug/libmemshelf.so" "$libdir/libmemshelf.so"
ln -sf "$target/debug/libmemshelf.so" "$libdir/libmemshelf.so.1"
ln -sf "$target/debug/libmemshelf.a" "$libdir/libmemshelf.a"

step "the header alone: C99 and C++17"
printf '#include "memshelf.h"\nint main(void) { return memshelf_abi_version() == MEMSHELF_ABI_VERSION ? 0 : 1; }\n' \
    > "$out/header_only.c"
cp "$out/header_only.c" "$out/header_only.cpp"
"$CC" "${CFLAGS[@]}" -c "$out/header_only.c" -o "$out/header_only_c.o"
"$CXX" "${CXXFLAGS[@]}" -c "$out/header_only.cpp" -o "$out/header_only_cpp.o"
"$CXX" "${CXXFLAGS[@]}" -x c++ -c include/memshelf.hpp -o "$out/hpp_only.o"

step "C tests, linked against libmemshelf.so and libmemshelf.a"
for t in test_api test_threads; do
    "$CC" "${CFLAGS[@]}" "tests/c/$t.c" -o "$out/$t-shared" -pthread \
        -L"$libdir" -lmemshelf -Wl,-rpath,"$libdir"
    "$CC" "${CFLAGS[@]}" "tests/c/$t.c" -o "$out/$t-static" -pthread \
        "$libdir/libmemshelf.a" "${STATIC_LIBS[@]}"
    if ldd "$out/$t-static" | grep -q libmemshelf; then
        echo "$t-static is linked against the shared library" >&2
        exit 1
    fi
    "$out/$t-shared"
    "$out/$t-static"
done

step "C++ wrapper test"
"$CXX" "${CXXFLAGS[@]}" tests/c/test_cpp.cpp -o "$out/test_cpp" \
    -L"$libdir" -lmemshelf -Wl,-rpath,"$libdir"
"$out/test_cpp"

step "C++ wrapper test under AddressSanitizer + UBSan (and LeakSanitizer)"
"$CXX" "${CXXFLAGS[@]}" -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer tests/c/test_cpp.cpp -o "$out/test_cpp-asan" \
    -L"$libdir" -lmemshelf -Wl,-rpath,"$libdir"
ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1 "$out/test_cpp-asan"

step "valgrind (memcheck, leak check)"
"${VALGRIND[@]}" "$out/test_api-shared"
"${VALGRIND[@]}" "$out/test_api-static"
"${VALGRIND[@]}" "$out/test_threads-shared"
"${VALGRIND[@]}" "$out/test_cpp"

step "install-c.sh + pkg-config"
prefix="$out/prefix"
rm -rf "$prefix"
MEMSHELF_PROFILE=debug bash scripts/install-c.sh "$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists memshelf
read -r -a pc_cflags <<< "$(pkg-config --cflags memshelf)"
read -r -a pc_libs <<< "$(pkg-config --libs memshelf)"
read -r -a pc_static <<< "$(pkg-config --static --libs memshelf)"
"$CC" -std=c99 -Wall -Wextra -Werror "${pc_cflags[@]}" -Itests/c tests/c/test_api.c \
    -o "$out/test_api-installed" "${pc_libs[@]}" -Wl,-rpath,"$prefix/lib"
"$out/test_api-installed"
"$CC" -std=c99 -Wall -Wextra -Werror "${pc_cflags[@]}" -Itests/c tests/c/test_api.c \
    -o "$out/test_api-installed-static" "$prefix/lib/libmemshelf.a" "${pc_static[@]}"
"$out/test_api-installed-static"
readelf -d "$prefix/lib/libmemshelf.so.1" | grep -q 'SONAME.*libmemshelf.so.1'

printf '\nC ABI: all tests passed\n'
