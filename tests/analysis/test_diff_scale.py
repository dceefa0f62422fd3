#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Memory bound of `dyetap diff` (docs/diff.md "Limits"): results files
whose records are many times larger than the diff's caps are compared
pair by pair, every pair counted, while the peak RSS stays within the
caps plus a fixed allowance over a small control file diffed in the same
run. Files are written by diff_scalegen (see its header):

  - plain: one difference group, results right after their sessions
    (result_lag 0, as replay writes them): nothing is capped;
  - hostile: every other pair a new group and a new endpoint: the
    memory cap is hit, counted (groups_over_cap, endpoints_over_cap) and
    the verdict says data_incomplete, yet every pair is compared; the
    HTML stays under 5 MB, JSON and JUnit bounded by groups and endpoints;
  - late: results 4000 sessions after theirs without a result_lag in the
    header (an older writer): the window cap closes sessions early,
    counted (window_closed_early, window_orphans); the same file stating
    its result_lag is paired completely within the window;
  - the report is the same with --threads 1 and --threads 2 (below the
    caps: at a cap, which new group finds room depends on arrival order).

Not timed: the bound is on memory and counts only.

usage: test_diff_scale.py DYETAP DIFF_SCALEGEN
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

n = 0
failed = 0


def ok(cond, what):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n, what), flush=True)
    return cond


dyetap, gen = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="dyetap-diff-scale-")
env = dict(os.environ)
# ASan keeps freed memory in quarantine (256 MB by default): keep it small so
# RSS shows what the differ holds, not what the sanitizer holds back.
env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
                       ":thread_local_quarantine_size_kb=256").lstrip(":")

MIB = 1 << 20
MAX_MEMORY = 16 * MIB
MAX_WINDOW = 4 * MIB
# What a diff process holds beside its caps (code, reader buffers, the
# decoded frame, one pair's bodies, sanitizer shadow and allocator slack).
ALLOWANCE = 48 * MIB


def make(name, count, *args):
    path = os.path.join(tmp, name + ".dyt")
    subprocess.run([gen, path, str(count), *args], check=True)
    return path


def diff(path, *args):
    """Run dyetap diff with the test's caps; (rc, report, peak RSS bytes, stderr)."""
    out = os.path.join(tmp, "r.json")
    cmd = [dyetap, "diff", path, "--json", out, "--quiet", "--max-memory", str(MAX_MEMORY),
           "--max-window", str(MAX_WINDOW), *args]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    rep = None
    if os.path.exists(out):
        with open(out) as f:
            rep = json.load(f)
        os.unlink(out)
    return p.returncode, rep, ru.ru_maxrss * 1024, err


def counters(rep, source="diff"):
    acc = rep.get("accounting", {}) if rep else {}
    out = {}
    for c in acc.get("counters", []):
        if c.get("source") == source:
            out[c["name"]] = c["value"]
    return out


def summary(rep):
    return rep.get("summary", {}) if rep else {}


try:
    control = make("control", 2000)
    rc, rep, rss0, err = diff(control)
    ok(rc == 0 and summary(rep).get("compared") == 2000,
       "control: 2000 pairs compared (rc %d, %s)" % (rc, err.strip()[:200]))
    print("# control peak RSS %.1f MiB" % (rss0 / MIB))
    bound = rss0 + MAX_MEMORY + MAX_WINDOW + ALLOWANCE

    N = 120000
    plain = make("plain", N, "--body", "2000")
    data = 2 * N * 2100  # two ~2 KB JSON bodies per pair, before headers
    print("# plain: %d pairs, about %.0f MiB of response bodies" % (N, data / MIB))
    ok(data > 20 * (MAX_MEMORY + MAX_WINDOW) and data > 4 * bound,
       "the file's data is far larger than the caps and the RSS bound")
    rc, rep, rss, err = diff(plain)
    s = summary(rep)
    ok(s.get("compared") == N, "plain: every pair compared (%s)" % s.get("compared"))
    ok(s.get("differing") == N // 4, "plain: every 4th pair differs (%s)" % s.get("differing"))
    ok(rep is not None and rep.get("data_incomplete") is False, "plain: data complete, nothing capped")
    ok(rss <= bound, "plain: peak RSS %.1f MiB within %.1f MiB" % (rss / MIB, bound / MIB))

    # Before the hostile case: a child's peak RSS (ru_maxrss) starts from
    # this process's own at fork, and loading the hostile case's 21 MB
    # report grows it past the bound.
    # Results 4000 sessions late: 4000 x ~2.3 KB sessions exceed the 4 MiB window.
    late = make("late", 40000, "--body", "2000", "--lag", "4000", "--no-lag")
    rc, rep, rss, err = diff(late)
    s = summary(rep)
    c = counters(rep)
    ok(c.get("window_closed_early", 0) > 0 and c.get("window_orphans", 0) > 0,
       "late, lag not stated: sessions closed at the window cap, counted (%s)" % c)
    ok(rep is not None and rep.get("data_incomplete") is True, "late, lag not stated: data_incomplete")
    classes = {x["name"]: x.get("class") for x in rep.get("accounting", {}).get("counters", [])
               if x.get("source") == "diff"} if rep else {}
    ok(classes.get("window_closed_early") == "loss" and classes.get("window_orphans") == "loss",
       "late: window_closed_early and window_orphans are losses, as docs/diff.md says (%s)"
       % classes)
    ok(s.get("unreplayed") == 0,
       "late: sessions closed at the window cap are not reported as not replayed (their "
       "results are in the file; unreplayed %s)" % s.get("unreplayed"))
    ok(rss <= bound, "late: peak RSS %.1f MiB within %.1f MiB" % (rss / MIB, bound / MIB))
    stated = make("stated", 40000, "--body", "2000", "--lag", "4000")
    rc, rep, rss, err = diff(stated, "--max-window", str(16 * MIB))
    s = summary(rep)
    ok(s.get("compared") == 40000 and not counters(rep).get("window_closed_early"),
       "late, lag stated, window large enough: every pair compared (%s)" % s.get("compared"))

    hostile = make("hostile", N, "--body", "2000", "--mode", "hostile", "--differ", "2")
    html, junit = os.path.join(tmp, "h.html"), os.path.join(tmp, "h.xml")
    rc, rep, rss, err = diff(hostile, "--html", html, "--junit", junit)
    s = summary(rep)
    c = counters(rep)
    # Reports are bounded by groups and endpoints (themselves capped), not pairs.
    hs = os.path.getsize(html) if os.path.exists(html) else -1
    js = len(json.dumps(rep)) if rep else -1
    units = len(rep.get("differences", [])) + len(rep.get("endpoints", [])) if rep else 0
    ok(0 < hs <= 5 * 10**6, "hostile: the HTML report is at most 5 MB (%d bytes)" % hs)
    ok(0 < js <= 16384 * (units + 16), "hostile: the JSON report is bounded by its %d groups and "
       "endpoints (%d bytes)" % (units, js))
    ok(os.path.exists(junit) and
       os.path.getsize(junit) <= 4096 * (len(rep.get("endpoints", [])) + 16),
       "hostile: the JUnit report is bounded by its endpoints")
    ok(s.get("compared") == N, "hostile: every pair compared (%s)" % s.get("compared"))
    ok(s.get("differing") == N // 2,
       "hostile: every differing pair counted, over the caps too (%s)" % s.get("differing"))
    ok(c.get("groups_over_cap", 0) > 0 or c.get("endpoints_over_cap", 0) > 0,
       "hostile: the memory cap was hit and counted (%s)" % c)
    ok(rep is not None and rep.get("data_incomplete") is True, "hostile: the verdict says data_incomplete")
    ok(rss <= bound, "hostile: peak RSS %.1f MiB within %.1f MiB" % (rss / MIB, bound / MIB))

    # Input and output errors are found before the analysis (docs/diff.md:
    # exit 2 is a usage or input error, 3 a failure at the end).
    rc, rep, rss, err = diff(plain, "--html", os.path.join(tmp, "no-such-dir", "r.html"))
    ok(rc == 2 and "no-such-dir" in err,
       "a report in a directory that does not exist: exit 2 before the analysis (rc %d, %s)"
       % (rc, err.strip()[:200]))
    rc, rep, rss, err = diff(plain, "--junit", tmp)
    ok(rc == 2 and "is a directory" in err,
       "a report path that is a directory: exit 2 (rc %d, %s)" % (rc, err.strip()[:200]))
    for args, what in ((("--html", ""), "an empty report path"),
                       (("--html", os.path.join(tmp, "same.out"), "--junit",
                         os.path.join(tmp, "same.out")), "two reports naming the same file"),
                       (("--html", "-", "--junit", "-"), "two reports to stdout")):
        rc, rep, rss, err = diff(plain, *args)
        ok(rc == 2 and err.strip(), "%s: exit 2 with a message (rc %d, %s)"
           % (what, rc, err.strip()[:200]))
    # A report that cannot be written at the end (/dev/full: every write
    # fails) costs that report, not the others nor the summary: exit 3.
    if os.path.exists("/dev/full"):
        junit_ok = os.path.join(tmp, "ok.xml")
        p = subprocess.run([dyetap, "diff", control, "--html", "/dev/full", "--junit", junit_ok],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        ok(p.returncode == 3 and os.path.getsize(junit_ok) > 0 if os.path.exists(junit_ok)
           else False, "a report that fails to write: exit 3, the other report written "
           "(rc %d)" % p.returncode)
        ok(b"compared 2000 responses" in p.stdout and b"/dev/full" in p.stderr,
           "a report that fails to write: the summary still printed, the failure named")
    pcap = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden",
                        "python-chunked", "input.pcap")
    rec = os.path.join(tmp, "rec.dyt")
    subprocess.run([dyetap, "record", "-r", pcap, "-w", rec], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    rc, rep, rss, err = diff(rec)
    ok(rc == 2 and "is a recording" in err and "dyetap replay" in err,
       "a recording given instead of results: exit 2, saying to replay it first (rc %d, %s)"
       % (rc, err.strip()[:200]))
    os.unlink(rec)

    # The same report whatever the number of threads: the plain file, and
    # a hostile one (a group and an endpoint per differing pair) under caps
    # it does not reach.
    small = make("small-hostile", 20000, "--mode", "hostile", "--differ", "3")
    for name, path, extra in (("plain", plain, ()),
                              ("hostile", small, ("--max-memory", "256M"))):
        reports = []
        for t in ("1", "2"):
            rc, rep, rss, err = diff(path, "--threads", t, *extra)
            reports.append(json.dumps(rep, sort_keys=True))
        ok(reports[0] == reports[1] and reports[0] != "null",
           "%s: the JSON report is the same with --threads 1 and --threads 2" % name)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("1..%d" % n)
sys.exit(1 if failed else 0)
