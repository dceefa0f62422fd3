#!/bin/sh
# SPDX-License-Identifier: MIT
# Store benchmark (docs/benchmarks.md "Store"): writer and reader throughput
# and size on realistic HTTP session records, beside `zstd -1`, `zstd -3`
# and `gzip -6` on the same msgpack payload bytes, in the same run.
# Usage: bench/store.sh [store_bench options: -n RECORDS -l LEVEL -f FLUSH_KIB -r RUNS -d DIR]
# Builds a release build in build-bench/ when it is missing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
b="$top/build-bench"
command -v zstd >/dev/null && command -v gzip >/dev/null || {
    echo "store.sh: needs zstd and gzip (scripts/setup.sh installs them)" >&2
    exit 2
}
[ -d "$b" ] || meson setup "$b" --buildtype=release >/dev/null
ninja -C "$b" bench/store_bench >/dev/null
echo "store_bench $* -- $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
    "$(zstd -V | sed 's/^\*\*\* //; s/ 64-bits.*//; s/,.*//'), $(gzip --version | head -n1)"
exec "$b/bench/store_bench" "$@"
