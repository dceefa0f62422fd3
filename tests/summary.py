#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Count test results from meson's testlog.json.

TAP tests count each "ok"/"not ok" line as one test (meson stores the
subtests in the log); other tests count once. Prints the failing names and
a final line "N passed, N failed, N skipped"; exits 1 when anything failed
or nothing ran.
"""
import json
import re
import sys

passed = failed = skipped = 0
failures = []
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        t = json.loads(line)
        name, result = t["name"], t["result"]
        out = t.get("stdout") or ""
        subs = [m for m in re.finditer(r"^(not ok|ok)\b[^\n]*", out, re.M)]
        if t.get("protocol") == "tap" or subs:
            for m in subs:
                s = m.group(0)
                if "# SKIP" in s or "# skip" in s:
                    skipped += 1
                elif s.startswith("not ok") and "# TODO" not in s:
                    failed += 1
                    failures.append(f"{name}: {s}")
                else:
                    passed += 1
            if result in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS") and not any(
                    s.group(0).startswith("not ok") for s in subs):
                failed += 1
                failures.append(f"{name}: {result}")
            elif result == "SKIP" and not subs:
                skipped += 1
            continue
        if result == "OK" or result == "EXPECTEDFAIL":
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
            failures.append(f"{name}: {result}")
for f in failures:
    print("FAILED:", f)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
