#!/bin/sh
# SPDX-License-Identifier: MIT
# Mirror benchmarks (docs/benchmarks.md "## Mirror"), one nginx (1 worker,
# access log off) on 127.0.0.1 as the lane target, all in the same run:
#  1. anchor: `dyetap record` on a generated capture (bench/gen_http_pcap.c),
#     every request colored, CPU time and wall time;
#  2. `dyetap mirror -r` on the same file without --realtime, every request
#     colored and mirrored (--allow-writes, --queue large enough for no loss):
#     mirrored requests per second and CPU seconds; loss is checked
#     (lane ok == colored, no drops);
#  3. delay: a slice of the file played with --realtime through the same
#     live path, capture timestamp of the request's last byte -> first shadow
#     byte sent, p50/p99 (mirror counters).
# Each figure is the median of RUNS. mirror runs on one core (taskset -c 0).
# Usage: bench/mirror.sh BUILD_DIR   (env: SIZE_MB=100 RT_S=10 RUNS=3)
set -eu
b=${1:-build}
dyetap=$b/cli/dyetap
SIZE_MB=${SIZE_MB:-100}
RUNS=${RUNS:-3}
[ -x "$dyetap" ] || { echo "build first: $dyetap missing"; exit 2; }
command -v nginx >/dev/null || { echo "nginx missing (tests/setup.sh)"; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'kill $(cat "$tmp/nginx.pid" 2>/dev/null) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/nginx_ok.sh"
nginx_ok_start 8192
cc -O2 -o "$tmp/gen" "$top/bench/gen_http_pcap.c"
"$tmp/gen" "$tmp/in.pcap" "$SIZE_MB" 1 >/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])" "$1" "$2"; }
# run OUT.json CMD...: wall seconds and CPU seconds of CMD appended to $tmp/wall, $tmp/cpu
run() { out=$1; shift; python3 -c 'import resource, subprocess, sys, time
t = time.time()
with open(sys.argv[1], "w") as f:
    subprocess.run(sys.argv[2:], check=True, stdout=f)
w = time.time() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%f %f" % (w, r.ru_utime + r.ru_stime))' "$out" "$@"; }
color='all=method:GET'
color2='all=method:POST'
: >"$tmp/rec"; : >"$tmp/mir"
for r in $(seq "$RUNS"); do
    run "$tmp/rec.json" taskset -c 0 "$dyetap" record -r "$tmp/in.pcap" -w "$tmp/o.dyt" \
        --color "$color" --color "$color2" --json >>"$tmp/rec"
    run "$tmp/mir.json" taskset -c 0 "$dyetap" mirror -r "$tmp/in.pcap" --color "$color" \
        --color "$color2" --lane "all=http://127.0.0.1:$port" --allow-writes \
        --queue 10000000 --json >>"$tmp/mir"
done
sessions=$(jget "$tmp/rec.json" pipe_sessions)
colored=$(jget "$tmp/mir.json" mirror_colored)
ok=$(jget "$tmp/mir.json" lane_all_ok)
drops=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sum(v for k,v in d.items() if k.startswith('lane_all_dropped_')))" "$tmp/mir.json")
rec_w=$(awk '{print $1}' "$tmp/rec" | median); rec_c=$(awk '{print $2}' "$tmp/rec" | median)
mir_w=$(awk '{print $1}' "$tmp/mir" | median); mir_c=$(awk '{print $2}' "$tmp/mir" | median)
echo "input: $SIZE_MB MB, $sessions sessions, $colored colored; last mirror run: ok $ok, drops $drops"
python3 - "$sessions" "$colored" "$rec_w" "$rec_c" "$mir_w" "$mir_c" <<'EOF3'
import sys
s, c, rw, rc, mw, mc = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:])
print("record (capture only): %.0f sessions/s wall, %.2f us CPU/session" % (s / rw, rc * 1e6 / s))
print("mirror -r (no --realtime): %.0f mirrored/s wall, %.2f us CPU/request" % (c / mw, mc * 1e6 / c))
print("ratio mirror/record (wall rate): %.2f" % ((c / mw) / (s / rw)))
EOF3
# 3. delay with --realtime: the first seconds of the capture at their recorded pace
"$tmp/gen" "$tmp/rt.pcap" 8 2 >/dev/null
: >"$tmp/p50"; : >"$tmp/p99"
for r in $(seq "$RUNS"); do
    taskset -c 0 "$dyetap" mirror -r "$tmp/rt.pcap" --realtime --color "$color" \
        --color "$color2" --lane "all=http://127.0.0.1:$port" --allow-writes --json \
        >"$tmp/rt.json"
    jget "$tmp/rt.json" mirror_delay_p50_us >>"$tmp/p50"
    jget "$tmp/rt.json" mirror_delay_p99_us >>"$tmp/p99"
done
echo "realtime: $(jget "$tmp/rt.json" mirror_colored) colored over $(python3 -c "import json;d=json.load(open('$tmp/rt.json'));print(d['lane_all_ok'])") ok; delay p50 $(median <"$tmp/p50") us, p99 $(median <"$tmp/p99") us"
