#!/usr/bin/env bash
# Builds the C library (debug) and runs every test of the C ABI:
#  - lints of memshelf-ffi (rustfmt, clippy -D warnings);
#  - cargo tests of memshelf-ffi: the committed include/memshelf.h is what
#    cbindgen generates now (fails when stale), and the C<->Rust interop test;
#  - the header compiles alone as C99 and as C++17 (-pedantic);
#  - tests/c/test_api.c and test_threads.c linked against the shared AND the
#    static library, then under valgrind (memcheck, leak check);
#  - a 64 MiB /dev/shm (as Docker's default) refuses a 256 MiB segment at
#    open with a clear error (tests/c/test_small_shm.c, in a private mount
#    namespace: needs root or unprivileged user namespaces);
#  - the C++ RAII wrapper test (include/memshelf.hpp), also under valgrind
#    and built with -fsanitize=address,undefined;
#  - scripts/install-c.sh into a temporary prefix: programs built with only
#    `pkg-config --libs memshelf` run without LD_LIBRARY_PATH (rpath); a
#    `pkg-config --static --libs memshelf-static` build runs with no
#    libmemshelf.so on disk; a CMake project using
#    find_package(memshelf CONFIG) (memshelf::memshelf, memshelf::static)
#    builds, runs, and runs installed.
# Needs: cargo, gcc/g++ (cc/c++), valgrind, pkg-config, cmake.
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
# --fair-sched=yes: valgrind runs one thread at a time under a lock that is
# not fair by default, so a thread spinning on a bucket lock could keep the
# holder off the CPU for the whole 2 s wait and get Timeout (seen 1 run in 6
# of test_threads; 0 in 8 with a fair lock, under more load).
VALGRIND=(valgrind --fair-sched=yes --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible -q)
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
    if grep -q libmemshelf <<<"$(ldd "$out/$t-static")"; then
        echo "$t-static is linked against the shared library" >&2
        exit 1
    fi
    "$out/$t-shared"
    "$out/$t-static"
done

step "a 64 MiB /dev/shm (Docker's default) refuses a 256 MiB segment clearly"
"$CC" "${CFLAGS[@]}" tests/c/test_small_shm.c -o "$out/test_small_shm" \
    -L"$libdir" -lmemshelf -Wl,-rpath,"$libdir"
# A private mount namespace with its own small tmpfs on /dev/shm (root, or a
# user namespace where unprivileged ones are allowed).
userns=()
[ "$(id -u)" -eq 0 ] || userns=(--map-root-user)
unshare "${userns[@]}" --mount sh -c \
    'mount -t tmpfs -o size=64m,mode=1777 memshelf-test-shm /dev/shm && exec "$0"' \
    "$out/test_small_shm"

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

step "install-c.sh + pkg-config: an installed program runs without LD_LIBRARY_PATH"
prefix="$out/prefix"
rm -rf "$prefix"
MEMSHELF_PROFILE=debug bash scripts/install-c.sh "$prefix"
grep -q 'SONAME.*libmemshelf.so.1' <<<"$(readelf -d "$prefix/lib/libmemshelf.so.1")"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists memshelf memshelf-static
pkg-config --exact-version="$(pkg-config --modversion memshelf-static)" memshelf
read -r -a pc_cflags <<< "$(pkg-config --cflags memshelf)"
read -r -a pc_libs <<< "$(pkg-config --libs memshelf)"
# Only what pkg-config gives: the rpath comes from memshelf.pc.
"$CC" -std=c99 -Wall -Wextra -Werror "${pc_cflags[@]}" -Itests/c tests/c/test_api.c \
    -o "$out/test_api-installed" "${pc_libs[@]}"
grep -Eq "(RUNPATH|RPATH).*\[$prefix/lib\]" <<<"$(readelf -d "$out/test_api-installed")"
grep -q "$prefix/lib/libmemshelf.so.1" <<<"$(ldd "$out/test_api-installed")"
env -u LD_LIBRARY_PATH "$out/test_api-installed"
"$CXX" -std=c++17 -Wall -Wextra -Werror "${pc_cflags[@]}" -Itests/c tests/c/test_cpp.cpp \
    -o "$out/test_cpp-installed" "${pc_libs[@]}"
env -u LD_LIBRARY_PATH "$out/test_cpp-installed"
# --no-rpath / --rpath, staged with DESTDIR (files name the real prefix).
rm -rf "$out/stage"
DESTDIR="$out/stage" MEMSHELF_PROFILE=debug bash scripts/install-c.sh --no-rpath /opt/memshelf >/dev/null
grep -q '^Libs: -L${libdir} -lmemshelf$' "$out/stage/opt/memshelf/lib/pkgconfig/memshelf.pc"
grep -q '^prefix=/opt/memshelf$' "$out/stage/opt/memshelf/lib/pkgconfig/memshelf.pc"
test -f "$out/stage/opt/memshelf/lib/cmake/memshelf/memshelf-config.cmake"
DESTDIR="$out/stage" MEMSHELF_PROFILE=debug bash scripts/install-c.sh --rpath /usr/local >/dev/null
grep -q -- '-Wl,-rpath,${libdir}' "$out/stage/usr/local/lib/pkgconfig/memshelf.pc"

step "pkg-config --static (memshelf-static): runs with no libmemshelf.so installed"
static_prefix="$out/prefix-static"
rm -rf "$static_prefix"
cp -a "$prefix" "$static_prefix"
rm "$static_prefix"/lib/libmemshelf.so*
sed -i "s|^prefix=.*|prefix=$static_prefix|" "$static_prefix"/lib/pkgconfig/*.pc
read -r -a pc_static_cflags <<< "$(PKG_CONFIG_PATH="$static_prefix/lib/pkgconfig" pkg-config --static --cflags memshelf-static)"
read -r -a pc_static <<< "$(PKG_CONFIG_PATH="$static_prefix/lib/pkgconfig" pkg-config --static --libs memshelf-static)"
"$CC" -std=c99 -Wall -Wextra -Werror "${pc_static_cflags[@]}" -Itests/c tests/c/test_api.c \
    -o "$out/test_api-installed-static" "${pc_static[@]}"
rm -rf "$static_prefix"   # nothing of memshelf left on disk but the program
if grep -q libmemshelf <<<"$(ldd "$out/test_api-installed-static")"; then
    echo "test_api-installed-static needs libmemshelf.so" >&2
    exit 1
fi
env -u LD_LIBRARY_PATH "$out/test_api-installed-static"

step "CMake: find_package(memshelf CONFIG) with memshelf::memshelf and memshelf::static"
cmake_build="$out/cmake-build"
rm -rf "$cmake_build" "$out/cmake-install"
cmake -S tests/cmake -B "$cmake_build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_INSTALL_PREFIX="$out/cmake-install" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_CXX_COMPILER="$CXX" >/dev/null
cmake --build "$cmake_build" -j 2 >/dev/null
if grep -q libmemshelf <<<"$(ldd "$cmake_build/api_static")"; then
    echo "memshelf::static linked libmemshelf.so" >&2
    exit 1
fi
grep -q "$prefix/lib/libmemshelf.so.1" <<<"$(ldd "$cmake_build/api_shared")"
"$cmake_build/api_shared"
"$cmake_build/api_static"
"$cmake_build/wrapper_cpp"
cmake --install "$cmake_build" >/dev/null
env -u LD_LIBRARY_PATH "$out/cmake-install/bin/wrapper_cpp"
# A version it does not satisfy fails to configure.
mkdir -p "$out/cmake-bad"
printf 'cmake_minimum_required(VERSION 3.13)\nproject(p C)\nfind_package(memshelf 2.0 CONFIG REQUIRED)\n' \
    > "$out/cmake-bad/CMakeLists.txt"
if cmake -S "$out/cmake-bad" -B "$out/cmake-bad/build" -DCMAKE_PREFIX_PATH="$prefix" \
    > "$out/cmake-bad/log" 2>&1; then
    echo "find_package(memshelf 2.0) accepted version $(pkg-config --modversion memshelf)" >&2
    exit 1
fi
grep -q "version: $(pkg-config --modversion memshelf)" "$out/cmake-bad/log"

printf '\nC ABI: all tests passed\n'
