#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_install.sh - spool as a library other programs depend on: installs this
# build into a temporary directory (meson install --destdir), then builds tests/install/outside.c
# against the installed tree and runs it, five ways: pkg-config shared, pkg-config static,
# CMake find_package (shared and static) and pkg_check_modules(IMPORTED_TARGET), and a meson
# parent project with spool as a subproject (its tests and examples must not be configured).
# Also: an installed example program finds its bundled data under share/spool/data.
# usage: test_install.sh BUILD_DIR SOURCE_DIR PREFIX LIBDIR SANITIZE   (TAP output)
set -u
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd) prefix=$3 libdir=$4 sanitize=$5
case "$libdir" in /*) ;; *) libdir=$prefix/$libdir ;; esac
work=$(mktemp -d "$build/test-install.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; [ -f "$2" ] && sed 's/^/# /' "$2" | tail -20; }
check() { # description, log, command...
    local what=$1 log=$2; shift 2
    if "$@" >"$log" 2>&1; then ok "$what"; else not_ok "$what" "$log"; fi
}
san=()
[ "$sanitize" != none ] && san=("-fsanitize=$sanitize")

dest=$work/dest
check "meson install --destdir" "$work/install.log" meson install -C "$build" --no-rebuild --destdir "$dest"
root=$dest$prefix lib=$dest$libdir
export PKG_CONFIG_PATH=$lib/pkgconfig
# spool.pc is relocatable (prefix from ${pcfiledir}: default option pkgconfig.relocatable); a build
# directory configured before that default existed gets its prefix line pointed at the copy
if ! grep -q '^prefix=${pcfiledir}' "$lib/pkgconfig/spool.pc" 2>/dev/null; then
    sed -i "s|^prefix=.*|prefix=$root|" "$lib/pkgconfig/spool.pc"
fi
out=$src/tests/install/outside.c

# pkg-config, shared: the installed library is the one loaded
check "pkg-config: build against the shared library" "$work/pc.log" \
    cc "${san[@]}" "$out" -o "$work/outside_pc" $(pkg-config --cflags --libs spool) -lm
check "pkg-config: run with the installed libspool.so" "$work/pc-run.log" \
    env LD_LIBRARY_PATH="$lib" "$work/outside_pc"
if LD_LIBRARY_PATH="$lib" ldd "$work/outside_pc" | grep -q "$lib/libspool.so"; then ok "ldd: loads $lib/libspool.so"
else not_ok "ldd: does not load the installed library"; fi

# pkg-config, static: nothing of libspool.so left in the program
libs=$(pkg-config --static --libs spool | sed 's/-lspool\b/-l:libspool.a/')
check "pkg-config --static: build against libspool.a" "$work/pcs.log" \
    cc "${san[@]}" "$out" -o "$work/outside_static" $(pkg-config --cflags spool) $libs -lm
check "pkg-config --static: run" "$work/pcs-run.log" "$work/outside_static"
if readelf -d "$work/outside_static" 2>/dev/null | grep -q 'libspool\.so'; then not_ok "static program needs libspool.so"
else ok "static program does not need libspool.so"; fi

# CMake: find_package(spool) (spool::spool, spool::spool_static) and pkg_check_modules
cflags="${san[*]}"
check "cmake: configure with find_package(spool) and pkg_check_modules" "$work/cmake.log" \
    cmake -S "$src/tests/install/cmake" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$root" \
    -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$cflags"
check "cmake: build" "$work/cmake-build.log" cmake --build "$work/cmake"
for exe in outside_cmake outside_cmake_static outside_cmake_pc; do
    check "cmake: run $exe" "$work/$exe.log" env LD_LIBRARY_PATH="$lib" "$work/cmake/$exe"
done

# a meson parent project with spool as a subproject (from a copy of the source tree's files)
parent=$work/parent
mkdir -p "$parent/app/subprojects"
cp "$src/tests/install/meson/meson.build" "$parent/app/meson.build"
cp "$out" "$parent/outside.c"
ln -s "$src" "$parent/app/subprojects/spool"
msan=()
[ "$sanitize" != none ] && msan=("-Db_sanitize=$sanitize" "-Db_lundef=false")
check "meson parent: setup with spool as a subproject" "$work/parent.log" \
    meson setup "$work/parent-build" "$parent/app" --wrap-mode=forcefallback "${msan[@]}"
if grep -qE 'test_tape|spool-charlm|spool-bench' "$work/parent-build/build.ninja" 2>/dev/null; then
    not_ok "meson parent: spool's tests or examples were configured"
else ok "meson parent: spool's tests and examples not configured"; fi
check "meson parent: build" "$work/parent-build.log" nice -n 15 ninja -C "$work/parent-build" outside_meson
check "meson parent: run" "$work/parent-run.log" "$work/parent-build/outside_meson"

# an installed example finds its data under share/spool/data, from any directory
if [ -x "$root/bin/spool-charlm" ]; then
    (cd "$work" && env -u SPOOL_DATA -u SPOOL_CHARLM_DATA LD_LIBRARY_PATH="$lib" "$root/bin/spool-charlm" --help) >"$work/help.txt" 2>&1
    if grep -q "looked for in $root/bin/../share/spool/data" "$work/help.txt"; then ok "installed spool-charlm finds share/spool/data"
    else not_ok "installed spool-charlm does not find share/spool/data" "$work/help.txt"; fi
    if [ -f "$root/share/spool/data/names/train.txt" ]; then ok "bundled data installed"; else not_ok "no share/spool/data/names"; fi
fi
# man pages (GNU help2man; optional, so only where it is installed): one per installed program,
# rendered by groff without a warning
if [ -d "$root/bin" ] && command -v help2man > /dev/null; then
    for exe in "$root"/bin/spool-*; do
        page=$root/share/man/man1/$(basename "$exe").1
        if [ -f "$page" ] && groff -man -Tutf8 -ww -z "$page" >"$work/man.log" 2>&1 && [ ! -s "$work/man.log" ] &&
            grep -qE '^\.SH "?EXIT STATUS' "$page"; then ok "man page $(basename "$page")"
        else not_ok "man page of $(basename "$exe") missing or with warnings" "$work/man.log"; fi
    done
fi

# the library alone: -Dtests=false -Dexamples=false asks for nothing but the library's dependencies
# (the optional ones included: MPI for -Dmpi, protobuf-c for -Donnx)
if meson setup "$work/libonly" "$src" -Dtests=false -Dexamples=false >"$work/libonly.log" 2>&1; then
    extra=$(python3 -c '
import json, sys
deps = json.load(open(sys.argv[1]))
print(" ".join(sorted({d["name"] for d in deps} - {"openmp", "m", "threads", "blis", "mpi", "ompi-c", "dl", "libprotobuf-c"})))' \
        "$work/libonly/meson-info/intro-dependencies.json" 2>&1)
    if [ -z "$extra" ]; then ok "library-only setup needs only the library's dependencies"
    else not_ok "library-only setup also needs: $extra"; fi
else
    not_ok "meson setup -Dtests=false -Dexamples=false" "$work/libonly.log"
fi
echo "1..$n"
exit $((failed > 0))
