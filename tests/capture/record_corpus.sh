#!/bin/sh
# SPDX-License-Identifier: MIT
# Every capture of the shared suricata-verify corpus goes through
# `dyetap record` with no crash (and, in sanitizer builds, no report):
# exit code 0 and the counters printed.
# Usage: record_corpus.sh DYETAP TESTDATA_DIR   (TAP output)
dyetap=$1
dir=$2/suricata-verify
[ -d "$dir" ] || { echo "1..0 # SKIP $dir absent"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
for f in $(find "$dir" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) | sort); do
    n=$((n + 1))
    name=${f#"$dir"/}
    "$dyetap" record -r "$f" -w "$tmp/out.dyt" --stats >"$tmp/out.txt" 2>"$tmp/err.txt"
    rc=$?
    if [ $rc = 0 ] && grep -q 'pipe_packets' "$tmp/err.txt"; then
        s=$(awk '$1 == "pipe_written" {w=$2} $1 == "reasm_gaps" {g=$2} $1 == "txn_parse_errors" {e=$2} END {printf "sessions %s gaps %s parse_errors %s", w, g, e}' "$tmp/err.txt")
        echo "ok $n - $name ($s)"
    else
        echo "not ok $n - $name (exit $rc)"
        sed 's/^/# /' "$tmp/err.txt" | tail -20
        fail=1
    fi
done
[ $n -gt 0 ] || { echo "1..0 # SKIP no captures in $dir"; exit 0; }
echo "1..$n"
exit $fail
