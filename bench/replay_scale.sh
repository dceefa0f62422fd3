#!/bin/sh
# SPDX-License-Identifier: MIT
# Replay at scale (docs/benchmarks.md "Replay", "At scale"): N sessions
# replayed with `dyetap replay --max --loop` to one nginx (1 worker, access
# log off, `return 200 "ok\n"`) on 127.0.0.1, then the results file read by
# `dyetap diff`. Shows that replay's memory stays flat however long it runs
# (the results writer spills its frame index to a temporary file) and that
# diff compares every pair of a file that large in bounded memory.
#  1. a recording of PER sessions on C recorded connections
#     (`replay_testtool mkrec`), replayed N / PER times (`--loop`) at --max;
#  2. replay's RSS (VmRSS from /proc) and the results file's size sampled
#     every SAMPLE_S seconds from start to end, with the load average;
#  3. `dyetap info` on the results (records, sessions, results), then
#     `dyetap diff` on it, its RSS sampled the same way and its peak
#     (VmHWM), with the pairs it compared.
# Everything runs under `nice -n NICE` (a shared machine).
# Usage: bench/replay_scale.sh BUILD_DIR
#   (env: N=10000000 PER=100000 C=50 SAMPLE_S=5 NICE=10 KEEP=DIR: keep the
#    results file and the samples in DIR; DURATION=40m: also stop queueing
#    after that long (`--duration`), for a machine too busy to finish N)
set -eu
b=${1:-build}
dyetap=$b/cli/dyetap
tool=$b/tests/replay/replay_testtool
N=${N:-10000000}
PER=${PER:-100000}
C=${C:-50}
SAMPLE_S=${SAMPLE_S:-5}
NICE=${NICE:-10}
DURATION=${DURATION:-}
for x in "$dyetap" "$tool"; do [ -x "$x" ] || { echo "build first: $x missing"; exit 2; }; done
[ "$PER" -le "$N" ] || PER=$N
loops=$((N / PER))
[ $((loops * PER)) -eq "$N" ] || { echo "N must be a multiple of PER ($PER)"; exit 2; }
tmp=$(mktemp -d)
trap 'kill $(cat "$tmp/nginx.pid" 2>/dev/null) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/nginx_ok.sh"
nginx_ok_start 4096
out=${KEEP:-$tmp}
mkdir -p "$out"

# sample PID FILE SERIES: every SAMPLE_S s until PID ends, append
# "elapsed_s rss_kib hwm_kib file_bytes load1" to SERIES (FILE or FILE.partial).
sample() {
    pid=$1 f=$2 series=$3 ts0=$(date +%s.%N)
    : >"$series"
    while kill -0 "$pid" 2>/dev/null; do
        st=$(awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {print r+0, h+0}' "/proc/$pid/status" \
            2>/dev/null) || break
        [ -n "$st" ] && [ "$st" != "0 0" ] || break
        sz=$(stat -c %s "$f.partial" 2>/dev/null || stat -c %s "$f" 2>/dev/null || echo 0)
        echo "$(python3 -c "import time; print('%.1f' % (time.time() - $ts0))") $st $sz" \
            "$(cut -d' ' -f1 /proc/loadavg)" >>"$series"
        sleep "$SAMPLE_S"
    done
}

# summarize SERIES WHAT: RSS at 10 %, 50 %, 100 % of the run, the peak, last/first.
summarize() {
    python3 - "$1" "$2" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
# from the first sample with results written (the replay's read of its
# input and the diff's start are not the steady state)
while len(rows) > 1 and int(rows[0][3]) == 0 and sys.argv[2].startswith("replay"):
    rows.pop(0)
if not rows:
    print("%s: no samples" % sys.argv[2]); sys.exit(0)
t = [float(r[0]) for r in rows]; rss = [int(r[1]) for r in rows]
hwm = max(int(r[2]) for r in rows); load = [float(r[4]) for r in rows]
def at(frac):
    want = t[-1] * frac
    i = min(range(len(t)), key=lambda k: abs(t[k] - want))
    return rss[i] / 1024.0, t[i]
a, b_, c = at(0.1), at(0.5), at(1.0)
print("%s: %d samples over %.0f s; RSS MiB at 10 %% %.1f (%.0f s), 50 %% %.1f (%.0f s),"
      " 100 %% %.1f (%.0f s); peak (VmHWM) %.1f MiB; last/first sample %.3f"
      " (first %.1f MiB at %.0f s); load average %.1f-%.1f"
      % (sys.argv[2], len(t), t[-1], a[0], a[1], b_[0], b_[1], c[0], c[1], hwm / 1024.0,
         rss[-1] / rss[0], rss[0] / 1024.0, t[0], min(load), max(load)))
EOF
}

echo "replay at scale: N=$N sessions ($PER recorded x --loop $loops), C=$C," \
    "nice $NICE, load average $(cut -d' ' -f1-3 /proc/loadavg)"
per=$((PER / C))
awk -v c="$C" -v n="$per" 'BEGIN { for (i = 0; i < n; i++) for (k = 1; k <= c; k++)
    printf "%d\t%.3f\tGET\t/r/%d\t-\t-\t-\t-\n", k, (i * c + k) * 0.01, i }' |
    "$tool" mkrec "$tmp/rec.dyt"
res=$out/scale-results.dyt
t0=$(date +%s)
nice -n "$NICE" "$dyetap" replay "$tmp/rec.dyt" --target "$url" -o "$res" --max \
    --loop "$loops" -c "$C" ${DURATION:+--duration "$DURATION"} --json -q >"$out/replay.json" &
pid=$!
sample "$pid" "$res" "$out/replay.rss"
wait "$pid"
t1=$(date +%s)
python3 - "$out/replay.json" "$((t1 - t0))" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["counters"]
print("replay: %d s wall, sent %d, ok %d, errors %d, %.0f req/s; queue wait ms p50 %.3f p99 %.3f"
      " (pace %s); write_stalls %d, lost %d"
      % (int(sys.argv[2]), d["sent"], d["ok"], d["errors"]["total"], d["achieved_rps"],
         d["lateness_ms"]["p50"], d["lateness_ms"]["p99"], d["pace"], c.get("write_stalls", -1),
         d["lost"]))
EOF
summarize "$out/replay.rss" "replay RSS"
sent=$(python3 -c "import json; print(json.load(open('$out/replay.json'))['sent'])")
echo "results file: $(stat -c %s "$res") bytes ($(python3 -c \
    "print('%.1f' % ($(stat -c %s "$res") / max($sent, 1)))") B per session replayed)"
nice -n "$NICE" "$dyetap" info "$res" >"$out/info.txt"
grep -E '^(records|frames|bytes):' "$out/info.txt"

t0=$(date +%s)
nice -n "$NICE" "$dyetap" diff "$res" --json "$out/report.json" --quiet &
pid=$!
sample "$pid" "$res" "$out/diff.rss"
rc=0
wait "$pid" || rc=$?
t1=$(date +%s)
echo "diff: exit $rc, $((t1 - t0)) s wall, load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out/report.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]
print("diff: results %d, compared %d, differing %d, replay_errors %d, unreplayed %d,"
      " over_memcap %d, data_incomplete %s"
      % (s["results"], s["compared"], s["differing"], s["replay_errors"], s["unreplayed"],
         s["over_memcap"], d["data_incomplete"]))
EOF
summarize "$out/diff.rss" "diff RSS"
