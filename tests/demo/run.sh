#!/bin/sh
# SPDX-License-Identifier: MIT
# dyetap's main job end to end on the bundled demo shop:
#   1. set up packages and build (release build in build-demo/)
#   2. start the demo shop on loopback: production (baseline build),
#      candidate (with planted changes) and a second baseline (secondary)
#   3. drive real keep-alive traffic at production with a real HTTP client
#      while tcpdump captures it on lo (root); without root, use the bundled
#      capture tests/demo/demo.pcap instead
#   4. dyetap record  -> demo-out/recording.dyt   (colored lane "blue")
#   5. dyetap replay  -> demo-out/results.dyt     (candidate + secondary)
#   6. dyetap diff    -> demo-out/report.html, report.json, junit.xml
# Prints where the report is. Exit code: that of `dyetap diff` (1 = the
# gate found behavior changes, which the demo candidate has on purpose).
# Usage: tests/demo/run.sh [OUT_DIR]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
out=${1:-demo-out}
sh tests/setup.sh
if [ ! -d build-demo ]; then
    meson setup build-demo -Dbuildtype=release >/dev/null
fi
meson compile -C build-demo >/dev/null
dy=$top/build-demo/cli/dyetap
mkdir -p "$out"
out=$(cd "$out" && pwd)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 50); do
        python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return 0
        sleep 0.1
    done
    echo "demo: service on port $1 did not start" >&2
    return 1
}

pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

p_prod=$(free_port); p_cand=$(free_port); p_sec=$(free_port)
python3 tests/demo/service.py --build baseline --port "$p_prod" >/dev/null & pids="$pids $!"
python3 tests/demo/service.py --build candidate --port "$p_cand" >/dev/null & pids="$pids $!"
python3 tests/demo/service.py --build baseline --port "$p_sec" >/dev/null & pids="$pids $!"
wait_port "$p_prod"; wait_port "$p_cand"; wait_port "$p_sec"
echo "demo: production :$p_prod  candidate :$p_cand  secondary :$p_sec (127.0.0.1)"

pcap=$out/capture.pcap
if [ "$(id -u)" -eq 0 ] && command -v tcpdump >/dev/null; then
    tcpdump -i lo --immediate-mode -U -s 0 -w "$pcap" "tcp port $p_prod" 2>"$out/tcpdump.log" & tpid=$!
    sleep 1
    python3 tests/demo/client.py --port "$p_prod" --connections 6 --requests 40
    sleep 1   # let tcpdump drain the kernel buffer before it is stopped
    kill -INT "$tpid"; wait "$tpid" || true
    tail -n 3 "$out/tcpdump.log"
else
    echo "demo: not root, using the bundled capture tests/demo/demo.pcap"
    cp tests/demo/demo.pcap "$pcap"
fi

echo "demo: 1/3 record"
"$dy" record -r "$pcap" -w "$out/recording.dyt" --color 'blue=header:x-lane=blue' --stats
"$dy" info "$out/recording.dyt"
echo "demo: 2/3 replay against the candidate (and the baseline as secondary)"
"$dy" replay "$out/recording.dyt" --target "http://127.0.0.1:$p_cand" \
    --baseline "http://127.0.0.1:$p_sec" --speed 4x -o "$out/results.dyt"
echo "demo: 3/3 diff"
set +e
"$dy" diff "$out/results.dyt" --rules tests/demo/diff-rules.txt --html "$out/report.html" \
    --json "$out/report.json" --junit "$out/junit.xml" --fail-on 'status_changes>0'
rc=$?
set -e
echo "demo: report: $out/report.html (also report.json, junit.xml)"
exit $rc
