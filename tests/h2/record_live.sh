#!/bin/sh
# SPDX-License-Identifier: MIT
# Live HTTP/2 capture: `dyetap record -i lo` (libpcap) while the
# python3-grpcio client of grpc_shop.py calls the service on a free port
# of 127.0.0.1 (h2c, prior knowledge) and curl fetches from nghttpd with
# --http2-prior-knowledge: every call and fetch must be one complete
# session, colored by its x-lane metadata.
# Usage: record_live.sh DYETAP SHOP_PB   (TAP output; skips without root or tools)
dyetap=$1
pb=$2
here=$(cd "$(dirname "$0")" && pwd)
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP live capture needs root"; exit 0; }
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "1..0 # SKIP no python3-grpcio"; exit 0; }
for t in nghttpd curl; do
    command -v $t >/dev/null || { echo "1..0 # SKIP $t not installed"; exit 0; }
done
tmp=$(mktemp -d)
pids=""
rec=""
cleanup() {
    [ -n "$rec" ] && kill "$rec" 2>/dev/null
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
gport=$(freeport)
hport=$(freeport)
/usr/bin/python3 "$here/grpc_shop.py" serve "$gport" --pb "$pb" >"$tmp/grpc.log" 2>&1 &
pids="$pids $!"
mkdir "$tmp/www"
echo "live h2" >"$tmp/www/index.txt"
nghttpd --no-tls -d "$tmp/www" "$hport" >/dev/null 2>&1 &
pids="$pids $!"
i=0
until grep -q ready "$tmp/grpc.log" && curl -s -o /dev/null --http2-prior-knowledge \
    "http://127.0.0.1:$hport/index.txt"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "1..0 # SKIP servers did not start"; exit 0; }
    sleep 0.1
done

"$dyetap" record -i lo "tcp port $gport or tcp port $hport" -w "$tmp/live.dyt" \
    --color 'blue=header:x-lane=blue' --json >"$tmp/counters.json" 2>"$tmp/err.txt" &
rec=$!
i=0
until grep -q 'capturing on lo' "$tmp/err.txt"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "not ok 1 - capture did not start"; cat "$tmp/err.txt"; exit 1; }
    sleep 0.1
done
/usr/bin/python3 "$here/grpc_shop.py" call "$gport" --calls 10 --lane blue --every 2 --pb "$pb" \
    >"$tmp/call.out"
for k in 1 2 3; do
    curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$hport/index.txt?k=$k"
done
sleep 1 # let the last packets reach the capture
kill -INT "$rec"
wait "$rec"
rc=$?
rec=""
ok $rc "record -i lo exits 0 after SIGINT (rc $rc)"
grep -q "ok 10 errors 0" "$tmp/call.out"
ok $? "the client made its 10 calls"
"$dyetap" cat --json "$tmp/live.dyt" >"$tmp/cat.json"
python3 - "$tmp/cat.json" "$gport" <<'EOF'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1])]
grpc = [x for x in s if x["dst"].endswith(":" + sys.argv[2])]
web = [x for x in s if x not in grpc]
bad = [x["id"] for x in s if x.get("proto") != "h2c" or x["flags"]]
blue = sorted(x["stream"] for x in grpc if x["lane"] == "blue")
meta = sorted(x["stream"] for x in grpc if ["x-lane", "blue"] in x["request"]["headers"])
print("ok 3 - 10 gRPC calls and 3 fetches recorded, one h2c session each, no flag" if
      len(grpc) == 10 and len(web) == 3 and not bad else
      "not ok 3 - sessions: %d grpc, %d web, flagged %s" % (len(grpc), len(web), bad))
print("ok 4 - colored by metadata exactly: %d blue" % len(blue) if blue == meta and len(blue) == 5
      else "not ok 4 - blue %s, with x-lane metadata %s" % (blue, meta))
EOF
echo "1..4"
