#!/bin/sh
# SPDX-License-Identifier: MIT
# Allocation-failure torture (curl's model). For each case - `dyetap record`
# on golden pcaps, `dyetap info` / `cat` on the recording, `dyetap diff` on a
# generated results file, on the recording (sessions without results) and
# with --threads 2 on a file of many small frames, `dyetap mirror -w`
# (recorder and shadow core) to a lane that refuses connections - a first
# run counts the allocations C (DYETAP_ALLOC_COUNT_FILE); then the case is
# re-run with DYETAP_FAIL_ALLOC=N for N = 1 .. C. When C is larger than the
# point budget (MAX_POINTS per case) N walks with the stride
# ceil(C / MAX_POINTS), starting at 1, so the early allocations (set-up)
# and a spread of the later ones are all hit. Redaction rules are part of
# one record case. With --threads the threads allocate in the order they
# are scheduled, so the Nth allocation differs from run to run. Every run
# must: end within RUN_TIMEOUT seconds (a hang is a failure point), not die
# of a signal, leave no sanitizer report (ASan, UBSan, LeakSanitizer), and
# exit 0 or exit 1..3 with a "dyetap ..." message on stderr.
# docs/testing.md describes the full and the quick run.
#
# Usage: tests/torture.sh [--quick] [--max-points N] [BUILD_DIR]
#   BUILD_DIR must be configured with -Dfault_injection=true (ASan+UBSan
#   recommended); default: build-torture in the source tree, created when
#   missing. --quick: 15 points per case (the meson 'torture' suite).
#   Default budget: 1000 points per case (every allocation of the small cases).
# Output: TAP, one line per case.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
max=1000
run_timeout=${RUN_TIMEOUT:-60} # seconds per run; an ASan run takes well under 1 s
bdir=""
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) max=15 ;;
    --max-points) shift; max=$1 ;;
    *) bdir=$1 ;;
    esac
    shift
done
[ -n "$bdir" ] || bdir=$top/build-torture
case "$bdir" in /*) ;; *) bdir=$(pwd)/$bdir ;; esac
if [ ! -f "$bdir/build.ninja" ]; then
    meson setup "$bdir" "$top" -Dfault_injection=true -Db_sanitize=address,undefined \
        -Db_lundef=false >/dev/null || { echo "Bail out! meson setup failed"; exit 2; }
    ninja -C "$bdir" -j2 >/dev/null || { echo "Bail out! build failed"; exit 2; }
fi
dyetap=$bdir/cli/dyetap
testgen=$bdir/tests/analysis/analysis_testgen
scalegen=$bdir/tests/analysis/diff_scalegen
for f in "$dyetap" "$testgen" "$scalegen"; do
    [ -x "$f" ] || { echo "Bail out! $f missing (build $bdir first)"; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/dyetap-torture.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
golden=$top/tests/golden
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99

# Inputs for the read-side cases, made without fault injection.
"$dyetap" record -r "$golden/nginx-static/input.pcap" -w "$work/rec.dyt" \
    --color 'blue=path:/*' >/dev/null 2>&1 || { echo "Bail out! cannot record"; exit 2; }
"$testgen" "$work" >/dev/null 2>&1 || { echo "Bail out! analysis_testgen failed"; exit 2; }
# 32 small frames (250 sessions), pairs split across them: diff --threads
# hands frames, pairing turns and errors between its threads; under 1000
# allocations, so the full run fails each of them
"$scalegen" "$work/frames.dyt" 250 --body 200 --flush 8192 --lag 3 --differ 2 >/dev/null 2>&1 ||
    { echo "Bail out! diff_scalegen failed"; exit 2; }
# a replay that got nothing back for every 3rd session: diff settles those
# as unreplayed (per endpoint, per candidate)
"$scalegen" "$work/unrep.dyt" 60 --body 200 --differ 4 --unreplayed 3 >/dev/null 2>&1 ||
    { echo "Bail out! diff_scalegen failed"; exit 2; }

# name|command (run by sh in $work; $D is dyetap, $G the golden dir)
cases="record-nginx-static|\$D record -r \$G/nginx-static/input.pcap -w out.dyt --color 'blue=path:/*'
record-python-chunked|\$D record -r \$G/python-chunked/input.pcap -w out.dyt
record-redact|\$D record -r \$G/nginx-static/input.pcap -r \$G/python-post-large/input.pcap -w out.dyt --redact-defaults --redact 'json:\$.items[*].card:drop' --redact header:host --redact query:q:drop
record-edge-gap|\$D record -r \$G/edge-gap/input.pcap -r \$G/edge-reorder/input.pcap -w out.dyt --stats
info|\$D info rec.dyt
cat|\$D cat rec.dyt
cat-json|\$D cat --json rec.dyt
diff|\$D diff results.dyt --secondary secondary.dyt --json out.json --junit out.xml --html out.html --quiet
diff-recording|\$D diff rec.dyt --quiet; test \$? -eq 2
diff-unreplayed|\$D diff unrep.dyt --quiet --json out.json
diff-threads|\$D diff frames.dyt --threads 2 --json out.json --quiet
mirror|\$D mirror -r \$G/nginx-static/input.pcap --color 'blue=path:/*' --lane blue=http://127.0.0.1:1 --drain-timeout 0 -w out.dyt --redact-defaults --json"

# Runs one case with DYETAP_FAIL_ALLOC=$2; prints a reason on failure.
check_run() {
    cmd=$1
    n=$2
    (cd "$work" && D=$dyetap G=$golden DYETAP_FAIL_ALLOC=$n timeout -k 5 "$run_timeout" sh -c "$cmd") \
        >"$work/out" 2>"$work/err"
    st=$?
    if [ $st -eq 124 ]; then
        echo "no exit within $run_timeout s (a hang?)"
        return 1
    fi
    if grep -q -E 'Sanitizer|runtime error:' "$work/err"; then
        echo "sanitizer report: $(grep -m1 -E 'ERROR:|runtime error:' "$work/err")"
        return 1
    fi
    if [ $st -ge 128 ] || [ $st -eq 99 ]; then
        echo "exit $st (signal or sanitizer)"
        return 1
    fi
    if [ $st -ne 0 ]; then
        if [ $st -gt 3 ]; then
            echo "unexpected exit $st"
            return 1
        fi
        if ! grep -q '^dyetap' "$work/err"; then
            echo "exit $st without a message on stderr"
            return 1
        fi
    fi
    return 0
}

i=0
fails=0
echo "1..$(echo "$cases" | wc -l)"
echo "$cases" >"$work/cases"
while IFS='|' read -r name cmd; do
    i=$((i + 1))
    rm -f "$work/count"
    (cd "$work" && D=$dyetap G=$golden DYETAP_ALLOC_COUNT_FILE="$work/count" \
        timeout -k 5 "$run_timeout" sh -c "$cmd") >/dev/null 2>"$work/err"
    st=$?
    count=$(cat "$work/count" 2>/dev/null || echo 0)
    if [ $st -ne 0 ] || [ "$count" -eq 0 ]; then
        echo "not ok $i - $name: baseline run failed (exit $st, $count allocations)"
        sed 's/^/# /' "$work/err" | head -5
        fails=$((fails + 1))
        continue
    fi
    stride=$(((count + max - 1) / max))
    n=1
    points=0
    bad=""
    while [ $n -le "$count" ]; do
        points=$((points + 1))
        if ! why=$(check_run "$cmd" $n); then
            bad="$bad
# N=$n: $why"
            cp "$work/err" "$work/../dyetap-torture-$name-$n.err" 2>/dev/null
        fi
        n=$((n + stride))
    done
    if [ -z "$bad" ]; then
        echo "ok $i - $name: $count allocations, $points failure points (stride $stride)"
    else
        fails=$((fails + 1))
        echo "not ok $i - $name: $count allocations, $points points (stride $stride)$bad" |
            head -12
    fi
done <"$work/cases"
exit $((fails > 0))
