#!/bin/sh
# SPDX-License-Identifier: MIT
# `dyetap record` end to end on the gen_pcap.py captures: options, the
# JSON counters, the store read back with `dyetap cat --json`, and the
# error messages a user sees (missing file, bad filter, bad rule, usage).
# Usage: record_cli.sh DYETAP EDGE_PCAP_DIR   (TAP output)
dyetap=$1
edge=$2
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
is() { [ "$1" = "$2" ]; ok $? "$3 (got '$1', want '$2')"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
get() { tr ',{}' '\n\n\n' <"$1" | awk -F: -v k="\"$2\"" '$1 == k {print $2}'; }

"$dyetap" record -r "$edge/basic.pcap" -w "$tmp/a.dyt" --color 'blue=header:x-lane=blue' \
    --json >"$tmp/a.json" 2>"$tmp/a.err"
ok $? "record basic.pcap"
ok $(python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$tmp/a.json"; echo $?) "--json is one valid JSON object"
is "$(get "$tmp/a.json" pipe_written)" 2 "two sessions written"
is "$(get "$tmp/a.json" lane_blue_sessions)" 1 "one blue"
is "$(get "$tmp/a.json" src_packets)" "$(get "$tmp/a.json" pipe_packets)" "src_packets = pipe_packets"
"$dyetap" cat --json "$tmp/a.dyt" >"$tmp/a.cat"
ok $? "cat reads the file"
is "$(grep -c '"request"' "$tmp/a.cat")" 2 "cat shows two sessions"
ok $(grep -q '"id":2,"lane":"blue"' "$tmp/a.cat"; echo $?) "second session id 2 lane blue"
ok $(grep -q '"target":"/two"' "$tmp/a.cat"; echo $?) "target recorded"
"$dyetap" info "$tmp/a.dyt" >"$tmp/a.info"
ok $(grep -q 'reasm_gaps' "$tmp/a.info"; echo $?) "counters in the trailer (dyetap info)"

"$dyetap" record -r "$edge/basic.pcap" -w "$tmp/b.dyt" --color 'blue=header:x-lane=blue' \
    --uncolored drop --json >"$tmp/b.json"
is "$(get "$tmp/b.json" pipe_written)" 1 "--uncolored drop keeps the colored one"
is "$(get "$tmp/b.json" pipe_dropped_uncolored)" 1 "and counts the dropped one"

"$dyetap" record -r "$edge/basic.pcap" -r "$edge/vlan.pcap" -r "$edge/wraparound.pcap" \
    -w "$tmp/c.dyt" --json >"$tmp/c.json"
is "$(get "$tmp/c.json" src_files)" 3 "three files read in sequence"
is "$(get "$tmp/c.json" pipe_written)" 6 "six sessions from three files"

"$dyetap" record -r "$edge/basic.pcap" 'tcp port 81' -w "$tmp/d.dyt" --json >"$tmp/d.json"
is "$(get "$tmp/d.json" src_packets)" 0 "BPF filter applied to a file"
"$dyetap" record -r "$edge/noise.pcap" tcp and port 80 -w "$tmp/d2.dyt" --json >"$tmp/d2.json"
is "$(get "$tmp/d2.json" decode_non_tcp)" 0 "filter words joined (udp filtered out)"
is "$(get "$tmp/d2.json" pipe_written)" 2 "filter keeps the HTTP packets"

"$dyetap" record -r "$edge/basic.pcap" -w "$tmp/e.dyt" --count 5 --json >"$tmp/e.json"
is "$(get "$tmp/e.json" src_packets)" 5 "--count stops after N packets"

"$dyetap" record -r "$edge/basic.pcap" -w "$tmp/f.dyt" --max-body 100 --json >"$tmp/f.json"
is "$(get "$tmp/f.json" txn_body_truncated)" 1 "--max-body truncates (counted)"
"$dyetap" cat --json "$tmp/f.dyt" | grep -q '"body_len":2500,"body":"[a-z]*","truncated":true'
ok $? "truncated body keeps its full length"

"$dyetap" record -r "$edge/basic.pcap" -w "$tmp/g.dyt" --stats 2>"$tmp/g.err" >/dev/null
ok $(grep -qE '^ +flow_created +1$' "$tmp/g.err"; echo $?) "--stats prints counters to stderr"

"$dyetap" record --help >"$tmp/h.txt"
ok $? "--help exits 0"
ok $(grep -q 'uncolored record|drop' "$tmp/h.txt"; echo $?) "--help describes the options"

"$dyetap" record -r "$tmp/missing.pcap" -w "$tmp/x.dyt" 2>"$tmp/x.err"
is $? 2 "missing file: exit 2"
ok $(grep -q 'missing.pcap: No such file' "$tmp/x.err"; echo $?) "missing file named: $(cat "$tmp/x.err")"
"$dyetap" record -r "$edge/basic.pcap" 'tcp portt 80' -w "$tmp/x.dyt" 2>"$tmp/x.err"
is $? 2 "bad filter: exit 2"
ok $(grep -q "bad filter 'tcp portt 80': " "$tmp/x.err"; echo $?) "bad filter with pcap's message: $(cat "$tmp/x.err")"
"$dyetap" record -r "$edge/basic.pcap" -w "$tmp/x.dyt" --color 'nolane' 2>"$tmp/x.err"
is $? 2 "bad rule: exit 2"
ok $(grep -q -- "--color 'nolane'" "$tmp/x.err"; echo $?) "bad rule named: $(cat "$tmp/x.err")"
"$dyetap" record -w "$tmp/x.dyt" 2>"$tmp/x.err"
is $? 2 "no input: exit 2"
ok $(grep -q -- "-r FILE" "$tmp/x.err"; echo $?) "no input says what to give"
"$dyetap" record -r "$edge/basic.pcap" 2>"$tmp/x.err"
is $? 2 "no output: exit 2"
"$dyetap" record -r "$edge/basic.pcap" -w "$tmp/x.dyt" --uncolored maybe 2>"$tmp/x.err"
is $? 2 "bad --uncolored: exit 2"
"$dyetap" record -r "$edge/basic.pcap" -w "$tmp/x.dyt" --bogus 2>"$tmp/x.err"
is $? 2 "unknown option: exit 2"
ok $(grep -q -- "--bogus" "$tmp/x.err"; echo $?) "unknown option named"
"$dyetap" record -r "$edge/basic.pcap" -w /nonexistent-dir/x.dyt 2>"$tmp/x.err"
is $? 2 "unwritable output: exit 2"
cp "$edge/basic.pcap" "$tmp/in.pcap"
"$dyetap" record -r "$tmp/in.pcap" -w "$tmp/./in.pcap" 2>"$tmp/x.err"
is $? 2 "output = an input under another name: exit 2"
ok $(cmp -s "$edge/basic.pcap" "$tmp/in.pcap" && grep -q 'also an input' "$tmp/x.err"; echo $?) \
    "the capture is left intact: $(cat "$tmp/x.err")"
"$dyetap" record -i no-such-iface0 -w "$tmp/x.dyt" 2>"$tmp/x.err"
ok $([ $? = 2 ] && grep -qE 'no such interface|permission' "$tmp/x.err"; echo $?) "bad interface: $(cat "$tmp/x.err")"
echo "1..$n"
exit $fail
