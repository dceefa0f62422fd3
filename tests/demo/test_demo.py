#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The README's main job as a test: record -> replay -> diff on the demo shop.

Records the bundled capture demo.pcap (real keep-alive traffic from
client.py against the baseline build), replays it against the candidate
build with a second baseline as secondary (`replay --baseline --diff`),
and checks the JSON report:
  * every planted change of service.py is reported with its signature and
    noise=false;
  * the volatile fields (request id, timestamp) are never reported as a real
    difference: with the demo rules they are ignored; without them they are
    learned from the secondary and shown as noise;
  * every recorded session was replayed and compared (nothing missing);
  * the gate trips (exit 1) and the reports exist, mode 0600.
All servers listen on 127.0.0.1. TAP output.
Usage: test_demo.py DYETAP
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from tap_util import finish, free_port, ok  # noqa: E402


def start(build):
    port = free_port()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "service.py"), "--build", build,
                          "--port", str(port)], stdout=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return p, port
        time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"demo service ({build}) did not start")


PLANTED = {
    ("GET /api/users/{id}", "body:$.nickname", "extra"),
    ("GET /api/orders/{id}", "body:$.total", "type_changed"),
    ("GET /api/search", "status", "status_changed"),
    ("GET /api/products", "header:cache-control", "value_changed"),
    ("GET /api/report.txt", "body:text[4][2]", "text_changed"),   # refunds: 3 -> 4
    ("GET /api/orders/{id}", "body:$.items[*].qty", "value_changed"),  # element 1
}
# Consequences of the planted 500 on /api/search: its error body differs too.
SEARCH_BODY = {("GET /api/search", loc, kind) for loc, kind in
               (("body:$.error", "extra"), ("body:$.hits", "missing"), ("body:$.q", "missing"))}


def run_case(dy, tmp, rules_text, label):
    rules = os.path.join(tmp, f"{label}.rules")
    with open(rules, "w", encoding="utf-8") as f:
        f.write(rules_text)
    rec = os.path.join(tmp, f"{label}-rec.dyt")
    res = os.path.join(tmp, f"{label}-res.dyt")
    rep = os.path.join(tmp, f"{label}-report.json")
    html = os.path.join(tmp, f"{label}-report.html")
    r = subprocess.run([dy, "record", "-r", os.path.join(HERE, "demo.pcap"), "-w", rec,
                        "--color", "blue=header:x-lane=blue", "--json"],
                       capture_output=True, text=True, timeout=60)
    ok(r.returncode == 0, f"{label}: record exits 0 ({r.stderr.strip()[:200]})")
    counters = json.loads(r.stdout) if r.returncode == 0 else {}
    flat = counters.get("counters", counters)
    ok(flat.get("txn_requests") == 240, f"{label}: 240 requests recorded "
       f"(got {flat.get('txn_requests')})")
    ok(flat.get("lane_blue_sessions") == 132, f"{label}: 132 sessions colored blue "
       f"(got {flat.get('lane_blue_sessions')})")
    cand, cport = start("candidate")
    sec, sport = start("baseline")
    try:
        r = subprocess.run([dy, "replay", rec, "--target", f"http://127.0.0.1:{cport}",
                            "--baseline", f"http://127.0.0.1:{sport}", "--max", "-q",
                            "-o", res, "--diff", "--rules", rules, "--report-json", rep,
                            "--html", html, "--fail-on", "status_changes>0"],
                           capture_output=True, text=True, timeout=120)
    finally:
        cand.kill()
        sec.kill()
        cand.wait()
        sec.wait()
    ok(r.returncode == 1, f"{label}: gate status_changes>0 trips, exit 1 (got {r.returncode}; "
       f"{r.stderr.strip()[:200]})")
    if not ok(os.path.exists(rep), f"{label}: JSON report written"):
        return None
    ok(os.stat(rep).st_mode & 0o077 == 0 and os.stat(html).st_mode & 0o077 == 0,
       f"{label}: reports are mode 0600")
    report = json.load(open(rep, encoding="utf-8"))
    s = report["summary"]
    ok(s.get("compared") == 240, f"{label}: all 240 sessions compared (got {s.get('compared')})")
    return report


def main():
    if len(sys.argv) != 2:
        print("usage: test_demo.py DYETAP", file=sys.stderr)
        return 2
    dy = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(HERE, "diff-rules.txt"), encoding="utf-8") as f:
            demo_rules = f.read()
        report = run_case(dy, tmp, demo_rules, "rules")
        if report:
            real = {(d["endpoint"], d["location"], d["kind"]) for d in report["differences"]
                    if not d["noise"]}
            for sig in sorted(PLANTED):
                ok(sig in real, f"planted change reported: {' '.join(sig)}")
            extra = real - PLANTED - SEARCH_BODY
            ok(not extra, f"nothing else reported as a real difference ({sorted(extra)})")
        # Without the ignore rules, the volatile fields must be learned as noise.
        report = run_case(dy, tmp, "[GET /api/report.txt]\nmask body generated: [0-9T:.-]+\n",
                          "learned")
        if report:
            real = {(d["endpoint"], d["location"]) for d in report["differences"]
                    if not d["noise"]}
            noisy = {(d["endpoint"], d["location"]) for d in report["differences"]
                     if d["noise"]}
            vol = [x for x in real if x[1] in ("body:$.request_id", "body:$.served_at")]
            ok(not vol, f"request_id/served_at never reported as real differences ({vol})")
            ok(("GET /api/users/{id}", "body:$.request_id") in noisy,
               "request_id learned as noise from the secondary")
            real_sigs = {(d["endpoint"], d["location"], d["kind"]) for d in
                         report["differences"] if not d["noise"]}
            ok(PLANTED <= real_sigs, "planted changes still reported with learned noise")
        # No rules at all: report.txt's "generated:" line changes on every
        # answer, next to nothing else on its line; the secondary teaches it,
        # word by word, and the refunds line (3 -> 4) is still a change.
        report = run_case(dy, tmp, "", "norules")
        if report:
            diffs = {(d["endpoint"], d["location"]): d for d in report["differences"]}
            ref = diffs.get(("GET /api/report.txt", "body:text[4][2]"))
            gen = diffs.get(("GET /api/report.txt", "body:text[2][2]"))
            ok(ref is not None and not ref["noise"] and ref["count"] > 0 and
               ref["example"]["primary_value"] == "refunds: 3" and
               ref["example"]["candidate_value"] == "refunds: 4",
               "no rules, with --secondary: refunds 3 -> 4 is a real change", ref)
            ok(gen is not None and gen["noise"] and gen["noise_reason"] == "learned",
               "the generated: timestamp is learned as noise, alone", gen)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
