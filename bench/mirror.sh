#!/bin/sh
# SPDX-License-Identifier: MIT
# Mirror benchmarks (docs/benchmarks.md "## Mirror"), all in the same run.
# Part "file", one nginx (1 worker, access log off) on 127.0.0.1 as the lane
# target:
#  1. anchor: `dyetap record` on a generated capture (bench/gen_http_pcap.c),
#     every request colored, CPU time and wall time;
#  2. `dyetap mirror -r` on the same file without --realtime, every request
#     colored and mirrored (--allow-writes, --queue large enough for no loss):
#     mirrored requests per second and CPU seconds; loss is checked
#     (lane ok == colored, no drops);
#  3. delay: an 8 MB capture played with --realtime through the same
#     live path, capture timestamp of the request's last byte -> first shadow
#     byte sent, p50/p99 (mirror counters). Its packets are PACE (default
#     50) times further apart than the generator's 1-20 us, so that the
#     playback keeps the recorded pace (~6 s); at PACE=1 the 8 MB take
#     0.12 s, faster than a loaded core parses them, and the "delay" is the
#     playback falling behind. The wall time of each playback is printed
#     beside the capture's span.
# Each figure is the median of RUNS. mirror runs on one core (taskset -c 0).
# Part "live" (root): wrk keep-alive load on lo against a production nginx,
# a second nginx as the lane target, at several offered rates; per rate, in
# the same run and for the same DUR seconds of load: `dyetap record -i lo`
# (the anchor), `dyetap mirror -i lo` with its lane rate-limited to 1/s
# ("idle") and with its lane sending every request, each with block capture
# (the default) and with --immediate. Printed per run: offered rate (wrk),
# kernel drops / packets, complete sessions (txn_sessions_complete), gap
# sessions, shadow requests answered, delay p50/p99 (mirror counters: kernel
# capture timestamp of the request's last byte -> first shadow byte sent).
# Usage: bench/mirror.sh BUILD_DIR   (env: PARTS="file live" SIZE_MB=100
#        RUNS=3 DUR=5 RATES="10 30 max": N = N wrk connections that each
#        pause 1 ms after every answer (about N k requests/s), max = wrk -c4
#        without pauses; BLOCK_MS=N passes --block-ms N to the block runs;
#        MODES="block immediate" the live capture modes; BEFORE=DIR a
#        second build (e.g. main's) whose mirror runs beside this one's at
#        each rate, its lines labelled "before:", for before/after figures
#        from the same run)
set -eu
b=${1:-build}
dyetap=$b/cli/dyetap
SIZE_MB=${SIZE_MB:-100}
RUNS=${RUNS:-3}
PARTS=${PARTS:-file live}
DUR=${DUR:-5}
RATES=${RATES:-10 30 max}
[ -x "$dyetap" ] || { echo "build first: $dyetap missing"; exit 2; }
[ -z "${BEFORE:-}" ] || [ -x "$BEFORE/cli/dyetap" ] || { echo "BEFORE: $BEFORE/cli/dyetap missing"; exit 2; }
command -v nginx >/dev/null || { echo "nginx missing (tests/setup.sh)"; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
tmp0=$tmp
trap 'for d in "$tmp0" "$tmp0/lane"; do kill $(cat "$d/nginx.pid" 2>/dev/null) 2>/dev/null; done; rm -rf "$tmp0"' EXIT
. "$(dirname "$0")/nginx_ok.sh"
nginx_ok_start 8192
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])" "$1" "$2"; }
part_file() {
cc -O2 -o "$tmp/gen" "$top/bench/gen_http_pcap.c"
"$tmp/gen" "$tmp/in.pcap" "$SIZE_MB" 1 >/dev/null
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
PACE=${PACE:-50}
"$tmp/gen" "$tmp/rt.pcap" 8 2 "$PACE" >/dev/null
span=$(python3 -c 'import struct,sys
d = open(sys.argv[1], "rb").read()
off, ts = 24, []
while off + 16 <= len(d):
    s, us, n, _ = struct.unpack_from("<IIII", d, off)
    ts.append(s + us / 1e6)
    off += 16 + n
print("%.2f" % (ts[-1] - ts[0]))' "$tmp/rt.pcap")
for which in ${BEFORE:+before} this; do
bin=$dyetap; pre=
[ $which = before ] && { bin=$BEFORE/cli/dyetap; pre="before: "; }
: >"$tmp/p50"; : >"$tmp/p99"; : >"$tmp/rtw"
for r in $(seq "$RUNS"); do
    run "$tmp/rt.json" taskset -c 0 "$bin" mirror -r "$tmp/rt.pcap" --realtime \
        --color "$color" --color "$color2" --lane "all=http://127.0.0.1:$port" --allow-writes \
        --json | awk '{print $1}' >>"$tmp/rtw"
    jget "$tmp/rt.json" mirror_delay_p50_us >>"$tmp/p50"
    jget "$tmp/rt.json" mirror_delay_p99_us >>"$tmp/p99"
done
echo "${pre}realtime (PACE $PACE, capture span $span s, playback $(median <"$tmp/rtw") s wall): $(jget "$tmp/rt.json" mirror_colored) colored over $(python3 -c "import json;d=json.load(open('$tmp/rt.json'));print(d['lane_all_ok'])") ok; delay p50 $(median <"$tmp/p50") us, p99 $(median <"$tmp/p99") us"
done
}

# live LABEL CMD...: run a capture on lo for DUR+2 s with wrk load in the middle
live_run() {
    label=$1; shift
    "$@" >"$tmp/live.json" 2>"$tmp/live.err" &
    cap=$!
    sleep 1
    if [ "$rate" = max ]; then
        wrk -t1 -c4 -d"${DUR}s" "$url/" >"$tmp/wrk.out"
    else
        # conns connections, each waiting 1 ms after each answer: ~conns k/s
        DELAY_MS=1 wrk -t1 -c"$rate" -d"${DUR}s" -s "$tmp/pace.lua" "$url/" >"$tmp/wrk.out"
    fi
    wait $cap || { echo "$label failed:"; cat "$tmp/live.err"; return 1; }
    /usr/bin/python3 - "$label" "$tmp/live.json" "$tmp/wrk.out" "$DUR" <<'EOF4'
import json, re, sys
label, jf, wf, dur = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
d = json.load(open(jf))
w = open(wf).read()
n = int(re.search(r"(\d+) requests in", w).group(1))
g = lambda k: d.get(k, 0)
out = "%-30s offered %6.0f req/s (%d)  kernel drops %d of %d  complete %d  gap %d" % (
    label, n / dur, n, g("src_kernel_drops"), g("src_kernel_received"),
    g("txn_sessions_complete"), g("txn_gap_sessions"))
if "mirror_colored" in d:
    ok = sum(v for k, v in d.items() if k.startswith("lane_") and k.endswith("_ok"))
    qf = sum(v for k, v in d.items() if k.startswith("lane_") and k.endswith("_dropped_queue_full"))
    out += "  shadow ok %d  delay p50 %s p99 %s us  queue_full %d (sender queue %s)" % (
        ok, g("mirror_delay_p50_us"), g("mirror_delay_p99_us"), qf,
        d.get("mirror_sender_queue_full", "-"))
print(out)
EOF4
}

part_live() {
    [ "$(id -u)" = 0 ] || { echo "live part: needs root, skipped"; return 0; }
    command -v wrk >/dev/null || { echo "live part: wrk missing (tests/setup.sh)"; return 0; }
    prod_port=$port
    mkdir -p "$tmp0/lane"
    tmp=$tmp0/lane
    nginx_ok_start 8192
    lane_url=$url
    port=$prod_port; url=http://127.0.0.1:$prod_port
    tmp=$tmp0
    cat >"$tmp/pace.lua" <<'EOF5'
local d = tonumber(os.getenv("DELAY_MS") or "1")
function delay() return d end
EOF5
    filter="tcp port $prod_port"
    cap_s=$((DUR + 2))
    col='all=method:GET'
    for r in $(seq "$RUNS"); do
        for rate in $RATES; do
            echo "-- run $r, rate ${rate}k, load average $(cut -d' ' -f1-3 /proc/loadavg)"
            live_run "record -i" "$dyetap" record -i lo -w "$tmp/live.dyt" \
                --duration "$cap_s" --json $filter
            for mode in ${MODES:-block immediate}; do
                imm=${BLOCK_MS:+--block-ms $BLOCK_MS}; [ $mode = immediate ] && imm=--immediate
                for which in ${BEFORE:+before} this; do
                    bin=$dyetap; pre=
                    [ $which = before ] && { bin=$BEFORE/cli/dyetap; pre="before: "; }
                    live_run "${pre}mirror $mode, idle" "$bin" mirror -i lo $imm --color "$col" \
                        --lane "all=$lane_url" --lane-rate all=1/s --duration "$cap_s" --json $filter
                    live_run "${pre}mirror $mode, sending" "$bin" mirror -i lo $imm --color "$col" \
                        --lane "all=$lane_url" --duration "$cap_s" --json $filter
                done
            done
        done
    done
}

for part in $PARTS; do
    case $part in
    file) part_file ;;
    live) part_live ;;
    *) echo "unknown part $part (file, live)"; exit 2 ;;
    esac
done
