#!/bin/sh
# SPDX-License-Identifier: MIT
# Sets up, builds with ASan+UBSan and -Werror, and runs the whole test suite.
# Prints "N passed, N failed[, N skipped]" computed from meson's testlog.json
# and exits non-zero on any failure.
# Usage: tests/run.sh [BUILD_DIR]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh tests/setup.sh --with-dpdk
b=${1:-build-test}
if [ ! -d "$b" ]; then
    meson setup "$b" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized
fi
meson compile -C "$b"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
set +e
meson test -C "$b" --print-errorlogs --num-processes 2 --timeout-multiplier 3 >"$b/test-output.txt" 2>&1
rc=$?
set -e
tail -n 40 "$b/test-output.txt"
python3 tests/summary.py "$b/meson-logs/testlog.json"
sum=$?
[ $rc -eq 0 ] && [ $sum -eq 0 ]
