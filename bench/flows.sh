#!/bin/sh
# SPDX-License-Identifier: MIT
# Flow-memory benchmark (docs/benchmarks.md "Memory": 1 M flows <= 512 MiB):
# peak RSS of `dyetap record` over captures in which N connections are all
# open at once, for N = 100 000 and N (default 1 000 000), in two shapes
# written by bench/gen_flows_pcap.c:
#   pending - every connection has sent its request and waits for the
#             response (the recorder holds N parsed requests);
#   idle    - every connection has finished one transaction and stays open
#             (keep-alive connections of a busy front end).
# The per-connection cost is the slope between the two sizes, so the fixed
# part (program, zstd contexts, the store's batch) cancels out. Each shape
# runs with the defaults, with sleeping idle connections and the HTTP
# memcap both off (the raw cost of a tracked connection), and with only
# the memcap off.
#
# Usage: bench/flows.sh [N]           (default 1000000)
# Needs: meson, ninja, cc, /usr/bin/time. Work files go to
# ${BENCH_DIR:-/tmp/dyetap-bench} (about 2 GB for N = 1 000 000).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
small=100000
dir=${BENCH_DIR:-/tmp/dyetap-bench}
mkdir -p "$dir"
b="$top/build-bench"
if [ ! -d "$b" ]; then
    meson setup "$b" -Dbuildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$b" cli/dyetap >/dev/null
dyetap="$b/cli/dyetap"
cc -O2 -o "$dir/gen_flows_pcap" "$top/bench/gen_flows_pcap.c"

get() { tr ',{}' '\n\n\n' <"$1" | awk -F: -v k="\"$2\"" '$1 == k {print $2}'; }

# one SHAPE COUNT [OPTIONS...]: prints "rss_kib sessions complete evictions sleeps"
one() {
    pcap="$dir/flows-$1-$2.pcap"
    [ -f "$pcap" ] || "$dir/gen_flows_pcap" "$pcap" "$2" "$1" 2>/dev/null
    nflows=$2
    shift 2
    /usr/bin/time -f '%M' -o "$dir/time.txt" "$dyetap" record -r "$pcap" \
        -w "$dir/flows.dyt" --max-flows $((nflows + 1000)) --json "$@" >"$dir/flows.json"
    echo "$(cat "$dir/time.txt") $(get "$dir/flows.json" pipe_written)" \
        "$(get "$dir/flows.json" txn_sessions_complete)" \
        "$(get "$dir/flows.json" pipe_memcap_evictions)" \
        "$(get "$dir/flows.json" pipe_dormant)"
}
mib() { echo "$1" | awk '{printf "%.0f MiB", $1/1024}'; }

echo "flow memory: $(nproc) cores, Linux $(uname -r), load average $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| shape | settings | connections open at once | peak RSS | sessions (complete) | memcap evictions | connections put to sleep | per connection (slope) |"
echo "|---|---|---|---|---|---|---|---|"
# row SHAPE LABEL OPTIONS...: the small and the large run, and the slope
row() {
    shape=$1 label=$2
    shift 2
    set -- $(one "$shape" "$small" "$@") "$@"
    r1=$1
    echo "| $shape | $label | $small | $(mib "$r1") | $2 ($3) | $4 | $5 | |"
    shift 5
    set -- $(one "$shape" "$n" "$@")
    slope=$(echo "$r1 $1 $small $n" | awk '{printf "%.0f", ($2 - $1) * 1024 / ($4 - $3)}')
    echo "| $shape | $label | $n | $(mib "$1") | $2 ($3) | $4 | $5 | $slope B |"
}
for shape in idle pending; do
    row "$shape" "defaults"
    row "$shape" "no sleeping, no memcap" --http-sleep-mem 1000G --http-memcap 64G
    row "$shape" "no memcap" --http-memcap 64G
done
