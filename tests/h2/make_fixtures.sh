#!/bin/sh
# SPDX-License-Identifier: MIT
# Captures the HTTP/2 fixtures of tests/h2 from real software on loopback
# (needs root for tcpdump; packages from tests/setup.sh):
#   nghttp.pcap   nghttpd (--no-tls, --trailer) and nghttp: prior knowledge
#                 with several streams on one connection, a POST with a
#                 request trailer
#   upgrade.pcap  Upgrade: h2c from nghttp -u and curl --http2 to nghttpx
#                 (no-tls frontend) in front of python3 -m http.server
#   h2load.pcap   h2load -n 60 -c 2 -m 8 against nghttpd (prior knowledge)
#   grpc.pcap     grpc_shop.py: 30 GetItem calls to the baseline service,
#                 x-lane: blue on every 2nd
#   grpc-parallel.pcap  12 calls in batches of 3 concurrent ones
#   grpc-watch.pcap     a server-streaming Watch the client cancels after
#                 2 items (RST_STREAM CANCEL), then 3 GetItem calls with
#                 a 3 s deadline on the same connection
#   grpc-batch.pcap  one bidirectional-streaming Batch call: 20 requests
#                 (ids 1..20) in one stream, an item answered for each
#   grpc-watch-early.pcap  a Watch the client cancels after 0.3 s, before
#                 any response (the server's first item comes after 1 s),
#                 then the same 3 calls
#   grpc-gzip.pcap  20 GetItem calls with gzip message compression on the
#                 channel and the server (grpcio compresses the responses,
#                 their names made 20 times longer; the 7-byte requests are
#                 sent uncompressed: compressing would not make them smaller)
#   grpc-deadline.pcap  6 GetItem calls (ids 1..6), each with a deadline of
#                 0.5 s (grpc-timeout), all answered in time
# Usage: tests/h2/make_fixtures.sh OUTDIR [PORT_BASE]
# Ports PORT_BASE .. +6 (default 18480) must be free.
set -eu
out=$1
base=${2:-18480}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
work=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Documents nghttpd serves.
mkdir -p "$work/htdocs"
printf '<html><body>dyetap h2 test</body></html>\n' > "$work/htdocs/index.html"
printf '{"id": 1, "name": "first", "tags": ["a", "b"]}\n' > "$work/htdocs/a.json"
head -c 40000 /dev/zero | tr '\0' 'x' > "$work/htdocs/big.txt"
printf 'upload body\n' > "$work/upload.txt"

capture() { # FILE PORT: tcpdump on lo for one port, in the background
    : > "$work/tcpdump.log"
    tcpdump -i lo -U -s 0 -w "$1" "tcp port $2" >/dev/null 2>"$work/tcpdump.log" &
    tpid=$!
    pids="$pids $tpid"
    for _ in $(seq 50); do grep -q listening "$work/tcpdump.log" && break; sleep 0.1; done
    sleep 0.5
}
stop_capture() {
    sleep 1
    kill -INT "$tpid"
    wait "$tpid" 2>/dev/null || true
}

# --- nghttp against nghttpd ---
p1=$base
nghttpd --no-tls -d "$work/htdocs" --trailer 'x-server-trailer: done' "$p1" >/dev/null 2>&1 &
pids="$pids $!"
sleep 1
capture "$out/nghttp.pcap" "$p1"
nghttp -n "http://127.0.0.1:$p1/index.html" "http://127.0.0.1:$p1/a.json" \
    "http://127.0.0.1:$p1/big.txt" "http://127.0.0.1:$p1/missing" \
    -H 'x-lane: blue'
nghttp -n -d "$work/upload.txt" --trailer 'x-client-trailer: sent' "http://127.0.0.1:$p1/a.json"
stop_capture

# --- Upgrade: h2c: nghttpx in front of python3 -m http.server ---
p2=$((base + 1))
p4=$((base + 3))
/usr/bin/python3 -m http.server -d "$work/htdocs" -b 127.0.0.1 "$p4" >/dev/null 2>&1 &
pids="$pids $!"
nghttpx -f"127.0.0.1,$p2;no-tls" -b"127.0.0.1,$p4" --workers=1 -L WARN \
    --conf=/dev/null >/dev/null 2>&1 &
pids="$pids $!"
sleep 1.5
capture "$out/upgrade.pcap" "$p2"
nghttp -n -u "http://127.0.0.1:$p2/index.html" -H 'x-lane: green'
curl -s -o /dev/null --http2 -H 'x-lane: green' "http://127.0.0.1:$p2/a.json"
stop_capture

# --- h2load against nghttpd ---
capture "$out/h2load.pcap" "$p1"
h2load -n 60 -c 2 -m 8 "http://127.0.0.1:$p1/a.json" >/dev/null
stop_capture

# --- gRPC ---
p3=$((base + 2))
/usr/bin/python3 "$here/grpc_shop.py" serve "$p3" --variant baseline > "$work/grpc.log" 2>&1 &
pids="$pids $!"
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q ready "$work/grpc.log" 2>/dev/null && break; sleep 0.5; done
capture "$out/grpc.pcap" "$p3"
/usr/bin/python3 "$here/grpc_shop.py" call "$p3" --calls 30 --lane blue --every 2 >/dev/null
stop_capture
capture "$out/grpc-parallel.pcap" "$p3"
/usr/bin/python3 "$here/grpc_shop.py" call "$p3" --calls 12 --parallel 3 >/dev/null
stop_capture
capture "$out/grpc-watch.pcap" "$p3"
/usr/bin/python3 "$here/grpc_shop.py" call "$p3" --calls 3 --watch >/dev/null
stop_capture
capture "$out/grpc-batch.pcap" "$p3"
/usr/bin/python3 "$here/grpc_shop.py" call "$p3" --calls 0 --batch 20 >/dev/null
stop_capture
p5=$((base + 4))
/usr/bin/python3 "$here/grpc_shop.py" serve "$p5" --variant baseline --watch-delay 1 \
    > "$work/grpc-slow.log" 2>&1 &
pids="$pids $!"
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q ready "$work/grpc-slow.log" 2>/dev/null && break; sleep 0.5; done
capture "$out/grpc-watch-early.pcap" "$p5"
/usr/bin/python3 "$here/grpc_shop.py" call "$p5" --calls 3 --watch-cancel-after 0.3 >/dev/null
stop_capture
p6=$((base + 5))
/usr/bin/python3 "$here/grpc_shop.py" serve "$p6" --variant baseline --gzip --name-repeat 20 \
    > "$work/grpc-gzip.log" 2>&1 &
pids="$pids $!"
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q ready "$work/grpc-gzip.log" 2>/dev/null && break; sleep 0.5; done
capture "$out/grpc-gzip.pcap" "$p6"
/usr/bin/python3 "$here/grpc_shop.py" call "$p6" --calls 20 --gzip >/dev/null
stop_capture
p7=$((base + 6))
/usr/bin/python3 "$here/grpc_shop.py" serve "$p7" --variant baseline \
    > "$work/grpc-deadline.log" 2>&1 &
pids="$pids $!"
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q ready "$work/grpc-deadline.log" 2>/dev/null && break; sleep 0.5; done
capture "$out/grpc-deadline.pcap" "$p7"
/usr/bin/python3 "$here/grpc_shop.py" call "$p7" --calls 6 --deadline 0.5 >/dev/null
stop_capture
echo "fixtures in $out"
