#!/bin/sh
# SPDX-License-Identifier: MIT
# Capture real keep-alive traffic for the loss tests: wrk (4 connections,
# one thread, wrk-loss.lua) against nginx (one worker, every answer names
# its request) on 127.0.0.1, recorded by tcpdump on lo. The capture is
# rejected when tcpdump dropped packets or tshark sees a lost segment.
#
# Usage: sudo tests/capture/loss/make-capture.sh OUT.pcap [REQUESTS]
#   REQUESTS: responses before wrk stops (default 4000; the committed
#   capture, README.md). Needs root, nginx, wrk, tcpdump, tshark.
set -eu
out=$1
n=${2:-4000}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
cleanup() {
    [ -f "$tmp/tcpdump.pid" ] && kill "$(cat "$tmp/tcpdump.pid")" 2>/dev/null || :
    [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || :
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/b; proxy_temp_path $tmp/p; fastcgi_temp_path $tmp/f;
  uwsgi_temp_path $tmp/u; scgi_temp_path $tmp/s;
  server {
    listen 127.0.0.1:$port;
    location / { default_type text/plain; return 200 "\$request_method \$request_uri\n"; }
  }
}
EOF
nginx -p "$tmp" -c "$tmp/nginx.conf"
tcpdump -i lo -s 0 -B 65536 -U -w "$tmp/cap.pcap" "tcp port $port" 2>"$tmp/tcpdump.log" &
echo $! >"$tmp/tcpdump.pid"
i=0
until grep -q "listening on" "$tmp/tcpdump.log"; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/tcpdump.log" >&2; exit 1; }
    sleep 0.05
done
LOSS_REQUESTS=$n wrk -t1 -c4 -d$((n / 2000 + 2))s -s "$here/wrk-loss.lua" "http://127.0.0.1:$port" >"$tmp/wrk.log"
sleep 0.5
kill "$(cat "$tmp/nginx.pid")"
sleep 0.5
kill -INT "$(cat "$tmp/tcpdump.pid")"
wait "$(cat "$tmp/tcpdump.pid")" || :
rm -f "$tmp/tcpdump.pid"
cat "$tmp/wrk.log" >&2
grep -E "captured|dropped" "$tmp/tcpdump.log" >&2
if ! grep -q "^0 packets dropped by kernel" "$tmp/tcpdump.log"; then
    echo "make-capture: tcpdump dropped packets, try again" >&2
    exit 1
fi
lost=$(tshark -r "$tmp/cap.pcap" -Y 'tcp.analysis.lost_segment or tcp.analysis.ack_lost_segment' 2>/dev/null | wc -l)
if [ "$lost" -ne 0 ]; then
    echo "make-capture: tshark reports $lost lost segments, try again" >&2
    exit 1
fi
cp "$tmp/cap.pcap" "$out"
