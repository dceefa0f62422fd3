#!/bin/sh
# SPDX-License-Identifier: MIT
# ThreadSanitizer over the threaded parts of dyetap (docs/architecture.md
# "Threads"): the store writer's helper thread, replay's event-loop threads
# and results writer queue, mirror with its store thread and its capture
# and sender threads (replay/shadow_sender.h, also the fast path's),
# `dyetap diff --threads`'s decoding and comparing threads
# (analysis-threads), and the fast path's RX lcores, workers and shadow
# sender (its rings are announced to
# ThreadSanitizer in dpdk/fp_private.h; DPDK's own ring indexes and
# telemetry lock are suppressed in tests/tsan.supp). Any report fails the
# test that triggered it (halt_on_error).
#
# Usage: tests/tsan.sh [BUILD_DIR]     (default build-tsan, created when missing)
# Ends with the summary line of tests/summary.py; exits non-zero on failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$top/build-tsan}
case "$b" in /*) ;; *) b=$(pwd)/$b ;; esac
if [ ! -f "$b/build.ninja" ]; then
    meson setup "$b" "$top" -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized \
        -Dwerror=true >/dev/null || { echo "tsan: meson setup failed"; exit 2; }
fi
# Only what the tests below run (the rest of the tree is not threaded).
targets="cli/dyetap tests/store/test_store tests/store/test_store_kill tests/store/store_testgen
    tests/replay/test_replay_wq
    tests/replay/replay_testtool tests/mirror/test_shadow_sender
    tests/analysis/diff_scalegen"
grep -q "dyetap-fastpath" "$b/build.ninja" && targets="$targets dpdk/dyetap-fastpath"
# shellcheck disable=SC2086 # one word per target
meson compile -C "$b" $targets >"$b/tsan-build.log" 2>&1 || {
    tail -n 30 "$b/tsan-build.log"
    echo "tsan: build failed"
    exit 2
}
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$top/tests/tsan.supp"
# Everything runs 5 to 15 times slower: the fast path's tests wait longer
# for an idle port before they call the capture over (tests/dpdk).
export DYETAP_TEST_EXIT_IDLE_MS=3000
# ... and their per-run hang guard (20 s) grows with the slowdown.
export DYETAP_TEST_TIME_SCALE=3
# ... and mirror-live-slow-lane paces its wrk load (what it checks there is
# the hand-over between mirror's threads, not the machine's speed).
export DYETAP_TEST_LIGHT_LOAD=1
tests="store store-kill replay-wq replay-e2e-control replay-e2e-fidelity mirror-e2e-realtime
    harden-mirror-kill mirror-sender-unit mirror-live-slow-lane mirror-e2e-queuefull
    analysis-threads"
if [ -x "$b/dpdk/dyetap-fastpath" ]; then
    # The lcores, workers, rings and shadow sender run in these three;
    # fastpath-shadow*, -telemetry are left to the ASan run: they check wall
    # clock deadlines (finished within 20 s, telemetry answering within
    # 10 s) that ThreadSanitizer's slowdown on a busy 2-CPU machine misses.
    tests="$tests fastpath-workers fastpath-parity-users loop-live-fastpath"
fi
# shellcheck disable=SC2086 # one word per test name
meson test -C "$b" --no-rebuild --print-errorlogs --num-processes 2 \
    --timeout-multiplier 4 $tests >"$b/tsan-output.txt" 2>&1
rc=$?
grep -E '^ *[0-9]+/[0-9]+ ' "$b/tsan-output.txt"
python3 "$top/tests/summary.py" "$b/meson-logs/testlog.json"
sum=$?
[ $rc -eq 0 ] && [ $sum -eq 0 ]
