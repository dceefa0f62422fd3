#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds every libFuzzer target (clang, ASan+UBSan) and runs each one for a
# fixed time over a scratch copy of its committed seed corpus; fails when
# any target reports a finding (crash, leak, sanitizer report, timeout).
# Targets are the meson executables named fuzz_*; a target's corpus is the
# directory argument of its registered corpus test (fuzz-*-corpus), so a
# new target is picked up without editing this script. docs/testing.md.
#
# Usage: tests/fuzz-run.sh [SECONDS_PER_TARGET] [BUILD_DIR]
#   defaults: 30 s per target, build dir build-fuzz in the source tree.
# Findings are kept in BUILD_DIR/fuzz-findings/<target>/ (crash-*, leak-*).
set -u
secs=${1:-30}
top=$(cd "$(dirname "$0")/.." && pwd)
bdir=${2:-$top/build-fuzz}
case "$secs" in '' | *[!0-9]*) echo "fuzz-run: bad seconds '$secs'" >&2; exit 2 ;; esac

if [ ! -f "$bdir/build.ninja" ]; then
    CC=clang meson setup "$bdir" "$top" -Dfuzzers=true \
        -Db_sanitize=address,undefined -Db_lundef=false >"$bdir.setup.log" 2>&1 ||
        { cat "$bdir.setup.log" >&2; echo "fuzz-run: meson setup failed" >&2; exit 2; }
fi
ninja -C "$bdir" -j2 >"$bdir/fuzz-build.log" 2>&1 ||
    { tail -40 "$bdir/fuzz-build.log" >&2; echo "fuzz-run: build failed" >&2; exit 2; }

# "name<TAB>path" of fuzz_* executables; "exe<TAB>corpus" of corpus tests.
targets=$(meson introspect "$bdir" --targets | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz_"):
        print(t["name"] + "\t" + t["filename"][0])')
corpora=$(meson introspect "$bdir" --tests | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["name"].startswith("fuzz-") and len(t["cmd"]) >= 1:
        print(t["cmd"][0] + "\t" + (t["cmd"][1] if len(t["cmd"]) > 1 else ""))')
[ -n "$targets" ] || { echo "fuzz-run: no fuzz_* targets found" >&2; exit 2; }

work="$bdir/fuzz-work"
found="$bdir/fuzz-findings"
rm -rf "$work"
mkdir -p "$work" "$found"
rc=0
n=0
tab=$(printf '\t')
for line in $(echo "$targets" | tr "$tab" '|'); do
    name=${line%%|*}
    exe=${line#*|}
    seeds=$(echo "$corpora" | awk -F'\t' -v e="$exe" '$1 == e { print $2 }')
    mkdir -p "$work/$name/corpus" "$found/$name"
    if [ -n "$seeds" ] && [ -d "$seeds" ]; then
        cp -R "$seeds/." "$work/$name/corpus/"
    fi
    log="$work/$name/log"
    # -error_exitcode: any finding is exit 77; a clean run exits 0.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -error_exitcode=77 -artifact_prefix="$found/$name/" -print_final_stats=1 \
        "$work/$name/corpus" >"$log" 2>&1
    st=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ $st -eq 0 ]; then
        echo "ok   $name: ${secs}s, ${execs:-?} runs, corpus $(ls "$work/$name/corpus" | wc -l) files"
    else
        rc=1
        echo "FAIL $name: exit $st, findings in $found/$name/ (log $log)"
        grep -m1 -E 'ERROR: |runtime error|SUMMARY' "$log" | sed 's/^/     /'
    fi
    n=$((n + 1))
done
echo "fuzz-run: $n targets, ${secs}s each: $([ $rc -eq 0 ] && echo ok || echo FINDINGS)"
exit $rc
