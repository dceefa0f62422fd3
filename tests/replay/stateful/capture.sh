#!/bin/sh
# SPDX-License-Identifier: MIT
# Capture client.py's traffic with json-server on lo (tcpdump, as root):
# a fresh server on a free port of 127.0.0.1 with the pristine db.json,
# tcpdump filtered on that port, client.py, then everything stopped.
# Usage: capture.sh OUT.pcap JSON_SERVER_BIN [WORKERS [OPS]]
# Prints the port used and the number of requests made.
set -eu
out=$1 bin=$2
here=$(cd "$(dirname "$0")" && pwd)
state=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    [ -z "${tpid:-}" ] || kill "$tpid" 2>/dev/null || true
    sh "$here/server.sh" stop "$bin" "$state" "$port"
    rm -rf "$state"
}
trap cleanup EXIT
sh "$here/server.sh" restart "$bin" "$state" "$port"
tcpdump -i lo --immediate-mode -U -s 0 -w "$out" "tcp port $port" 2>"$state/tcpdump.log" &
tpid=$!
i=0
until grep -q "listening on" "$state/tcpdump.log"; do
    i=$((i + 1))
    [ $i -lt 100 ] || { cat "$state/tcpdump.log" >&2; exit 1; }
    sleep 0.05
done
shift 2
n=$(python3 "$here/client.py" "$port" "$@" 2>"$state/client.log" | tail -n 1) ||
    { cat "$state/client.log" >&2; exit 1; }
[ ! -s "$state/client.log" ] || { cat "$state/client.log" >&2; exit 1; }
# Let tcpdump drain the kernel buffer: wait until the file has stopped
# growing for a second (a loaded machine may need more than a fixed pause).
last=-1
still=0
i=0
while [ $still -lt 5 ] && [ $i -lt 150 ]; do
    sleep 0.2
    i=$((i + 1))
    size=$(wc -c <"$out" 2>/dev/null || echo 0)
    if [ "$size" = "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$size
done
kill -INT "$tpid"
wait "$tpid" 2>/dev/null || true
tpid=""
echo "port $port requests $n"
