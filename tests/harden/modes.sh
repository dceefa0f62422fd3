#!/bin/sh
# SPDX-License-Identifier: MIT
# Files dyetap creates hold captured traffic (secrets): the store file of
# `dyetap record` and the JSON/JUnit/HTML reports of `dyetap diff` and
# `dyetap mirror --report-dir` must be mode 0600 whatever the umask, also
# when they replace an existing file; a --report-dir mirror creates is
# 0700, and one it cannot use is refused before the capture starts.
# usage: modes.sh DYETAP ANALYSIS_TESTGEN SOURCE_ROOT   (TAP)
set -u
dyetap=$1 testgen=$2 root=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dyetap-modes.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
umask 022
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = "$2" ]; then echo "ok $n - $3"; else echo "not ok $n - $3: got '$1', want '$2'"; fails=$((fails + 1)); fi; }
mode() { stat -c %a "$1" 2>/dev/null || echo missing; }
echo "1..16"
"$dyetap" record -r "$root/tests/golden/nginx-static/input.pcap" -w "$tmp/rec.dyt" 2>/dev/null
ok "$(mode "$tmp/rec.dyt")" 600 "record creates the store file 0600"
touch "$tmp/old.dyt" && chmod 644 "$tmp/old.dyt"
"$dyetap" record -r "$root/tests/golden/nginx-static/input.pcap" -w "$tmp/old.dyt" 2>/dev/null
ok "$(mode "$tmp/old.dyt")" 600 "record replacing a 0644 file leaves it 0600"
"$testgen" "$tmp" >/dev/null 2>&1
touch "$tmp/old.json" && chmod 644 "$tmp/old.json"
"$dyetap" diff "$tmp/results.dyt" --json "$tmp/r.json" --junit "$tmp/r.xml" \
    --html "$tmp/r.html" --quiet >/dev/null 2>&1
ok "$?" 0 "diff writes its reports"
ok "$(mode "$tmp/r.json")" 600 "diff --json report is 0600"
ok "$(mode "$tmp/r.xml")" 600 "diff --junit report is 0600"
ok "$(mode "$tmp/r.html")" 600 "diff --html report is 0600"
"$dyetap" diff "$tmp/results.dyt" --json "$tmp/old.json" --quiet >/dev/null 2>&1
ok "$(mode "$tmp/old.json")" 600 "diff replacing a 0644 report leaves it 0600"
ok "$(head -c 1 "$tmp/old.json")" "{" "the replaced report holds the new JSON"
pcap="$root/tests/golden/nginx-static/input.pcap"
mirror() {
    "$dyetap" mirror -r "$pcap" --color 'any=method:GET' --lane any=http://127.0.0.1:1 \
        --drain-timeout 0 "$@" >/dev/null 2>"$tmp/mirror.err"
}
mirror --report-dir "$tmp/rep/sub"
ok "$?" 2 "mirror refuses a --report-dir whose parent is missing"
ok "$(grep -c -- '--report-dir' "$tmp/mirror.err")" 1 "... with a message naming --report-dir"
mirror --report-dir "$tmp/rep"
ok "$(mode "$tmp/rep")" 700 "mirror creates a missing --report-dir 0700"
ok "$(mode "$tmp/rep/report.json") $(mode "$tmp/rep/report.html") $(mode "$tmp/rep/report.xml")" \
    "600 600 600" "mirror's report.json, report.html and report.xml are 0600"
chmod 644 "$tmp/rep/report.json"
mirror --report-dir "$tmp/rep"
ok "$(mode "$tmp/rep/report.json")" 600 "mirror replacing a 0644 report leaves it 0600"
touch "$tmp/afile"
mirror --report-dir "$tmp/afile" -w "$tmp/m.dyt"
ok "$?" 2 "mirror refuses a --report-dir that is a file"
ok "$(mode "$tmp/m.dyt")" missing "... before the capture starts: no -w file"
mirror -w "$tmp/m.dyt"
ok "$(mode "$tmp/m.dyt")" 600 "mirror -w creates its store 0600"
exit $((fails > 0))
