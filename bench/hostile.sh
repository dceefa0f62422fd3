#!/bin/sh
# SPDX-License-Identifier: MIT
# Hostile-input benchmark (DESIGN.md §13: "hostile input (hash collisions,
# out-of-order floods) within 3x of ordinary input"; "1 M flows (SYN-only
# included) <= 512 MiB"). Each attack runs beside its control, in the same
# run, on one pinned core, under /usr/bin/time (CPU = user + sys; median of
# RUNS), with captures from bench/gen_flows_pcap.c:
#
#   collide  N SYNs from IPv6 sources that all shared one value of the flow
#            hash dyetap used before its keyed one   vs  syn6: N ordinary ones
#            (`dyetap record`, and `dyetap mirror -r` with one lane)
#   ooo      250 000 one-byte segments behind a hole  vs  inorder: the same
#            bytes in order
#   syn      1 000 000 SYN-only connections, --max-flows 1000000: peak RSS
#            and the table's own figure (flow_mem_bytes)
#
# With BASE_DYETAP=/path/to/dyetap (a release build of an older commit) the
# same captures also run through that binary, for the before/after table.
#
# Usage: bench/hostile.sh [N] [RUNS]        (defaults 40000 and 3)
# Needs: meson, ninja, cc, /usr/bin/time, taskset. Work files go to
# ${BENCH_DIR:-/tmp/dyetap-bench} (about 200 MB).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-40000}
runs=${2:-3}
dir=${BENCH_DIR:-/tmp/dyetap-bench}
mkdir -p "$dir"
b="$top/build-bench"
if [ ! -d "$b" ]; then
    meson setup "$b" -Dbuildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$b" cli/dyetap >/dev/null
dyetap="$b/cli/dyetap"
cc -O2 -o "$dir/gen_flows_pcap" "$top/bench/gen_flows_pcap.c"
pin="taskset -c 0"
command -v taskset >/dev/null || pin=""

for s in syn6 collide; do
    [ -f "$dir/h-$s-$n.pcap" ] || "$dir/gen_flows_pcap" "$dir/h-$s-$n.pcap" "$n" "$s" 2>/dev/null
done
for s in inorder ooo; do
    [ -f "$dir/h-$s.pcap" ] || "$dir/gen_flows_pcap" "$dir/h-$s.pcap" 250000 "$s" 2>/dev/null
done

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# cpu BIN WHAT PCAP: median CPU seconds of RUNS runs
cpu() {
    bin=$1 what=$2 pcap=$3
    for i in $(seq "$runs"); do
        if [ "$what" = mirror ]; then
            $pin /usr/bin/time -f '%U %S' -o "$dir/time.txt" "$bin" mirror -r "$pcap" \
                --color 'blue=method:GET' --lane 'blue=http://127.0.0.1:9' \
                --drain-timeout 0 >/dev/null 2>&1
        else
            $pin /usr/bin/time -f '%U %S' -o "$dir/time.txt" "$bin" record -r "$pcap" \
                -w "$dir/h.dyt" >/dev/null 2>&1
        fi
        awk '{printf "%.3f\n", $1 + $2}' "$dir/time.txt"
    done | median
}
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1 / ($2 > 0.001 ? $2 : 0.001)}'; }

echo "hostile input: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Linux $(uname -r)"
echo "one core pinned, median of $runs runs, CPU seconds (user + sys); load average $(cut -d' ' -f1 /proc/loadavg) before"
echo
echo "| attack (control) | binary | attack CPU s | control CPU s | ratio |"
echo "|---|---|---|---|---|"
for bin in "$dyetap" ${BASE_DYETAP:-}; do
    label=this
    [ "$bin" = "$dyetap" ] || label=base
    for what in record mirror; do
        a=$(cpu "$bin" "$what" "$dir/h-collide-$n.pcap")
        c=$(cpu "$bin" "$what" "$dir/h-syn6-$n.pcap")
        echo "| $n colliding SYNs, \`$what\` ($n ordinary) | $label | $a | $c | $(ratio "$a" "$c") |"
    done
    a=$(cpu "$bin" record "$dir/h-ooo.pcap")
    c=$(cpu "$bin" record "$dir/h-inorder.pcap")
    echo "| 250 000 one-byte segments behind a hole (in order) | $label | $a | $c | $(ratio "$a" "$c") |"
done
echo
echo "| 1 000 000 SYN-only connections, --max-flows 1000000 | binary | peak RSS | flow_mem_bytes | CPU s |"
echo "|---|---|---|---|---|"
for bin in "$dyetap" ${BASE_DYETAP:-}; do
    label=this
    [ "$bin" = "$dyetap" ] || label=base
    "$dir/gen_flows_pcap" - 1000000 syn 2>/dev/null |
        $pin /usr/bin/time -f '%M %U %S' -o "$dir/time.txt" "$bin" record -r - \
            -w "$dir/h.dyt" --max-flows 1000000 --json >"$dir/syn.json" 2>/dev/null
    mem=$(tr ',{}' '\n\n\n' <"$dir/syn.json" | awk -F: '$1 == "\"flow_mem_bytes\"" {printf "%.0f MiB", $2/1048576}')
    echo "| | $label | $(awk '{printf "%.0f MiB", $1/1024}' "$dir/time.txt") | ${mem:-n/a} | $(awk '{printf "%.2f", $2 + $3}' "$dir/time.txt") |"
done
