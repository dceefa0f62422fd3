#!/bin/sh
# SPDX-License-Identifier: MIT
# Replay benchmarks (docs/benchmarks.md "## Replay"), all against one nginx
# (1 worker, access log off) on 127.0.0.1 in the same run:
#  1. throughput: `dyetap replay --max` with C recorded connections vs
#     `wrk -c C -t1` on the same nginx, RUNS alternating pairs (wrk, then
#     replay): per-pair wall ratio, client CPU (user+sys) per request of
#     each and their ratio, the load average at each pair; medians;
#  2. pacing: a recording at 10 000 req/s replayed at 1x, lateness p99
#     (PACE_RT=1 also runs it with replay and the nginx worker under
#     SCHED_FIFO (`chrt -f 10`, needs root or CAP_SYS_NICE; the worker is
#     set back to SCHED_OTHER after each run): that separates the engine's
#     own precision from run-queue waits caused by other tenants);
#  3. memory: RSS of a longer paced replay, sampled at start and end;
#  1b (after 1): causal order against pace, see below.
# Usage: bench/replay.sh BUILD_DIR
#   (env: C=50 REQS=200000 RUNS=3 MEM_S=60 (600 = 10 min) PACE_RT=0
#    ORDER_ONLY=1: stop after 1b)
set -eu
b=${1:-build}
dyetap=$b/cli/dyetap
tool=$b/tests/replay/replay_testtool
C=${C:-50}
REQS=${REQS:-200000}
RUNS=${RUNS:-3}
MEM_S=${MEM_S:-60}
PACE_RT=${PACE_RT:-0}
for x in "$dyetap" "$tool"; do [ -x "$x" ] || { echo "build first: $x missing"; exit 2; }; done
command -v wrk >/dev/null || { echo "wrk missing (tests/setup.sh --with-bench)"; exit 2; }
tmp=$(mktemp -d)
trap 'kill $(cat "$tmp/nginx.pid" 2>/dev/null) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/nginx_ok.sh"
nginx_ok_start 4096

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d'+sys.argv[1]))" "$1"; }

# 1. throughput: C connections, REQS/C requests each, 10 us apart (irrelevant under --max).
per=$((REQS / C))
awk -v c="$C" -v n="$per" 'BEGIN { for (i = 0; i < n; i++) for (k = 1; k <= c; k++)
    printf "%d\t%.3f\tGET\t/r/%d\t-\t-\t-\t-\n", k, (i * c + k) * 0.01, i }' |
    "$tool" mkrec "$tmp/tput.dyt"
: >"$tmp/wrk" ; : >"$tmp/rep"; : >"$tmp/wrkcpu"; : >"$tmp/repcpu"; : >"$tmp/ratio"; : >"$tmp/cpuratio"
# cpu SECONDS_FILE CMD...: run CMD, append its user+system CPU seconds to SECONDS_FILE.
cpu() { f=$1; shift; python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[2:], check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "a").write("%f\n" % (r.ru_utime + r.ru_stime))' "$f" "$@"; }
for r in $(seq "$RUNS"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    cpu "$tmp/wrkcpu" wrk -c "$C" -t1 -d 5s "$url/r/1" >"$tmp/wrk.out"
    awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out" >>"$tmp/wrk"
    n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
    s=$(tail -n 1 "$tmp/wrkcpu")
    python3 -c "print('%.2f' % ($s * 1e6 / $n))" >>"$tmp/wrkus"
    cpu "$tmp/repcpu" "$dyetap" replay "$tmp/tput.dyt" --target "$url" -o "$tmp/res.dyt" --max \
        -c "$C" --json -q >"$tmp/rep.json"
    jget "['achieved_rps']" <"$tmp/rep.json" >>"$tmp/rep"
    s=$(tail -n 1 "$tmp/repcpu")
    python3 -c "print('%.2f' % ($s * 1e6 / $REQS))" >>"$tmp/repus"
    w=$(tail -n 1 "$tmp/wrk"); x=$(tail -n 1 "$tmp/rep")
    wu=$(tail -n 1 "$tmp/wrkus"); xu=$(tail -n 1 "$tmp/repus")
    python3 -c "print('%.3f' % ($x / $w))" >>"$tmp/ratio"
    python3 -c "print('%.3f' % ($xu / $wu))" >>"$tmp/cpuratio"
    echo "pair $r (load $load): wrk $w req/s $wu us/req; replay $x req/s $xu us/req;" \
        "wall ratio $(tail -n 1 "$tmp/ratio"), CPU per request ratio $(tail -n 1 "$tmp/cpuratio")," \
        "write_stalls $(jget ".get('counters', {}).get('write_stalls', '-')" <"$tmp/rep.json")"
done
wrk_rps=$(median <"$tmp/wrk")
rep_rps=$(median <"$tmp/rep")
echo "throughput C=$C: wrk -c $C -t1 median $wrk_rps req/s (runs: $(tr '\n' ' ' <"$tmp/wrk"))"
echo "throughput C=$C: dyetap replay --max median $rep_rps req/s (runs: $(tr '\n' ' ' <"$tmp/rep"))"
python3 -c "print('throughput ratio replay/wrk: %.2f of the medians;' % ($rep_rps / $wrk_rps))"
echo "per-pair wall ratios: $(tr '\n' ' ' <"$tmp/ratio") median $(median <"$tmp/ratio")"
echo "per-pair CPU-per-request ratios (replay/wrk): $(tr '\n' ' ' <"$tmp/cpuratio")" \
    "median $(median <"$tmp/cpuratio")"
echo "client CPU per request (user+sys): wrk median $(median <"$tmp/wrkus") us," \
    "dyetap replay median $(median <"$tmp/repus") us (incl. reading the recording and" \
    "writing the results store)"

# 1b. causal order: the same recording (no writes) at --max, --order pace,
# causal and strict alternated RUNS times; then with 1 request in 10 a PUT
# (nginx's `return 200` answers it as it answers a GET) in pace and causal order.
# Medians; causal/pace is the cost of causal order on a recording
# without writes (target <= 5 %). strict orders every request after the
# ones that ended before it started (the recording's responses end 1 ms
# after their requests start), so it shows the cost of the bookkeeping
# plus the waits a full happens-before imposes.
awk -v c="$C" -v n="$per" 'BEGIN { for (i = 0; i < n; i++) for (k = 1; k <= c; k++)
    printf "%d\t%.3f\t%s\t/r/%d\t-\t-\t-\t-\n", k, (i * c + k) * 0.01,
        ((i * c + k) % 10 == 0) ? "PUT" : "GET", i }' |
    "$tool" mkrec "$tmp/writes.dyt"
for o in pace causal strict wpace wcausal; do : >"$tmp/ord_$o"; : >"$tmp/cpu_$o"; : >"$tmp/us_$o"; done
: >"$tmp/r_causal"; : >"$tmp/r_strict"; : >"$tmp/r_wcausal"; : >"$tmp/c_causal"; : >"$tmp/c_wcausal"
for r in $(seq "$RUNS"); do
    line="order run $r (load $(cut -d' ' -f1 /proc/loadavg)):"
    for o in pace causal strict wpace wcausal; do
        case $o in
        w*) rec=$tmp/writes.dyt ord=${o#w} extra=--allow-writes ;;
        *) rec=$tmp/tput.dyt ord=$o extra= ;;
        esac
        cpu "$tmp/cpu_$o" "$dyetap" replay "$rec" --target "$url" -o "$tmp/res.dyt" --max -c "$C" \
            --order "$ord" $extra --json -q >"$tmp/ord.json"
        jget "['achieved_rps']" <"$tmp/ord.json" >>"$tmp/ord_$o"
        python3 -c "print('%.3f' % ($(tail -n 1 "$tmp/cpu_$o") * 1e6 / $REQS))" >>"$tmp/us_$o"
        line="$line $o $(tail -n 1 "$tmp/ord_$o") req/s $(tail -n 1 "$tmp/us_$o") us/req (waited $(jget "['causal_delay_ms']['waited']" <"$tmp/ord.json"));"
    done
    ratio() { python3 -c "print('%.3f' % ($(tail -n 1 "$tmp/$1") / $(tail -n 1 "$tmp/$2")))"; }
    ratio ord_causal ord_pace >>"$tmp/r_causal"; ratio ord_strict ord_pace >>"$tmp/r_strict"
    ratio ord_wcausal ord_wpace >>"$tmp/r_wcausal"
    ratio us_causal us_pace >>"$tmp/c_causal"; ratio us_wcausal us_wpace >>"$tmp/c_wcausal"
    echo "$line"
done
op=$(median <"$tmp/ord_pace"); oc=$(median <"$tmp/ord_causal"); os_=$(median <"$tmp/ord_strict")
owp=$(median <"$tmp/ord_wpace"); owc=$(median <"$tmp/ord_wcausal")
echo "causal order, no writes, --max C=$C: req/s medians pace $op, causal $oc, strict $os_;" \
    "CPU us/req medians pace $(median <"$tmp/us_pace"), causal $(median <"$tmp/us_causal")," \
    "strict $(median <"$tmp/us_strict")"
echo "causal/pace per run (wall): $(tr '\n' ' ' <"$tmp/r_causal") median $(median <"$tmp/r_causal");" \
    "CPU per request: $(tr '\n' ' ' <"$tmp/c_causal") median $(median <"$tmp/c_causal")"
echo "strict/pace per run (wall): $(tr '\n' ' ' <"$tmp/r_strict") median $(median <"$tmp/r_strict")"
echo "causal order, 1 in 10 a PUT: req/s medians pace $owp, causal $owc; causal/pace per run" \
    "$(tr '\n' ' ' <"$tmp/r_wcausal") median $(median <"$tmp/r_wcausal"); CPU per request" \
    "median $(median <"$tmp/c_wcausal")"
[ "${ORDER_ONLY:-0}" = 1 ] && exit 0

# 2. pacing: 10 000 req/s for 5 s over 100 connections, replayed at 1x.
awk 'BEGIN { for (i = 0; i < 50000; i++)
    printf "%d\t%.3f\tGET\t/p/%d\t-\t-\t-\t-\n", i % 100 + 1, i * 0.1, i }' |
    "$tool" mkrec "$tmp/pace.dyt"
: >"$tmp/late"; : >"$tmp/freelate"; : >"$tmp/rtlate"
rt=""
[ "$PACE_RT" = 1 ] && rt="chrt -f 10"
for r in $(seq "$RUNS"); do
    "$dyetap" replay "$tmp/pace.dyt" --target "$url" -o "$tmp/res.dyt" -c 200 --json -q \
        >"$tmp/pace.json"
    if [ -n "$rt" ]; then
        workers=$(pgrep -P "$(cat "$tmp/nginx.pid")")
        for w in $workers; do chrt -f -p 10 "$w"; done
        $rt "$dyetap" replay "$tmp/pace.dyt" --target "$url" -o "$tmp/rtres.dyt" -c 200 \
            --json -q >"$tmp/rtpace.json"
        for w in $workers; do chrt -o -p 0 "$w"; done
        jget "['lateness_ms']['p99']" <"$tmp/rtpace.json" >>"$tmp/rtlate"
        echo "pacing run $r under chrt -f 10: lateness p50" \
            "$(jget "['lateness_ms']['p50']" <"$tmp/rtpace.json") ms" \
            "p99 $(jget "['lateness_ms']['p99']" <"$tmp/rtpace.json") ms"
    fi
    jget "['lateness_ms']['p99']" <"$tmp/pace.json" >>"$tmp/late"
    # Lateness of the requests whose connection was free at their due time:
    # the pacing engine's own precision, without waiting for a slow response.
    "$tool" dump "$tmp/res.dyt" | python3 -c '
import json, sys
sess, res = {}, []
for line in sys.stdin:
    o = json.loads(line)
    if "session" in o:
        sess[o["session"]["id"]] = o["session"]["conn_id"]
    elif "result" in o:
        res.append(o["result"])
last_end, free = {}, []
for r in sorted(res, key=lambda r: r["ts_sent_ns"] - r["lateness_ns"]):
    c = sess[r["session_id"]]
    due = r["ts_sent_ns"] - r["lateness_ns"]
    if last_end.get(c, 0) <= due:
        free.append(r["lateness_ns"])
    last_end[c] = r["ts_sent_ns"] + r["latency_ns"]
free.sort()
p = lambda q: free[min(len(free) - 1, int(q * len(free)))] / 1e6
print("%.3f %.3f %d" % (p(0.5), p(0.99), len(free)))' >"$tmp/free"
    echo "pacing run $r: connection-free requests $(cut -d' ' -f3 "$tmp/free"):" \
        "lateness p50 $(cut -d' ' -f1 "$tmp/free") ms p99 $(cut -d' ' -f2 "$tmp/free") ms"
    cut -d' ' -f2 "$tmp/free" >>"$tmp/freelate"
    echo "pacing run $r (load $(cut -d' ' -f1 /proc/loadavg)): sent $(jget "['sent']" <"$tmp/pace.json")," \
        "achieved $(jget "['achieved_rps']" <"$tmp/pace.json") req/s," \
        "lateness p50 $(jget "['lateness_ms']['p50']" <"$tmp/pace.json") ms" \
        "p99 $(jget "['lateness_ms']['p99']" <"$tmp/pace.json") ms"
done
echo "pacing 10k req/s at 1x: lateness p99 median $(median <"$tmp/late") ms;" \
    "connection-free requests p99 median $(median <"$tmp/freelate") ms"
[ -z "$rt" ] || echo "pacing under chrt -f 10: lateness p99 median $(median <"$tmp/rtlate") ms" \
    "(runs: $(tr '\n' ' ' <"$tmp/rtlate"))"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

# 3. memory: the pacing recording looped at 10 000 req/s for MEM_S seconds (0 skips).
[ "$MEM_S" -gt 4 ] || exit 0
"$dyetap" replay "$tmp/pace.dyt" --target "$url" -o "$tmp/mem.dyt" -c 200 --loop 0 \
    --duration "${MEM_S}s" --json -q >"$tmp/mem.json" &
pid=$!
sleep 2
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
series="2s:$rss0"
t=2
while [ $((t + 60)) -lt "$MEM_S" ]; do
    sleep 60
    t=$((t + 60))
    series="$series ${t}s:$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
done
sleep $((MEM_S - 2 - t))
rss1=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
series="$series $((MEM_S - 2))s:$rss1"
wait $pid
echo "memory over ${MEM_S}s at 10k req/s: RSS ${rss0} KiB at 2 s, ${rss1} KiB at $((MEM_S - 2)) s;" \
    "sent $(jget "['sent']" <"$tmp/mem.json"), results file $(du -k "$tmp/mem.dyt" | cut -f1) KiB"
echo "RSS KiB series: $series"
