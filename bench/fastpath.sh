#!/bin/sh
# SPDX-License-Identifier: MIT
# Fast path benchmark (docs/benchmarks.md "Fast path"): dyetap-fastpath on
# net_pcap,infinite_rx=1 (the capture replayed from memory, no NIC), beside
# its anchor measured in the same run: dpdk-testpmd --forward-mode=rxonly on
# the same vdev and capture. Two captures: a realistic HTTP mix (~710 B
# average) and minimum-size frames (60 B, 64 B on the wire).
#
# Figures are packets per second, the median of the per-second rates of a
# run (the first second dropped), the median again over RUNS runs:
#   testpmd rxonly                      1 forwarding lcore
#   classify                            parse, flow lookup, color; nothing sent
#   classify+mirror                     + copy out a net_null TX port
#   classify+mirror(vxlan)              + VXLAN header mbuf + clone
#   classify+mirror+handoff             + zero-copy enqueue to 1 worker lcore
#   classify+mirror+handoff+shadow      + --lane corp=... (workers run the pipeline
#                                       and feed the shadow sender; the target is
#                                       a closed loopback port: the RX rate with
#                                       shadowing on, not the sender's throughput)
#   2 RX lcores: classify+mirror        two vdev ports, one RX lcore each
#   testpmd rxonly 2 cores              the same two ports
#
# Usage: bench/fastpath.sh [SECONDS] [RUNS]      (defaults 8 and 3)
# Needs root for hugepages (2 MiB pages, 1 GiB, released at exit); with
# FP_NO_HUGE=1 it runs with --no-huge instead. Work files go to
# ${BENCH_DIR:-/tmp/dyetap-bench-fp}.
set -euf # -f: rules hold globs (path:/api/*)
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-8}
runs=${2:-3}
dir=${BENCH_DIR:-/tmp/dyetap-bench-fp}
b="$top/build-bench"
mkdir -p "$dir"

if [ ! -d "$b" ]; then
    meson setup "$b" -Dbuildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$b" dpdk/dyetap-fastpath >/dev/null
fp="$b/dpdk/dyetap-fastpath"
[ -f "$dir/in.pcap" ] || python3 "$top/tests/dpdk/gen_flows.py" "$dir" --flows 2000 --resp-bytes 9000
[ -f "$dir/tiny.pcap" ] || python3 "$top/tests/dpdk/gen_flows.py" "$dir" --tiny 4096

# --- hugepages -------------------------------------------------------------
nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
mounted=""
prev=""
cleanup() {
    if [ -n "$mounted" ]; then umount "$mounted" 2>/dev/null || true; fi
    if [ -n "$prev" ]; then echo "$prev" >"$nr"; fi
}
trap cleanup EXIT INT TERM
if [ "${FP_NO_HUGE:-0}" = 1 ]; then
    mem="--no-huge -m 1024"
    memnote="no hugepages (--no-huge -m 1024)"
else
    prev=$(cat "$nr")
    echo 512 >"$nr"
    if ! grep -q hugetlbfs /proc/mounts; then
        mkdir -p /dev/hugepages
        mount -t hugetlbfs nodev /dev/hugepages
        mounted=/dev/hugepages
    fi
    mem="--in-memory"
    memnote="hugepages (512 x 2 MiB, --in-memory)"
fi
eal="$mem --no-pci --no-telemetry --log-level=*:warning"
rules="--color blue=header:x-lane=blue --color canary=cookie:lane=canary,path:/api/* \
--color beta=sample:header:x-user-id:5% --color corp=src:192.168.7.0/24 --color tagged=vlan:42"
tiny_rules="--color corp=src:10.0.0.0/24 --color tagged=vlan:42"

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}'; }

# Median per-second rx rate from --stats-every 1 --json lines on stderr.
fp_rate() {
    # shellcheck disable=SC2086
    timeout -s INT "$secs" "$fp" $eal "$@" --stats-every 1 --json 2>"$dir/fp.err" >/dev/null || true
    python3 - "$dir/fp.err" <<'EOF'
import json, sys
pts = []
for line in open(sys.argv[1]):
    if line.startswith("{"):
        o = json.loads(line)
        pts.append((o["elapsed_ms"], o["rx"]))
rates = [(b[1] - a[1]) * 1000.0 / (b[0] - a[0]) for a, b in zip(pts, pts[1:]) if b[0] > a[0]]
rates = sorted(rates[1:]) if len(rates) > 2 else sorted(rates)
print("%.0f" % (rates[len(rates) // 2] if rates else 0))
EOF
}

tp_rate() {
    # shellcheck disable=SC2086
    timeout -s INT "$secs" dpdk-testpmd $eal "$@" --forward-mode=rxonly --auto-start \
        --stats-period 1 2>&1 | tr -d '\r' | awk '/Rx-pps:/ {print $2}' >"$dir/tp.rates" || true
    # Several ports: add the per-port lines of one period.
    nports=$(echo "$*" | grep -o 'net_pcap[0-9]' | sort -u | wc -l)
    awk -v n="$nports" '{s += $1; if (NR % n == 0) {print s; s = 0}}' "$dir/tp.rates" |
        tail -n +2 | median
}

runs_of() { # name, then the command: prints the median over $runs runs
    name=$1
    shift
    i=0
    : >"$dir/runs"
    while [ $i -lt "$runs" ]; do
        "$@" >>"$dir/runs"
        i=$((i + 1))
    done
    printf '%s %s\n' "$name" "$(median <"$dir/runs")"
}

one_case() { # pcap, mbufs, rules
    p=$1
    n=$2
    r=$3
    v1="net_pcap0,rx_pcap=$p,infinite_rx=1"
    v2="net_pcap1,rx_pcap=$p,infinite_rx=1"
    # shellcheck disable=SC2086
    {
        runs_of testpmd_rxonly tp_rate -l 0,1 --vdev "$v1" -- --nb-cores=1 --total-num-mbufs=$((n + 8192))
        runs_of classify fp_rate --lcores 0@0,1@1 --vdev "$v1" -- --rx 0 --mbufs "$n" $r
        runs_of classify_mirror fp_rate --lcores 0@0,1@1 --vdev "$v1" --vdev net_null0 -- \
            --rx 0 --mirror-tx 1 --mbufs "$n" $r
        runs_of classify_mirror_vxlan fp_rate --lcores 0@0,1@1 --vdev "$v1" --vdev net_null0 -- \
            --rx 0 --mirror-tx 1 --mirror-mode vxlan=192.0.2.1,192.0.2.2,42 --mbufs "$n" $r
        runs_of classify_mirror_handoff fp_rate --lcores 0@0,1@1,2@0 --vdev "$v1" \
            --vdev net_null0 -- --rx 0 --mirror-tx 1 --workers 1 --mbufs "$n" $r
        runs_of classify_mirror_handoff_shadow fp_rate --lcores 0@0,1@1,2@0 --vdev "$v1" \
            --vdev net_null0 -- --rx 0 --mirror-tx 1 --workers 1 --mbufs "$n" \
            --lane corp=http://127.0.0.1:9 --drain-timeout 0 $r
        runs_of 2lcores_classify_mirror fp_rate --lcores 0@0,1@0,2@1 --vdev "$v1" --vdev "$v2" \
            --vdev net_null0 -- --rx 0,1 --mirror-tx 2 --mbufs $((2 * n)) $r
        runs_of testpmd_rxonly_2cores tp_rate --lcores 0@0,1@0,2@1 --vdev "$v1" --vdev "$v2" -- \
            --nb-cores=2 --total-num-mbufs=$((2 * n + 8192))
    } >"$dir/case.txt"
    cat "$dir/case.txt"
}

report() { # title, results file
    awk -v title="$1" '
        {v[$1] = $2; order[++n] = $1}
        END {
            a = v["testpmd_rxonly"]
            printf "\n%s\n\n| run | Mpps | vs testpmd rxonly |\n|---|---|---|\n", title
            for (i = 1; i <= n; i++) {
                k = order[i]
                base = (k ~ /2cores|2lcores/) ? v["testpmd_rxonly_2cores"] : a
                r = (base > 0) ? sprintf("%.0f %%", 100 * v[k] / base) : "-"
                printf "| %s | %.2f | %s |\n", k, v[k] / 1e6, r
            }
        }' "$2"
}

echo "fast path benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $memnote"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
one_case "$dir/in.pcap" 30000 "$rules" >"$dir/realistic.txt"
report "realistic HTTP mix ($(python3 -c "import os;print(os.path.getsize('$dir/in.pcap')//1024)") KiB, 28006 packets, ~713 B average)" "$dir/realistic.txt"
one_case "$dir/tiny.pcap" 66000 "$tiny_rules" >"$dir/tiny.txt"
report "64-byte frames (4096 flows x 16 packets)" "$dir/tiny.txt"
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
