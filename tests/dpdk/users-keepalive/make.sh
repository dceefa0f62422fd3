#!/bin/bash
# SPDX-License-Identifier: MIT
# Re-creates tests/dpdk/users-keepalive/input.pcap: real keep-alive traffic
# of several users per connection, for the per-request coloring parity
# test of the fast path (tests/dpdk/test_fastpath.py, case parity-users).
#
# An nginx (nginx-light, one worker) serves two static files on a free
# port of 127.0.0.1; 4 curl processes each send 8 GETs over one
# connection (curl reuses it across --next), each GET with another
# x-user-id header (users u1..u32) and connection 4 with a second header
# `x-lane: blue` on its odd requests only; tcpdump captures it on lo.
#
# Needs root (tcpdump on lo), nginx, curl, tcpdump.
# Usage: tests/dpdk/users-keepalive/make.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/users-keepalive.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/www" "$work/logs" "$work/tmp"
echo "alpha" >"$work/www/a.txt"
echo '{"id": 7, "items": [1, 2, 3]}' >"$work/www/b.json"
touch -d '2026-01-02 03:04:05 UTC' "$work/www/a.txt" "$work/www/b.json"
cat >"$work/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 64; }
http {
    access_log $work/logs/access.log;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    types { text/plain txt; application/json json; }
    keepalive_requests 10000;
    server { listen 127.0.0.1:$port; root $work/www; }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" &
pids+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/a.txt" && break
    sleep 0.05
done

tcpdump -i lo --immediate-mode -U -Z root -s 0 -w "$work/input.pcap" "tcp port $port" \
    2>"$work/tcpdump.log" &
cap=$!
pids+=($cap)
for _ in $(seq 100); do
    grep -q "listening on" "$work/tcpdump.log" && break
    sleep 0.05
done

for c in 1 2 3 4; do
    args=()
    for k in 0 1 2 3 4 5 6 7; do
        u=$(( (c - 1) * 8 + k + 1 ))
        path=$([ $((k % 2)) = 0 ] && echo a.txt || echo b.json)
        [ $k -gt 0 ] && args+=(--next)
        args+=(-s -o /dev/null -H "x-user-id: u$u")
        if [ $c = 4 ] && [ $((k % 2)) = 1 ]; then
            args+=(-H "x-lane: blue")
        fi
        args+=("http://127.0.0.1:$port/$path?req=$c.$k")
    done
    curl "${args[@]}"
done

sleep 0.5
kill -INT "$cap"
wait "$cap" || true
cp "$work/input.pcap" "$here/input.pcap"
echo "make.sh: wrote $here/input.pcap ($(tcpdump -r "$here/input.pcap" 2>/dev/null | wc -l) packets, port $port)"
