#!/usr/bin/env bash
# Fuzz fullduplex._speedups against its pure-Python twins under AddressSanitizer.
#
#   fuzzing/run.sh [SECONDS] [libFuzzer options or corpus dirs...]
#
# Builds an instrumented copy of src/fullduplex/_speedups.c into fuzzing/build/
# (the installed extension is left alone) and runs fuzzing/fuzz_speedups.py with
# atheris. With clang, the C code is built with -fsanitize=address,fuzzer-no-link
# and libFuzzer follows its branches; with gcc only, it is built with
# -fsanitize=address and libFuzzer gets no coverage feedback (random mutation only).
# FULLDUPLEX_FUZZ_COMPILER=clang or =gcc picks one; FULLDUPLEX_FUZZ_BUILD moves the
# build and corpus directory.
#
# Exit status: 0 nothing found; 3 the fuzzer cannot be built here (the reason is
# printed); anything else is a finding (libFuzzer writes the input that triggered
# it to fuzzing/build/artifacts/).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
DURATION="${1:-60}"
[ "$#" -gt 0 ] && shift
PY="${PYTHON:-$ROOT/.venv/bin/python}"
BUILD="${FULLDUPLEX_FUZZ_BUILD:-$HERE/build}"
SOURCE="$ROOT/src/fullduplex/_speedups.c"

cannot() {
    printf 'cannot fuzz: %s\n' "$*" >&2
    exit 3
}

[ -x "$PY" ] || cannot "no Python at $PY (set PYTHON=...)"
"$PY" -c 'import atheris' 2>/dev/null || cannot "atheris is not installed ($PY -m pip install atheris)"
"$PY" -c 'import fullduplex' 2>/dev/null || cannot "fullduplex is not importable ($PY -m pip install -e .)"
INCLUDE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
SUFFIX="$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
[ -f "$INCLUDE/Python.h" ] || cannot "no Python headers in $INCLUDE"
ARCH="$(uname -m)"

mkdir -p "$BUILD/corpus" "$BUILD/artifacts"
MODULE="$BUILD/_speedups$SUFFIX"
CFLAGS=(-O1 -g -fno-omit-frame-pointer -fPIC -shared -Wall -Wextra -Werror -I"$INCLUDE")

COMPILER="${FULLDUPLEX_FUZZ_COMPILER:-}"
if [ "$COMPILER" != gcc ] && command -v clang >/dev/null 2>&1 \
    && RTLIB="$(clang -print-file-name="libclang_rt.asan-$ARCH.a")" && [ -f "$RTLIB" ]; then
    RT="$(dirname "$RTLIB")"
    PRELOAD="$BUILD/asan_with_fuzzer.so"
    if [ ! -f "$PRELOAD" ]; then
        # libFuzzer's coverage hooks must win over ASan's weak defaults, so both go
        # into one preloaded library. The preinit object cannot live in a DSO (it
        # only registers ASan's early init, which LD_PRELOAD gives us anyway).
        objs="$(mktemp -d)"
        (cd "$objs" && ar x "$RT/libclang_rt.asan-$ARCH.a" && rm -f asan_preinit*.o)
        clang -shared -fPIC -o "$PRELOAD" \
            -Wl,--whole-archive "$objs"/*.o "$RT/libclang_rt.asan_cxx-$ARCH.a" \
            "$RT/libclang_rt.fuzzer_no_main-$ARCH.a" -Wl,--no-whole-archive \
            -lpthread -ldl -lrt -lm -lstdc++ || { rm -rf "$objs"; cannot "linking the ASan+libFuzzer runtime failed"; }
        rm -rf "$objs"
    fi
    clang "${CFLAGS[@]}" -fsanitize=address,fuzzer-no-link "$SOURCE" -o "$MODULE" \
        || cannot "clang could not build the instrumented extension"
    MODE="clang: ASan + C coverage"
elif [ "$COMPILER" != clang ] && command -v gcc >/dev/null 2>&1 && PRELOAD="$(gcc -print-file-name=libasan.so)" \
    && [ -f "$PRELOAD" ]; then
    gcc "${CFLAGS[@]}" -fsanitize=address "$SOURCE" -o "$MODULE" \
        || cannot "gcc could not build the instrumented extension"
    # gcc's preloaded libasan shadows the coverage hooks atheris registers, so
    # libFuzzer mutates blind here: still a memory-safety check, not a guided one.
    MODE="gcc: ASan only, no coverage guidance (install clang for a guided run)"
else
    cannot "neither clang with compiler-rt nor gcc with libasan is installed${COMPILER:+ (FULLDUPLEX_FUZZ_COMPILER=$COMPILER)}"
fi

echo "fuzzing fullduplex._speedups for ${DURATION}s ($MODE)" >&2
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_abort=1:${ASAN_OPTIONS:-}"
export PYTHONMALLOC=malloc  # so ASan sees every allocation, small bytes objects too
export FULLDUPLEX_FUZZ_MODULE="$MODULE"
LD_PRELOAD="$PRELOAD" exec "$PY" "$HERE/fuzz_speedups.py" \
    -max_total_time="$DURATION" -max_len=8192 -rss_limit_mb=4096 -timeout=30 \
    -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/" "$@" "$BUILD/corpus"
