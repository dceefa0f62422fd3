#!/bin/sh
# SPDX-License-Identifier: MIT
# Crash safety of `dyetap record` (docs/testing.md "Crash safety"): SIGKILL at random points of
# many runs over a large generated capture. Every killed file must be
# readable by `dyetap info` and `dyetap cat`, info must say it is
# unfinished or cut, and what reads back must be exactly the first N
# sessions of an uninterrupted recording of the same input (everything up
# to the last flushed frame, nothing damaged, nothing invented). A kill
# during start-up, before the file has its whole header, leaves no file or
# a file info refuses with a message saying so (exit 2). A killed writer
# leaves FILE.partial and never FILE (the rename comes after the trailer,
# docs/format.md "Where a file is written"): `dyetap info FILE` finds it.
# Usage: record_kill.sh DYETAP GEN_HTTP_PCAP [RUNS]   (TAP output)
# HARDEN_SEED=N repeats a run's kill points (the seed is printed).
set -u
dyetap=$1
gen=$2
runs=${3:-20}
seed=${HARDEN_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dyetap-kill.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
now_ms() { date +%s%3N; }
# Top-level key of info --json (the keys state and sessions are unique there).
jget() { tr ',{}' '\n\n\n' <"$1" | awk -F: -v k="\"$2\"" '$1 == k { gsub(/"/, "", $2); print $2; exit }'; }

echo "# seed $seed"
"$gen" "$tmp/in.pcap" 20 7 >/dev/null 2>&1
ok $? "generated a 20 MB capture"
t0=$(now_ms)
"$dyetap" record -r "$tmp/in.pcap" -w "$tmp/full.dyt" >/dev/null 2>&1
ok $? "uninterrupted recording"
full_ms=$(($(now_ms) - t0))
"$dyetap" cat --json "$tmp/full.dyt" >"$tmp/full.jsonl"
total=$(wc -l <"$tmp/full.jsonl")
echo "# full run: $full_ms ms, $total sessions"

# Kill points spread over 5% .. 95% of the full run's time.
points=$(awk -v s="$seed" -v r="$runs" -v t="$full_ms" 'BEGIN {
    srand(s); for (i = 0; i < r; i++) printf "%d\n", t * (0.05 + 0.9 * rand()) }')
killed=0
i=0
for ms in $points; do
    i=$((i + 1))
    out="$tmp/k$i.dyt"
    "$dyetap" record -r "$tmp/in.pcap" -w "$out" >/dev/null 2>&1 &
    pid=$!
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    st=$?
    "$dyetap" info --json "$out" >"$tmp/info.json" 2>"$tmp/info.err"
    irc=$?
    state=$(jget "$tmp/info.json" state)
    sess=$(jget "$tmp/info.json" sessions)
    read_as="$out"
    [ -e "$out" ] || read_as="$out.partial"
    "$dyetap" cat --json "$read_as" >"$tmp/cut.jsonl" 2>"$tmp/cat.err"
    crc=$?
    got=$(wc -l <"$tmp/cut.jsonl")
    head -n "$got" "$tmp/full.jsonl" | cmp -s - "$tmp/cut.jsonl"
    prefix=$?
    if [ $st -eq 137 ] && [ $irc -eq 2 ] &&
        grep -q -E 'cannot open|no store header|cut inside the store header' "$tmp/info.err"; then
        # Killed during start-up, before the store file was created or its
        # header written: nothing was recorded, and info says so.
        ok 0 "kill at ${ms} ms: before the header was written: $(head -c 80 "$tmp/info.err")"
    elif [ $st -eq 137 ]; then
        killed=$((killed + 1))
        good=1
        # an unfinished or cut file is the .partial, found by info, never FILE
        case "$state" in unfinished | cut)
            [ ! -e "$out" ] && grep -q "$out.partial" "$tmp/info.err" && good=0 ;;
        esac
        # Killed after the trailer was written (during exit): complete is right.
        [ "$state" = complete ] && [ "$got" = "$total" ] && good=0
        if [ $irc -eq 0 ] && [ $good -eq 0 ] && [ $crc -eq 0 ] && [ "$sess" = "$got" ] &&
            [ $prefix -eq 0 ] && { [ "$state" = complete ] || grep -q 'warning' "$tmp/info.err"; }; then
            ok 0 "kill at ${ms} ms: $state, $got of $total sessions read back, a prefix of the full run"
        else
            ok 1 "kill at ${ms} ms: info rc $irc state '$state' sessions '$sess', cat rc $crc read $got, prefix $prefix"
            sed 's/^/# /' "$tmp/info.err" "$tmp/cat.err" | head -4
        fi
    else
        # The run ended before the signal: the file must be complete.
        [ $st -eq 0 ] && [ "$state" = complete ] && [ "$got" = "$total" ]
        ok $? "run $i finished before the kill at ${ms} ms (exit $st, state '$state')"
    fi
done
ok $([ $killed -gt 0 ]; echo $?) "$killed of $runs runs were killed mid-write"
echo "1..$n"
exit $((fails > 0))
