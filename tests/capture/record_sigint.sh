#!/bin/sh
# SPDX-License-Identifier: MIT
# SIGINT during a long file run: `dyetap record` stops, emits what is
# pending and closes the store with its index and counters, so the file is
# complete (dyetap info: index present, not cut) and every session in it
# reads back.
# Usage: record_sigint.sh DYETAP GEN_HTTP_PCAP   (TAP output)
dyetap=$1
gen=$2
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$gen" "$tmp/big.pcap" 150 7 2>/dev/null
ok $? "generated a 150 MB capture"
"$dyetap" record -r "$tmp/big.pcap" -w "$tmp/out.dyt" --json >"$tmp/c.json" 2>"$tmp/err.txt" &
pid=$!
sleep 0.5
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
ok $rc "exit 0 after SIGINT (rc $rc)"
get() { tr ',{}' '\n\n\n' <"$tmp/c.json" | awk -F: -v k="\"$1\"" '$1 == k {print $2}'; }
pk=$(get src_packets)
total=$(tcpdump -r "$tmp/big.pcap" -nn 2>/dev/null | wc -l)
echo "# read $pk of $total packets before the signal"
"$dyetap" info "$tmp/out.dyt" >"$tmp/info.txt" 2>&1
ok $? "dyetap info reads the file"
ok $(grep -q 'index present' "$tmp/info.txt"; echo $?) "index frame present (file closed cleanly)"
ok $(grep -q 'pipe_written' "$tmp/info.txt"; echo $?) "counters in the trailer"
w=$(get pipe_written)
c=$("$dyetap" cat --json "$tmp/out.dyt" | grep -c '"request"')
ok $([ "$c" = "$w" ]; echo $?) "every written session reads back ($c of $w)"
echo "1..$n"
exit $fail
