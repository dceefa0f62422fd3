#!/bin/sh
# SPDX-License-Identifier: MIT
# Live capture test: `dyetap record -i lo` while curl talks to
# python3 -m http.server on 127.0.0.1 (a free port); every request must be
# recorded, and stopping with SIGINT must leave a complete file.
# Usage: record_live.sh DYETAP   (TAP output; skips without root or tools)
dyetap=$1
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP live capture needs root"; exit 0; }
for t in curl python3; do
    command -v $t >/dev/null || { echo "1..0 # SKIP $t not installed"; exit 0; }
done
tmp=$(mktemp -d)
srv=""
rec=""
cleanup() {
    [ -n "$rec" ] && kill "$rec" 2>/dev/null
    [ -n "$srv" ] && kill "$srv" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir "$tmp/www"
echo "hello from the live test" >"$tmp/www/index.txt"
head -c 200000 /dev/urandom | base64 >"$tmp/www/big.txt"
(cd "$tmp/www" && exec python3 -m http.server --bind 127.0.0.1 "$port") >/dev/null 2>&1 &
srv=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$port/index.txt"; do
    i=$((i + 1)); [ $i -lt 50 ] || { echo "1..0 # SKIP http.server did not start"; exit 0; }
    sleep 0.1
done

"$dyetap" record -i lo "tcp port $port" -w "$tmp/live.dyt" --color 'blue=header:x-lane=blue' \
    --json >"$tmp/counters.json" 2>"$tmp/err.txt" &
rec=$!
sleep 1.5 # let the capture start

reqs=0
for k in 1 2 3 4 5 6 7 8 9 10; do
    curl -s -o /dev/null "http://127.0.0.1:$port/index.txt?k=$k" && reqs=$((reqs + 1))
done
for k in 1 2 3 4 5; do
    curl -s -o /dev/null -H 'x-lane: blue' "http://127.0.0.1:$port/big.txt?k=$k" && reqs=$((reqs + 1))
done
curl -s -o /dev/null -X POST --data 'a=1&b=2' "http://127.0.0.1:$port/nothing" && reqs=$((reqs + 1))
sleep 1 # let the last packets reach the capture

kill -INT "$rec"
wait "$rec"
rc=$?
rec=""
ok $rc "record exits 0 after SIGINT (rc $rc)"
[ $rc = 0 ] || cat "$tmp/err.txt" | sed 's/^/# /'

get() { tr ',{}' '\n\n\n' <"$tmp/counters.json" | awk -F: -v k="\"$1\"" '$1 == k {print $2}'; }
written=$(get pipe_written)
ok $([ "$written" = "$reqs" ]; echo $?) "every request recorded ($written of $reqs)"
blue=$(get lane_blue_sessions)
ok $([ "$blue" = 5 ]; echo $?) "five blue sessions ($blue)"
ok $([ "$(get reasm_gaps)" = 0 ]; echo $?) "no gaps"
ok $([ "$(get txn_sessions_complete)" = "$reqs" ]; echo $?) "all sessions complete ($(get txn_sessions_complete))"
ok $([ "$(get src_kernel_drops)" = 0 ]; echo $?) "no kernel drops"

"$dyetap" cat --json "$tmp/live.dyt" >"$tmp/cat.txt" 2>"$tmp/caterr.txt"
ok $? "the file reads back (dyetap cat)"
lines=$(grep -c '"request"' "$tmp/cat.txt")
ok $([ "$lines" = "$reqs" ]; echo $?) "cat shows $lines sessions"
ok $(grep -q '/big.txt?k=5' "$tmp/cat.txt"; echo $?) "last big request present"
ok $(grep -q '"lane":"blue"' "$tmp/cat.txt"; echo $?) "lane recorded"
"$dyetap" info "$tmp/live.dyt" >"$tmp/info.txt" 2>&1
ok $? "dyetap info reads the file"
ok $(grep -qi 'cut\|damag' "$tmp/info.txt" && grep -qiE 'cut: *(yes|true)' "$tmp/info.txt"; [ $? != 0 ]; echo $?) "file not cut"
echo "1..$n"
exit $fail
