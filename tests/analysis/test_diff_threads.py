#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The report of `dyetap diff` is byte for byte the same for --threads 1,
2 and 3 (docs/diff.md "Threads"): JSON, HTML and JUnit. With threads the
reading thread hands data frames to the threads, which decompress and
decode them, settles them in file order and pairs their records; the
threads compare the pairs. The files, written by diff_scalegen (see its
header) with small frames (--flush), have hundreds of frames, results
that come a few sessions after their session (so pairs are split across
frames) and, in the hostile mode, a group and an endpoint per differing
pair:

  - lag 5, stated in the header: every pair compared;
  - the same file with bytes flipped in two data frames and cut short:
    the same damage and cut in every report, the rest compared;
  - results 40 sessions late without a result_lag in the header, under a
    small --max-window: sessions closed early at the window cap and
    their late results counted (window_closed_early, window_orphans);
    sessions held past the end of their frame are copied out of it;
  - with --redact: redacted results are copied out of the redactor's
    memory before they go to another thread;
  - DYETAP_MAX_RECORDS: reading stops at the record cap in the middle
    of the file, while later frames were already taken;
  - --max-inflight below one frame's content: each frame read alone,
    counted (frames_over_inflight) the same way for every N.

Not timed.

usage: test_diff_threads.py DYETAP DIFF_SCALEGEN
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
tmp = tempfile.mkdtemp(prefix="dyetap-diff-threads-")
N = 6000


def make(name, *args):
    path = os.path.join(tmp, name + ".dyt")
    subprocess.run([gen, path, str(N), "--body", "300", "--flush", "8192", *args], check=True)
    return path


def diff(path, threads, *args, env=None):
    """The three reports of one run, as bytes, and the exit code."""
    d = os.path.join(tmp, "t%s" % threads)
    os.makedirs(d, exist_ok=True)
    outs = [os.path.join(d, "r." + k) for k in ("json", "html", "xml")]
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([dyetap, "diff", path, "--threads", str(threads), "--quiet",
                        "--json", outs[0], "--html", outs[1], "--junit", outs[2], *args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e)
    reps = []
    for o in outs:
        if os.path.exists(o):
            with open(o, "rb") as f:
                reps.append(f.read())
            os.unlink(o)
        else:
            reps.append(b"")
    return p.returncode, reps, p.stderr.decode(errors="replace")


def frames(path):
    p = subprocess.run([dyetap, "info", path, "--json"], capture_output=True, text=True)
    try:
        return json.loads(p.stdout).get("frames", 0)
    except ValueError:
        return 0


def counters(rep):
    return {c["name"]: c["value"] for c in rep.get("accounting", {}).get("counters", [])
            if c.get("source") == "diff"}


def same(name, path, *args, env=None, check=None):
    runs = [diff(path, t, *args, env=env) for t in (1, 2, 3)]
    rc, reps, err = runs[0]
    ok(rc in (0, 1) and all(reps), "%s: reports written (rc %d, %s)" % (name, rc, err.strip()[:200]))
    for t, (rct, rt, errt) in zip((2, 3), runs[1:]):
        for k, a, b in zip(("JSON", "HTML", "JUnit"), reps, rt):
            ok(rct == rc and a == b and a,
               "%s: the %s report of --threads %d is the same bytes as of --threads 1"
               % (name, k, t))
    rep = json.loads(reps[0]) if reps[0] else {}
    if check:
        check(rep)
    return rep


try:
    lag = make("lag", "--mode", "hostile", "--differ", "3", "--lag", "5")
    nf = frames(lag)
    ok(nf >= 200, "the file has many frames (%d)" % nf)

    def full(rep):
        s = rep.get("summary", {})
        ok(s.get("compared") == N and s.get("differing") == N // 3,
           "lag 5: every pair compared, every third differs (%s, %s)"
           % (s.get("compared"), s.get("differing")))
        ok(s.get("groups", 0) >= N // 3 and s.get("endpoints", 0) > N // 3,
           "lag 5: a group and an endpoint per differing pair (%s, %s)"
           % (s.get("groups"), s.get("endpoints")))
        ok(rep.get("data_incomplete") is False, "lag 5: data complete")
    same("lag 5", lag, check=full)

    # Two data frames damaged, the tail cut: both readings note the same.
    with open(lag, "rb") as f:
        b = bytearray(f.read())
    for frac in (0.35, 0.6):
        i = int(len(b) * frac)
        b[i] ^= 0xFF
        b[i + 1] ^= 0x55
    damaged = os.path.join(tmp, "damaged.dyt")
    with open(damaged, "wb") as f:
        f.write(b[:int(len(b) * 0.9)])

    def hurt(rep):
        s = rep.get("summary", {})
        why = " ".join(rep.get("incomplete_reasons", []))
        ok(rep.get("data_incomplete") is True and "damaged frame" in why and "cut short" in why,
           "damaged: the damage and the cut are reported (%s)" % why[:300])
        ok(0 < s.get("compared", 0) < N, "damaged: the other pairs compared (%s)"
           % s.get("compared"))
    same("damaged", damaged, check=hurt)

    late = make("late", "--mode", "hostile", "--differ", "3", "--lag", "40", "--no-lag")

    def early(rep):
        c = counters(rep)
        ok(c.get("window_closed_early", 0) > 0 and c.get("window_orphans", 0) > 0,
           "window: sessions closed early and their results counted (%s)" % c)
    same("window", late, "--max-window", "8K", check=early)
    same("window, large enough", late, "--max-window", "8M",
         check=lambda rep: ok(rep.get("summary", {}).get("compared") == N,
                              "window, large enough: every pair compared"))

    same("redact", lag, "--redact", "header:content-type:mask",
         check=lambda rep: ok(rep.get("summary", {}).get("compared") == N,
                              "redact: every pair compared"))

    def capped(rep):
        s = rep.get("summary", {})
        ok(rep.get("data_incomplete") is True and 0 < s.get("compared", 0) < N // 2,
           "record cap: reading stopped at the cap (%s compared)" % s.get("compared"))
    same("record cap", lag, env={"DYETAP_MAX_RECORDS": str(N // 2 + 7)}, check=capped)

    def alone(rep):
        c = counters(rep)
        ok(c.get("frames_over_inflight", 0) >= nf - 2 and
           rep.get("summary", {}).get("compared") == N,
           "in-flight cap: every frame over it counted, every pair compared (%s)" % c)
    same("in-flight cap", lag, "--max-inflight", "4k", check=alone)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("1..%d" % n)
sys.exit(1 if failed else 0)
