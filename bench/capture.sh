#!/bin/sh
# SPDX-License-Identifier: MIT
# Capture benchmark (docs/benchmarks.md "Capture"): `dyetap record` on one core over a
# generated >= 1 GiB HTTP capture, beside its anchors measured in the same
# run: a bare pcap_next_ex read loop over the same file, and tshark's HTTP
# field extraction on a 40 MB slice (compared in MB/s). Also: store size vs
# the pcap (and vs the pcap gzipped, on the slice), peak RSS.
#
# Every program is pinned to one core. Throughput is given two ways:
# per wall-clock second and per CPU second (user + sys from
# /usr/bin/time). On a shared machine the wall-clock figures swing with
# the load of others; the CPU figures do not, so ratios use them.
#
# Before/after: with BASE_DYETAP=/path/to/another/dyetap (e.g. a release
# build of the commit before a change) every run also records the same
# file with that binary, right after this tree's, and the table gets its
# figures and the ratio of the two: a comparison on the same input, in the
# same run, on the same core.
#
# Usage: bench/capture.sh [SIZE_MB] [RUNS]      (defaults 1100 and 3)
# Needs: meson, ninja, cc, libpcap-dev, tshark, gzip, /usr/bin/time, taskset.
# Work files go to ${BENCH_DIR:-/tmp/dyetap-bench} (about 1.5x SIZE_MB).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
size_mb=${1:-1100}
runs=${2:-3}
dir=${BENCH_DIR:-/tmp/dyetap-bench}
mkdir -p "$dir"
b="$top/build-bench"

if [ ! -d "$b" ]; then
    meson setup "$b" -Dbuildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$b" cli/dyetap >/dev/null
dyetap="$b/cli/dyetap"
cc -O2 -o "$dir/gen_http_pcap" "$top/bench/gen_http_pcap.c"
cc -O2 -o "$dir/pcap_readloop" "$top/bench/pcap_readloop.c" -lpcap

pcap="$dir/http.pcap"
if [ ! -f "$pcap" ] || [ "$(stat -c %s "$pcap")" -lt $((size_mb * 1048576)) ]; then
    "$dir/gen_http_pcap" "$pcap" "$size_mb" 1
fi
slice="$dir/slice.pcap"
[ -f "$slice" ] || "$dir/gen_http_pcap" "$slice" 40 1
pcap_bytes=$(stat -c %s "$pcap")
slice_bytes=$(stat -c %s "$slice")
cat "$pcap" >/dev/null # page cache

pin="taskset -c 0"
command -v taskset >/dev/null || pin=""
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# run NAME BYTES CMD...: one timed run; appends "wall_mbs cpu_mbs rss_kb" to $dir/NAME.runs
run() {
    name=$1 bytes=$2
    shift 2
    $pin /usr/bin/time -f '%e %U %S %M' -o "$dir/time.txt" "$@"
    awk -v b="$bytes" '{w=$1; c=$2+$3; if (w < 0.001) w = 0.001; if (c < 0.001) c = 0.001;
        printf "%.1f %.1f %d\n", b/1e6/w, b/1e6/c, $4}' "$dir/time.txt" >>"$dir/$name.runs"
}
rm -f "$dir"/*.runs
load_before=$(cut -d' ' -f1 /proc/loadavg)
for i in $(seq "$runs"); do
    run readloop "$pcap_bytes" "$dir/pcap_readloop" "$pcap" >/dev/null
    run record "$pcap_bytes" "$dyetap" record -r "$pcap" -w "$dir/out.dyt" \
        --color 'blue=header:x-lane=blue' --json >"$dir/counters.json"
    if [ -n "${BASE_DYETAP:-}" ]; then
        run base "$pcap_bytes" "$BASE_DYETAP" record -r "$pcap" -w "$dir/base.dyt" \
            --color 'blue=header:x-lane=blue' --json >"$dir/base.json"
        tr ',{}' '\n\n\n' <"$dir/base.json" | awk -F: -v b="$pcap_bytes" \
            '$1 == "\"cpu_capture_thread_ms\"" {printf "%.1f\n", b/1e3/($2 > 0 ? $2 : 1)}' \
            >>"$dir/basethread.runs"
    fi
    # the capture thread alone (the store compresses on a second thread)
    tr ',{}' '\n\n\n' <"$dir/counters.json" | awk -F: -v b="$pcap_bytes" \
        '$1 == "\"cpu_capture_thread_ms\"" {printf "%.1f\n", b/1e3/($2 > 0 ? $2 : 1)}' \
        >>"$dir/thread.runs"
    # the same on two cores: what a machine with a free core gets in wall time
    pin2="taskset -c 0,1" pin_save=$pin
    command -v taskset >/dev/null || pin2=""
    pin=$pin2
    run record2 "$pcap_bytes" "$dyetap" record -r "$pcap" -w "$dir/out.dyt" \
        --color 'blue=header:x-lane=blue' >/dev/null 2>&1
    pin=$pin_save
    run tshark "$slice_bytes" tshark -r "$slice" -Y http -T fields -e http.request.method \
        -e http.request.uri -e http.response.code -e http.content_length >"$dir/tshark.txt"
done
load_after=$(cut -d' ' -f1 /proc/loadavg)
col() { awk -v c="$2" '{print $c}' "$dir/$1.runs" | tr '\n' ' ' | median; }
rl_w=$(col readloop 1) rl_c=$(col readloop 2)
rec_w=$(col record 1) rec_c=$(col record 2)
rec2_w=$(col record2 1) thr_c=$(col thread 1)
ts_w=$(col tshark 1) ts_c=$(col tshark 2)
rss_kb=$(awk '{print $3}' "$dir/record.runs" | sort -n | tail -1)
store_bytes=$(stat -c %s "$dir/out.dyt")

"$dyetap" record -r "$slice" -w "$dir/slice.dyt" >/dev/null 2>&1
slice_store=$(stat -c %s "$dir/slice.dyt")
gzip -1 -c "$slice" >"$dir/slice.pcap.gz"
slice_gz=$(stat -c %s "$dir/slice.pcap.gz")
tshark_reqs=$(awk -F'\t' '$1 != ""' "$dir/tshark.txt" | wc -l)

get() { tr ',{}' '\n\n\n' <"$dir/counters.json" | awk -F: -v k="\"$1\"" '$1 == k {print $2}'; }
pct() { echo "$1 $2" | awk '{printf "%.0f", 100*$1/$2}'; }
x() { echo "$1 $2" | awk '{printf "%.0f", $1/$2}'; }

echo "capture benchmark: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Linux $(uname -r)"
echo "one core pinned (taskset -c 0), median of $runs runs; load average $load_before before, $load_after after"
echo "input: $(echo "$pcap_bytes" | awk '{printf "%.0f MB", $1/1e6}') pcap, $(get src_packets) packets, $(get flow_created) connections; recorded $(get pipe_written) sessions ($(get txn_sessions_complete) complete), $(get reasm_gaps) gaps; tshark slice: $tshark_reqs requests"
echo
echo "| measure | per CPU second | per wall second |"
echo "|---|---|---|"
echo "| bare pcap_next_ex read loop (anchor) | $rl_c MB/s | $rl_w MB/s |"
echo "| dyetap record | $rec_c MB/s = $(pct "$rec_c" "$rl_c") % of the read loop | $rec_w MB/s = $(pct "$rec_w" "$rl_w") % |"
echo "| record's capture thread alone (store compression on its own thread) | $thr_c MB/s = $(pct "$thr_c" "$rl_c") % | |"
echo "| dyetap record on two cores (taskset -c 0,1) | | $rec2_w MB/s = $(pct "$rec2_w" "$rl_w") % |"
echo "| tshark HTTP extraction, 40 MB slice (anchor) | $ts_c MB/s; record $(x "$rec_c" "$ts_c")x faster | $ts_w MB/s; $(x "$rec_w" "$ts_w")x |"
if [ -n "${BASE_DYETAP:-}" ]; then
    b_w=$(col base 1) b_c=$(col base 2) bt_c=$(col basethread 1)
    echo "| BASE_DYETAP record, same file, same runs | $b_c MB/s; this tree $(echo "$rec_c $b_c" | awk '{printf "%.2f", $1/$2}')x | $b_w MB/s |"
    echo "| BASE_DYETAP capture thread alone | $bt_c MB/s; this tree $(echo "$thr_c $bt_c" | awk '{printf "%.2f", $1/$2}')x | |"
fi
echo
echo "| size | value |"
echo "|---|---|"
echo "| store / pcap | $(echo "$store_bytes $pcap_bytes" | awk '{printf "%.1f %%", 100*$1/$2}') ($(echo "$store_bytes" | awk '{printf "%.0f MB", $1/1e6}')) |"
echo "| slice: store / (pcap gzip -1) | $(echo "$slice_store $slice_gz" | awk '{printf "%.0f %%", 100*$1/$2}') (pcap.gz is $(echo "$slice_gz $slice_bytes" | awk '{printf "%.0f %%", 100*$1/$2}') of the pcap) |"
echo "| peak RSS of record | $(echo "$rss_kb" | awk '{printf "%.0f MiB", $1/1024}') |"
echo
echo "runs (wall MB/s, CPU MB/s, RSS KiB):"
for f in readloop record record2 tshark base; do
    [ -f "$dir/$f.runs" ] && echo "  $f: $(tr '\n' ';' <"$dir/$f.runs")"
done
[ -f "$dir/thread.runs" ] && echo "  capture thread MB/s: $(tr '\n' ';' <"$dir/thread.runs")"
[ -f "$dir/basethread.runs" ] && echo "  base capture thread MB/s: $(tr '\n' ';' <"$dir/basethread.runs")"
exit 0
