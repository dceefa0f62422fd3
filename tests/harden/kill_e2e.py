#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Crash safety of `dyetap replay -o` and `dyetap mirror -w` (docs/testing.md "Crash safety").

usage: kill_e2e.py DYETAP SOURCE_ROOT GROUP [RUNS]      (TAP output)

A real HTTP/1.1 keep-alive server (a python3 http.server subprocess) runs
on 127.0.0.1. The input is a capture of colored GETs built with
tests/capture/gen_pcap.py whose production server is another, closed,
port of 127.0.0.1 (so the production guard does not object).

replay  `dyetap record` turns it into a recording; one uninterrupted
        `dyetap replay --rate` gives the reference; then RUNS replays are
        SIGKILLed at random points over 5 %..95 % of its run time.
mirror  one uninterrupted `dyetap mirror -r --realtime -w` gives the
        reference; then RUNS runs are SIGKILLed the same way.

For every killed file: `dyetap info --json` exits 0 and reports the state
`unfinished` or `cut` (with a warning on stderr; `complete` only when the
kill came after the trailer), `dyetap cat --json` exits 0 and reads back
exactly the records info counted; every session read back is identical to
a session of the reference run (mirror: the first N of them, in order);
every result refers to a session earlier in the file and has a known
outcome. A kill before the header was written leaves no file or one that
info refuses with a message (exit 2). HARDEN_SEED=N repeats the kill points.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DYETAP, ROOT, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
RUNS = int(sys.argv[4]) if len(sys.argv) > 4 else 10
sys.path.insert(0, os.path.join(ROOT, "tests", "capture"))
import gen_pcap as g  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests"))
from tap_util import finish, free_port, ok  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dyetap-kill-")
procs = []

SERVER = r'''
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ('{"path": "%s", "pad": "%s"}' % (self.path, "x" * 200)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
s.handle_error = lambda *a: None
print(s.server_address[1], flush=True)
s.serve_forever()
'''






def start_server():
    p = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    return int(p.stdout.readline())


def make_pcap(n_conns, n_reqs, avoid):
    port = free_port(avoid=(avoid,))  # the recorded server: not the live one
    frames = []
    for c in range(n_conns):
        conv = g.Conv(cli="127.0.0.1", cport=42000 + c, srv="127.0.0.1", sport=port).handshake()
        for i in range(n_reqs):
            conv.send(True, g.req(b"GET", b"/c%d/r%d" % (c, i), extra=b"x-lane: blue\r\n"))
            conv.send(False, g.resp(200, b"production %d %d" % (c, i)))
        frames.append(g.frame(conv.close(), 1))
    # interleave the connections so every part of the run has traffic
    out = []
    for k in range(max(len(f) for f in frames)):
        out += [f[k] for f in frames if k < len(f)]
    path = os.path.join(TMP, "in.pcap")
    g.write_pcap(path, 1, out)
    return path, len(out)


def read_back(path):
    """(info rc, info json, info stderr, cat rc, records, cat stderr). A writer
    that did not finish left PATH.partial: info finds it from PATH, cat is
    given it (docs/format.md "Where a file is written")."""
    i = subprocess.run([DYETAP, "info", "--json", path], capture_output=True, text=True)
    info = {}
    if i.returncode == 0:
        try:
            info = json.loads(i.stdout)
        except ValueError:
            pass
    read_as = path if os.path.exists(path) else path + ".partial"
    c = subprocess.run([DYETAP, "cat", "--json", read_as], capture_output=True, text=True)
    recs = []
    for line in c.stdout.splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            recs.append(None)
    return i.returncode, info, i.stderr, c.returncode, recs, c.stderr


def count(info, key):
    v = info.get(key)
    if isinstance(v, dict):
        return v.get("total", 0)
    return v if isinstance(v, int) else 0


def check_file(label, path, ref_sessions, prefix_order, status):
    irc, info, ierr, crc, recs, cerr = read_back(path)
    if irc == 2 and status == -signal.SIGKILL and (
            "cannot open" in ierr or "no store header" in ierr or "header" in ierr):
        ok(True, "%s: killed before the header was written: %s" % (label, ierr.strip()[:80]))
        return 0
    state = info.get("state")
    sessions = [r for r in recs if r and "request" in r]
    results = [r for r in recs if r and "session_id" in r]
    bad = [r for r in recs if not r or ("request" not in r and "session_id" not in r)]
    n_info = count(info, "sessions") + count(info, "results")
    problems = []
    if irc != 0 or crc != 0:
        problems.append("info rc %d, cat rc %d" % (irc, crc))
    if status == -signal.SIGKILL:
        if state not in ("unfinished", "cut", "complete"):
            problems.append("state %r" % state)
        if state in ("unfinished", "cut") and "warning" not in ierr:
            problems.append("no warning from info")
        if state in ("unfinished", "cut") and (os.path.exists(path) or
                                                path + ".partial" not in ierr):
            problems.append("an unfinished file must be %s.partial, found by info" % path)
        if state == "cut" and ("cut at byte" not in ierr or not info.get("cut")):
            problems.append("cut not reported")
    elif state != "complete":
        problems.append("finished run but state %r" % state)
    if bad:
        problems.append("%d undecodable records" % len(bad))
    if n_info != len(recs):
        problems.append("info counts %d records, cat read %d" % (n_info, len(recs)))
    ref = {json.dumps(s, sort_keys=True) for s in ref_sessions}
    if prefix_order:
        if sessions != ref_sessions[:len(sessions)]:
            problems.append("sessions are not the first %d of the reference" % len(sessions))
    elif any(json.dumps(s, sort_keys=True) not in ref for s in sessions):
        problems.append("a session not in the reference run")
    seen = set()
    for r in recs:
        if r and "request" in r:
            seen.add(r["id"])
        elif r and "session_id" in r:
            if r["session_id"] not in seen:
                problems.append("result for session %s before it" % r["session_id"])
                break
            if r["error"] not in ("none", "refused", "reset", "timeout", "other"):
                problems.append("result error %r" % r["error"])
                break
    ok(not problems, "%s: %s, %d sessions + %d results read back%s" % (
        label, state, len(sessions), len(results), ": " + "; ".join(problems) if problems else ""),
        ierr + cerr)
    return len(recs) if status == -signal.SIGKILL else 0


def kill_runs(cmd_of, full_s, ref_sessions, prefix_order, seed):
    rnd = random.Random(seed)
    killed = with_data = 0
    for i in range(RUNS):
        at = full_s * (0.05 + 0.9 * rnd.random())
        out = os.path.join(TMP, "k%d.dyt" % i)
        p = subprocess.Popen(cmd_of(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
        p.send_signal(signal.SIGKILL)
        st = p.wait()
        killed += st == -signal.SIGKILL
        with_data += check_file("run %d killed at %.2f s (exit %d)" % (i + 1, at, st), out, ref_sessions,
                   prefix_order, st)
        for f in (out, out + ".partial"):
            if os.path.exists(f):
                os.unlink(f)
    ok(killed > 0, "%d of %d runs were killed mid-write" % (killed, RUNS))
    ok(with_data > 0, "killed files held %d records in all (flushed frames survive)" % with_data)


def reference(cmd, out):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    irc, info, ierr, crc, recs, cerr = read_back(out)
    sessions = [x for x in recs if x and "request" in x]
    results = [x for x in recs if x and "session_id" in x]
    ok(r.returncode == 0 and info.get("state") == "complete" and sessions and results,
       "uninterrupted run: complete, %d sessions, %d results, %.2f s" % (
           len(sessions), len(results), took), r.stderr + ierr)
    return took, sessions, results


def group_replay(seed):
    port = start_server()
    pcap, _ = make_pcap(15, 40, port)
    rec = os.path.join(TMP, "rec.dyt")
    r = subprocess.run([DYETAP, "record", "-r", pcap, "-w", rec], capture_output=True, text=True)
    ok(r.returncode == 0, "recorded the capture", r.stderr)
    target = "http://127.0.0.1:%d" % port

    def cmd(out):
        return [DYETAP, "replay", rec, "--target", target, "--rate", "500", "-q", "-o", out]

    full = os.path.join(TMP, "full.dyt")
    took, sessions, results = reference(cmd(full), full)
    ok(len(sessions) == 600 and len(results) == 600 and
       all(x["error"] == "none" for x in results), "reference: 600 sessions, 600 ok results")
    kill_runs(cmd, took, sessions, False, seed)


def group_mirror(seed):
    port = start_server()
    pcap, n_frames = make_pcap(15, 40, port)

    def cmd(out):
        return [DYETAP, "mirror", "-r", pcap, "--realtime", "--color", "blue=header:x-lane=blue",
                "--lane", "blue=http://127.0.0.1:%d" % port, "-w", out, "--drain-timeout", "2s"]

    full = os.path.join(TMP, "full.dyt")
    took, sessions, results = reference(cmd(full), full)
    ok(len(sessions) == 600 and len(results) == 600, "reference: 600 sessions, 600 results "
       "(%d frames 1 ms apart)" % n_frames)
    kill_runs(cmd, took, sessions, True, seed)


def main():
    seed = int(os.environ.get("HARDEN_SEED", random.randrange(1 << 16)))
    print("# seed %d" % seed)
    try:
        {"replay": group_replay, "mirror": group_mirror}[GROUP](seed)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(TMP, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
