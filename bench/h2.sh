#!/bin/sh
# SPDX-License-Identifier: MIT
# HTTP/2 benchmarks (docs/benchmarks.md "## HTTP/2"), real traffic only:
#  1. capture: `dyetap record` per byte of an h2c capture beside the same
#     per byte of an HTTP/1.1 capture, in the same run. Both captures are
#     made here with tcpdump on lo: h2load -n REQS -c 10 -m 10 against
#     nghttpd --no-tls (h2c), and h2load --h1 -n REQS -c 10 against nginx
#     (1 worker), both serving the same 1 KiB JSON document. RUNS
#     alternating pairs, each program pinned to one core; throughput per
#     CPU second (user + sys) and per wall second; medians; ratio h2/h1
#     (target >= 0.5).
#  2. replay: `dyetap replay --max` of the h2c recording to nghttpd beside
#     h2load against the same nghttpd with the recording's shape (10
#     connections, 10 streams each, REQS requests), RUNS alternating pairs,
#     req/s and client CPU per request, medians and ratio replay/h2load
#     (target >= 0.7); both clients pinned to core 0, the servers to the
#     other cores. The recording's server is this nghttpd, so replay runs
#     with --i-know-this-is-production.
#  3. reading alone: the replay's CPU per session with a --path that
#     matches nothing (read, decode, filter; nothing sent or written) and
#     `zstd -dc` of the recording, beside the CPU per request a 0.7 ratio
#     allows (h2load's / 0.7).
#  4. the floor: h2load's CPU per request plus zstd's alone to decompress
#     the recording and to compress the results at their level, in frames
#     as the replay wrote them: the least any replay that reads and writes
#     zstd stores could spend; h2load / floor is the highest ratio one core
#     allows.
# Usage: bench/h2.sh BUILD_DIR     (needs root for tcpdump)
#   env: REQS=100000 RUNS=3 BENCH_DIR=/tmp/dyetap-bench-h2
# Needs: tcpdump, nghttpd, h2load (nghttp2-server, nghttp2-client), nginx,
# zstd, /usr/bin/time, taskset.
set -eu
b=${1:?usage: bench/h2.sh BUILD_DIR}
dyetap=$(cd "$b" && pwd)/cli/dyetap
REQS=${REQS:-100000}
RUNS=${RUNS:-3}
dir=${BENCH_DIR:-/tmp/dyetap-bench-h2}
rm -rf "$dir"
mkdir -p "$dir/htdocs" "$dir/ngx"
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    [ -f "$dir/ngx/nginx.pid" ] && kill "$(cat "$dir/ngx/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
pin="taskset -c 0"
command -v taskset >/dev/null || pin=""
# The servers on the other cores, so that they never take the clients' core.
spin=""
[ -n "$pin" ] && [ "$(nproc)" -ge 2 ] && spin="taskset -c 1-$(($(nproc) - 1))"

python3 -c "
import json
doc = {'items': [{'id': i, 'name': 'item-%d' % i, 'price': 10.5 + i} for i in range(30)]}
open('$dir/htdocs/doc.json', 'w').write(json.dumps(doc)[:1024])"

h2port=$(freeport)
$spin nghttpd --no-tls -d "$dir/htdocs" "$h2port" >/dev/null 2>&1 &
pids="$pids $!"
h1port=$(freeport)
cat >"$dir/ngx/nginx.conf" <<EOF
worker_processes 1;
pid $dir/ngx/nginx.pid;
error_log $dir/ngx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $dir/ngx/b; proxy_temp_path $dir/ngx/p; fastcgi_temp_path $dir/ngx/f;
  uwsgi_temp_path $dir/ngx/u; scgi_temp_path $dir/ngx/s;
  default_type application/json;
  server { listen 127.0.0.1:$h1port; root $dir/htdocs; }
}
EOF
$spin nginx -p "$dir/ngx" -c "$dir/ngx/nginx.conf"
sleep 1

# capture FILE PORT CMD...: run CMD while tcpdump writes FILE
capture() {
    f=$1 p=$2
    shift 2
    tcpdump -i lo -U -B 65536 -s 0 -w "$f" "tcp port $p" 2>"$dir/td.log" &
    tp=$!
    for _ in $(seq 50); do grep -q listening "$dir/td.log" && break; sleep 0.1; done
    sleep 0.5
    "$@" >"$dir/gen.out"
    sleep 1
    kill -INT "$tp"
    wait "$tp" || true
    grep -h "dropped by kernel" "$dir/td.log" || true
}
capture "$dir/h2.pcap" "$h2port" h2load -n "$REQS" -c 10 -m 10 "http://127.0.0.1:$h2port/doc.json"
capture "$dir/h1.pcap" "$h1port" h2load --h1 -n "$REQS" -c 10 "http://127.0.0.1:$h1port/doc.json"
h2b=$(stat -c %s "$dir/h2.pcap")
h1b=$(stat -c %s "$dir/h1.pcap")
cat "$dir/h2.pcap" "$dir/h1.pcap" >/dev/null
echo "captures: h2c $h2b bytes, HTTP/1.1 $h1b bytes ($REQS requests each)"

# run NAME BYTES CMD...: one timed, pinned run; appends "cpu_mbs wall_mbs" to $dir/NAME
run() {
    name=$1 bytes=$2
    shift 2
    $pin /usr/bin/time -f '%e %U %S' -o "$dir/time.txt" "$@" >/dev/null 2>"$dir/run.err"
    awk -v b="$bytes" '{w=$1; c=$2+$3; if (w < 0.001) w = 0.001; if (c < 0.001) c = 0.001;
        printf "%.1f %.1f\n", b/1e6/c, b/1e6/w}' "$dir/time.txt" >>"$dir/$name"
}
load=$(cut -d' ' -f1 /proc/loadavg)
: >"$dir/rec_h2"; : >"$dir/rec_h1"
for i in $(seq "$RUNS"); do
    run rec_h1 "$h1b" "$dyetap" record -r "$dir/h1.pcap" -w "$dir/h1.dyt"
    run rec_h2 "$h2b" "$dyetap" record -r "$dir/h2.pcap" -w "$dir/h2.dyt"
done
"$dyetap" info "$dir/h2.dyt" | grep -E "sessions|records" | head -2
h2cpu=$(cut -d' ' -f1 "$dir/rec_h2" | median); h1cpu=$(cut -d' ' -f1 "$dir/rec_h1" | median)
h2wall=$(cut -d' ' -f2 "$dir/rec_h2" | median); h1wall=$(cut -d' ' -f2 "$dir/rec_h1" | median)
echo "capture (load $load at start): HTTP/1.1 $h1cpu MB/CPU-s ($h1wall MB/s wall); h2c $h2cpu MB/CPU-s ($h2wall MB/s wall)"
echo "  runs h1: $(cut -d' ' -f1 "$dir/rec_h1" | tr '\n' ' ') h2: $(cut -d' ' -f1 "$dir/rec_h2" | tr '\n' ' ')"
python3 -c "print('capture ratio h2c/HTTP/1.1 per byte: %.2f (CPU), %.2f (wall); target >= 0.5' % ($h2cpu / $h1cpu, $h2wall / $h1wall))"

# 2. replay against h2load, same nghttpd, same shape
: >"$dir/h2load"; : >"$dir/replay"; : >"$dir/h2load_us"; : >"$dir/replay_us"; : >"$dir/ratio"
# cpu_us FILE: append the client CPU (user + sys) per request of the last run, in us
# (the last line: time(1) writes "Command exited with non-zero status N" before it)
cpu_us() { tail -n 1 "$dir/time.txt" | awk -v n="$REQS" '{printf "%.2f\n", ($2 + $3) * 1e6 / n}' >>"$1"; }
for i in $(seq "$RUNS"); do
    $pin /usr/bin/time -f '%e %U %S' -o "$dir/time.txt" \
        h2load -n "$REQS" -c 10 -m 10 "http://127.0.0.1:$h2port/doc.json" >"$dir/h2load.out"
    cpu_us "$dir/h2load_us"
    awk '/^finished in/ {gsub(",", ""); print $4}' "$dir/h2load.out" >>"$dir/h2load"
    $pin /usr/bin/time -f '%e %U %S' -o "$dir/time.txt" \
        "$dyetap" replay "$dir/h2.dyt" --target "http://127.0.0.1:$h2port" --max -o "$dir/res.dyt" \
        --allow-writes --i-know-this-is-production >"$dir/replay.out" 2>&1
    cpu_us "$dir/replay_us"
    awk '/achieved/ {print $2}' "$dir/replay.out" >>"$dir/replay"
    awk -v h="$(tail -n 1 "$dir/h2load")" -v r="$(tail -n 1 "$dir/replay")" \
        'BEGIN {printf "%.2f\n", r / h}' >>"$dir/ratio"
    echo "pair $i (load $(cut -d' ' -f1 /proc/loadavg)): h2load $(tail -n 1 "$dir/h2load") req/s" \
        "$(tail -n 1 "$dir/h2load_us") us CPU/req, replay $(tail -n 1 "$dir/replay") req/s" \
        "$(tail -n 1 "$dir/replay_us") us CPU/req, ratio $(tail -n 1 "$dir/ratio")"
done
grep -E "sent|errors" "$dir/replay.out" | head -3
hl=$(median <"$dir/h2load"); rp=$(median <"$dir/replay")
echo "replay h2c --max median $rp req/s; h2load -c 10 -m 10 median $hl req/s"
python3 -c "print('replay ratio dyetap/h2load: %.2f of the medians, %s median per pair; target >= 0.7' % ($rp / $hl, '$(median <"$dir/ratio")'))"
echo "client CPU per request (both pinned to one core; replay's includes reading the"
echo "recording and writing the results): h2load median $(median <"$dir/h2load_us") us," \
    "replay median $(median <"$dir/replay_us") us"

# 3. what a replay spends before it sends anything: reading the recording
# (decompress, decode, filter: `--path` that matches nothing, so nothing
# is sent or written) and, under it, zstd's decompression of the same
# frames; beside the budget a 0.7 ratio leaves (h2load's CPU per request / 0.7)
# 4. the floor: what the replay's job costs in zstd alone, with nothing of
# its own: decompressing the recording (above) and compressing the
# results' bytes at the results' level (1) in frames of the size the
# replay wrote (the last replay's results decompressed, cut into as many
# pieces as it has data frames, each compressed on its own by zstd -1).
# User CPU only for this one (reading the pieces from the page cache is
# not the replay's cost), so the floor is if anything too low. h2load's
# CPU + these two is the least a replay that reads a zstd recording and
# writes zstd results could spend; h2load / floor is the highest ratio.
: >"$dir/read_us"; : >"$dir/zstd_us"; : >"$dir/zcomp_us"
zstd -dcq "$dir/res.dyt" >"$dir/res.raw"
rawb=$(stat -c %s "$dir/res.raw")
frames=$("$dyetap" info "$dir/res.dyt" | awk '/data frames/ {print $2; exit}')
[ -n "$frames" ] && [ "$frames" -gt 0 ] || frames=1
rm -rf "$dir/pieces"; mkdir "$dir/pieces"
split -b $(((rawb + frames - 1) / frames)) "$dir/res.raw" "$dir/pieces/p."
rm -f "$dir/res.raw"
for i in $(seq "$RUNS"); do
    $pin /usr/bin/time -f '%e %U %S' -o "$dir/time.txt" \
        "$dyetap" replay "$dir/h2.dyt" --target "http://127.0.0.1:$h2port" --max \
        -o "$dir/none.dyt" --path /nothing-matches --i-know-this-is-production >/dev/null 2>&1 ||
        : # exit 3: nothing sent, as meant
    cpu_us "$dir/read_us"
    $pin /usr/bin/time -f '%e %U %S' -o "$dir/time.txt" zstd -dcq "$dir/h2.dyt" >/dev/null
    cpu_us "$dir/zstd_us"
    $pin /usr/bin/time -f '%e %U %S' -o "$dir/time.txt" \
        zstd -1 -q --no-check -c "$dir"/pieces/p.* >/dev/null
    tail -n 1 "$dir/time.txt" | awk -v n="$REQS" '{printf "%.2f\n", $2 * 1e6 / n}' >>"$dir/zcomp_us"
done
rm -rf "$dir/pieces"
python3 -c "print('budget for 0.7: %.2f us a request (h2load %s / 0.7); reading the recording alone: %s us (zstd -dc of its frames: %s us)' % (float('$(median <"$dir/h2load_us")') / 0.7, '$(median <"$dir/h2load_us")', '$(median <"$dir/read_us")', '$(median <"$dir/zstd_us")'))"
python3 -c "
h, d, c = float('$(median <"$dir/h2load_us")'), float('$(median <"$dir/zstd_us")'), float('$(median <"$dir/zcomp_us")')
print('floor: h2load %.2f + zstd -dc of the recording %.2f + zstd -1 of the results (%d bytes a request, $frames frames) %.2f = %.2f us a request; highest reachable ratio %.2f' % (h, d, $rawb / $REQS, c, h + d + c, h / (h + d + c)))"
