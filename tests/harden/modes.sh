#!/bin/sh
# SPDX-License-Identifier: MIT
# Files dyetap creates hold captured traffic (secrets): the store file of
# `dyetap record` and the JSON/JUnit/HTML reports of `dyetap diff` must be
# mode 0600 whatever the umask, also when they replace an existing file.
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
echo "1..8"
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
exit $((fails > 0))
