#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sleeping connections lose nothing: for every capture given, `dyetap record`
with every idle connection put to sleep (--http-sleep-mem 0: the HTTP state
is freed whenever nothing is in flight and re-created on the next byte)
writes exactly the sessions of a run in which no connection ever sleeps
(--http-sleep-mem 1000G): `dyetap cat --json` output equal line for line
(ids, connection ids and indexes, timestamps, flags, headers, bodies), and
every counter equal except pipe_dormant, pipe_woken and txn_mem_peak.
Across all captures some connections must have slept and been woken, or
the test proves nothing and fails.

Usage: run_dormant.py DYETAP PCAP|CASE_DIR [...]   (TAP output)
"""
import json
import os
import subprocess
import sys
import tempfile

SLEEP_ONLY = {"pipe_dormant", "pipe_woken", "txn_mem_peak", "pipe_txn_mem_peak"}


def record(dyetap, pcap, out, sleep_mem):
    r = subprocess.run(
        [dyetap, "record", "-r", pcap, "-w", out, "--http-sleep-mem", sleep_mem, "--json"],
        capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"record exited {r.returncode}: {r.stderr.strip()}")
    c = json.loads(r.stdout)
    c.pop("cpu_capture_thread_ms", None)
    c.pop("cpu_total_ms", None)
    cat = subprocess.run([dyetap, "cat", "--json", out], capture_output=True, text=True,
                         timeout=120)
    if cat.returncode != 0:
        raise RuntimeError(f"cat exited {cat.returncode}: {cat.stderr.strip()}")
    return c, cat.stdout.splitlines()


def main():
    dyetap, inputs = sys.argv[1], sys.argv[2:]
    pcaps = [os.path.join(p, "input.pcap") if os.path.isdir(p) else p for p in inputs]
    print(f"1..{len(pcaps) + 1}")
    failed = 0
    dormant = woken = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, pcap in enumerate(pcaps, 1):
            name = os.path.relpath(pcap, os.path.dirname(os.path.dirname(pcap)))
            try:
                c_awake, s_awake = record(dyetap, pcap, os.path.join(tmp, "a.dyt"), "1000G")
                c_sleep, s_sleep = record(dyetap, pcap, os.path.join(tmp, "s.dyt"), "0")
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
                print(f"not ok {i} - {name}: {e}")
                failed += 1
                continue
            dormant += c_sleep.get("pipe_dormant", 0)
            woken += c_sleep.get("pipe_woken", 0)
            problems = []
            if c_awake.get("pipe_dormant", 0) != 0:
                problems.append(f"slept without pressure: {c_awake['pipe_dormant']}")
            if s_awake != s_sleep:
                bad = next(k for k in range(max(len(s_awake), len(s_sleep)))
                           if k >= len(s_awake) or k >= len(s_sleep) or s_awake[k] != s_sleep[k])
                problems.append(f"sessions differ from line {bad + 1} "
                                f"({len(s_awake)} awake, {len(s_sleep)} sleeping)")
            keys = (set(c_awake) | set(c_sleep)) - SLEEP_ONLY
            diff = sorted(k for k in keys if c_awake.get(k) != c_sleep.get(k))
            if diff:
                problems.append("counters differ: " + ", ".join(
                    f"{k} {c_awake.get(k)} vs {c_sleep.get(k)}" for k in diff[:5]))
            if problems:
                print(f"not ok {i} - {name}: " + "; ".join(problems))
                failed += 1
            else:
                print(f"ok {i} - {name}: {len(s_sleep)} sessions equal, "
                      f"{c_sleep.get('pipe_dormant', 0)} sleeps, {c_sleep.get('pipe_woken', 0)} wakes")
    ok = dormant > 0 and woken > 0
    print(f"{'ok' if ok else 'not ok'} {len(pcaps) + 1} - the sleep path ran: "
          f"{dormant} sleeps, {woken} wakes in all")
    return 0 if failed == 0 and ok else 1


if __name__ == "__main__":
    sys.exit(main())
