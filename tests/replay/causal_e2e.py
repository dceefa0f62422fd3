#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of causal order (--order) and --before/--after.

Usage: causal_e2e.py DYETAP TESTTOOL GROUP   (GROUP: order | hooks)

Recordings are written with replay_testtool mkrec, whose 9th column sets
when each recorded response ended, so the happens-before is known. The
server is a threaded HTTP/1.1 server on 127.0.0.1 that logs when each
request arrived and when its response was sent; paths choose its
behaviour: /slow/MS/... answers after MS ms, /reset/... resets the
connection, /hang/... never answers. Prints TAP.
"""
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, ok, serve_http  # noqa: E402

DYETAP, TOOL, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
TMP = tempfile.mkdtemp(prefix="dyetap-causal-")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def handle_one(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path = self.path
        self.server.log.append(("arrive", time.time(), self.command, path))
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "slow":
            time.sleep(int(parts[2]) / 1000.0)
        elif len(parts) > 1 and parts[1] == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        elif len(parts) > 1 and parts[1] == "hang":
            time.sleep(3)
            self.close_connection = True
            return
        body = ("%s %s" % (self.command, path)).encode()
        # "done" is the time before the answer goes out: logged after it,
        # a request the client sends on getting it could be logged first
        done = time.time()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.server.log.append(("done", done, self.command, path))

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = handle_one


def mkrec(name, rows):
    """rows: (conn, ts_ms, method, target, resp_ms[, port])"""
    path = os.path.join(TMP, name)
    lines = []
    for r in rows:
        port = r[5] if len(r) > 5 else "-"
        lines.append("\t".join(str(x) for x in
                               [r[0], r[1], r[2], r[3], "-", "-", "-", "-", r[4], port]))
    subprocess.run([TOOL, "mkrec", path], input="\n".join(lines) + "\n", text=True, check=True)
    return path


def replay(rec, port, args, timeout=30):
    out = os.path.join(TMP, "res.dyt")
    p = subprocess.run([DYETAP, "replay", rec, "--target", "http://127.0.0.1:%d" % port,
                        "-o", out, "--json", "-q"] + args,
                       capture_output=True, text=True, timeout=timeout)
    js = None
    try:
        js = json.loads(p.stdout)
    except ValueError:
        pass
    return p.returncode, js, p.stderr, out


def results(path):
    out = subprocess.run([TOOL, "dump", path], capture_output=True, text=True)
    sess, res = {}, []
    for line in out.stdout.splitlines():
        o = json.loads(line)
        if "session" in o:
            sess[o["session"]["id"]] = o["session"]
        elif "result" in o:
            res.append(o["result"])
    by_target = {}
    for r in res:
        by_target[sess[r["session_id"]]["request"]["target"]] = r
    return by_target


def t_of(log, kind, path):
    for k, t, _m, p in log:
        if k == kind and p == path:
            return t
    return None


# Recording A: a slow write on connection 1 after three reads; a read that
# started after it ended (connection 2), a read concurrent with it
# (connection 3), a write after everything (connection 4).
ROWS_A = [(1, 0, "GET", "/a1", 1), (1, 2, "GET", "/a2", 1), (1, 4, "GET", "/a3", 1),
          (1, 6, "PUT", "/slow/300/w", 10),
          (3, 10, "GET", "/c", 2),
          (2, 50, "GET", "/r", 1),
          (4, 60, "POST", "/p", 1)]


def group_order():
    srv, port = serve_http(Handler)
    rec = mkrec("a.dyt", ROWS_A)

    rc, js, err, out = replay(rec, port, ["--max", "--allow-writes"])
    log = list(srv.log)
    w_done, r_arr = t_of(log, "done", "/slow/300/w"), t_of(log, "arrive", "/r")
    c_arr, p_arr = t_of(log, "arrive", "/c"), t_of(log, "arrive", "/p")
    r_done = t_of(log, "done", "/r")
    ok(rc == 0 and js and js["order"] == "causal" and js["sent"] == 7 and js["ok"] == 7,
       "a recording with writes is replayed in causal order by default",
       (rc, err, js and js.get("order")))
    ok(None not in (w_done, r_arr) and r_arr >= w_done,
       "a read recorded after a write ended is sent after the write's response (%.3f s after)"
       % ((r_arr or 0) - (w_done or 0)), log)
    ok(None not in (w_done, c_arr) and c_arr < w_done - 0.1,
       "a read concurrent with the write in production stays concurrent", log)
    ok(None not in (p_arr, r_done) and p_arr >= r_done and p_arr >= w_done,
       "a write waits for the reads and writes that ended before it started", log)
    res = results(out)
    ok(js and js["causal_delay_ms"]["waited"] == 2 and js["counters"]["causal_waits"] == 2 and
       res["/r"].get("causal_wait_ns", 0) > 200e6 and "causal_wait_ns" not in res["/c"] and
       js["causal_delay_ms"]["max"] >= 200,
       "causal waits are counted (2), reported apart (summary, causal_wait_ns) and measured",
       (js and js["causal_delay_ms"], {k: v.get("causal_wait_ns") for k, v in res.items()}))
    ok(js and js["lateness_ms"]["max"] < 250,
       "scheduling lateness leaves the causal wait out (max %.1f ms)" %
       (js["lateness_ms"]["max"] if js else -1), js and js["lateness_ms"])

    srv.log.clear()
    rc, js, err, out = replay(rec, port, ["--max", "--allow-writes", "--order", "pace"])
    log = list(srv.log)
    w_done, r_arr = t_of(log, "done", "/slow/300/w"), t_of(log, "arrive", "/r")
    ok(rc == 0 and js["order"] == "pace" and None not in (w_done, r_arr) and r_arr < w_done,
       "--order pace at --max: the read overtakes the write (the race causal order prevents)",
       (rc, err, log))

    # Dependencies across threads: 8 reads on 8 connections after the write.
    rows = [(1, 0, "PUT", "/slow/300/w", 5)] + [(10 + k, 20 + k, "GET", "/r%d" % k, 1)
                                                  for k in range(8)]
    rec8 = mkrec("t.dyt", rows)
    srv.log.clear()
    rc, js, err, out = replay(rec8, port, ["--max", "--allow-writes", "--threads", "2"])
    log = list(srv.log)
    w_done = t_of(log, "done", "/slow/300/w")
    arr = [t_of(log, "arrive", "/r%d" % k) for k in range(8)]
    ok(rc == 0 and js["sent"] == 9 and w_done and None not in arr and min(arr) >= w_done,
       "--threads 2: reads on both threads wait for the write on one of them",
       (rc, err, log))

    # A failed dependency releases its dependents; a hung one after the timeout.
    recf = mkrec("f.dyt", [(1, 0, "PUT", "/reset/w", 5), (2, 20, "GET", "/r", 1)])
    srv.log.clear()
    rc, js, err, out = replay(recf, port, ["--max", "--allow-writes"])
    ok(rc == 0 and js["sent"] == 2 and js["ok"] == 1 and js["errors"]["reset"] == 1,
       "a dependency that fails (reset) releases the request waiting for it", (rc, err, js))
    rech = mkrec("h.dyt", [(1, 0, "PUT", "/hang/w", 5), (2, 20, "GET", "/r", 1)])
    srv.log.clear()
    t0 = time.monotonic()
    rc, js, err, out = replay(rech, port, ["--max", "--allow-writes", "--timeout", "500ms"])
    el = time.monotonic() - t0
    res = results(out)
    ok(rc == 0 and js["errors"]["timeout"] == 1 and js["ok"] == 1 and el < 3 and
       res["/r"].get("causal_wait_ns", 0) >= 400e6,
       "a dependency that times out releases it after --timeout (waited %.0f ms)" %
       (res.get("/r", {}).get("causal_wait_ns", 0) / 1e6), (rc, err, js, el))

    # --speed 1: a slow response delays its dependent; that delay is causal.
    recs = mkrec("s.dyt", [(1, 0, "PUT", "/slow/250/w", 5), (2, 50, "GET", "/r", 1),
                           (3, 100, "GET", "/x", 1)])
    for mode in (["--speed", "1"], ["--rate", "20"]):
        srv.log.clear()
        rc, js, err, out = replay(recs, port, mode + ["--allow-writes"])
        res = results(out)
        cw = res.get("/r", {}).get("causal_wait_ns", 0) / 1e6
        ok(rc == 0 and js["order"] == "causal" and 120 < cw < 260 and
           js["causal_delay_ms"]["waited"] >= 1 and js["lateness_ms"]["p50"] < 20,
           "%s: the slow write delays its dependent by %.0f ms, reported as causal delay, "
           "scheduling lateness p50 %.1f ms" % (" ".join(mode), cw,
                                                js["lateness_ms"]["p50"] if js else -1),
           (rc, err, js and js["causal_delay_ms"], js and js["lateness_ms"]))

    # Reads only: auto is pace; strict orders reads too.
    recg = mkrec("g.dyt", [(1, 0, "GET", "/slow/300/x", 5), (2, 20, "GET", "/y", 1)])
    srv.log.clear()
    rc, js, err, out = replay(recg, port, ["--max"])
    log = list(srv.log)
    ok(rc == 0 and js["order"] == "pace" and
       t_of(log, "arrive", "/y") < t_of(log, "done", "/slow/300/x"),
       "a recording without writes is replayed in pace order by default", (rc, err, log))
    srv.log.clear()
    rc, js, err, out = replay(recg, port, ["--max", "--order", "causal"])
    log = list(srv.log)
    ok(rc == 0 and js["order"] == "causal" and js["causal_services"] == 0 and
       t_of(log, "arrive", "/y") < t_of(log, "done", "/slow/300/x"),
       "--order causal: reads do not wait for reads", (rc, err, log))
    srv.log.clear()
    rc, js, err, out = replay(recg, port, ["--max", "--order", "strict"])
    log = list(srv.log)
    ok(rc == 0 and js["order"] == "strict" and js["causal_services"] == 1 and
       t_of(log, "arrive", "/y") >= t_of(log, "done", "/slow/300/x"),
       "--order strict: a read waits for the reads that ended before it started",
       (rc, err, log))
    rc, js, err, out = replay(rec, port, ["--max"])
    ok(rc == 0 and js["order"] == "pace" and js["counters"]["skipped_writes"] == 2,
       "without --allow-writes no write is replayed: pace order", (rc, err, js))

    # Services: a write to port 81 does not order a read of port 80, unless
    # --causal-scope target.
    recv = mkrec("v.dyt", [(1, 0, "PUT", "/slow/300/w", 5, 81), (2, 20, "GET", "/y", 1, 80)])
    srv.log.clear()
    rc, js, err, out = replay(recv, port, ["--max", "--allow-writes"])
    log = list(srv.log)
    ok(rc == 0 and js["causal_services"] == 1 and
       t_of(log, "arrive", "/y") < t_of(log, "done", "/slow/300/w"),
       "dependencies are per recorded server: another service's write is not waited for",
       (rc, err, log))
    srv.log.clear()
    rc, js, err, out = replay(recv, port, ["--max", "--allow-writes", "--causal-scope",
                                           "target"])
    log = list(srv.log)
    ok(rc == 0 and t_of(log, "arrive", "/y") >= t_of(log, "done", "/slow/300/w"),
       "--causal-scope target: every recorded server is one service", (rc, err, log))

    # Loops: pass 2 waits for pass 1, and the run ends.
    srv.log.clear()
    rc, js, err, out = replay(rec, port, ["--max", "--allow-writes", "--loop", "3"])
    log = list(srv.log)
    arrivals = [p for k, _t, _m, p in log if k == "arrive"]
    ok(rc == 0 and js["sent"] == 21 and js["ok"] == 21 and
       arrivals.index("/a1") < arrivals.index("/p") and arrivals[-1] in ("/p", "/r"),
       "--loop 3 in causal order: 21 sent, each pass after the previous one",
       (rc, err, arrivals))

    # Without a recorded response end nobody waits for a request.
    recn = mkrec("n.dyt", [(1, 0, "PUT", "/slow/300/w", "none"), (2, 20, "GET", "/r", 1)])
    srv.log.clear()
    rc, js, err, out = replay(recn, port, ["--max", "--allow-writes"])
    log = list(srv.log)
    ok(rc == 0 and t_of(log, "arrive", "/r") < t_of(log, "done", "/slow/300/w"),
       "a request recorded without a response is waited for by nobody", (rc, err, log))

    rc, js, err, out = replay(rec, port, ["--order", "sideways"])
    ok(rc == 2 and "--order" in err, "a bad --order is refused (exit 2)", (rc, err))
    srv.shutdown()


def group_hooks():
    srv, port = serve_http(Handler)
    rec = mkrec("k.dyt", [(1, 0, "PUT", "/k1", 1), (1, 5, "GET", "/k2", 1)])
    out = os.path.join(TMP, "res.dyt")
    marker = os.path.join(TMP, "marker")

    rc, js, err, _ = replay(rec, port, ["--allow-writes", "--before", "echo hello; exit 3"])
    ok(rc == 3 and "--before 'echo hello; exit 3' exited with status 3" in err and
       "nothing was sent" in err and "hello" in err and not os.path.exists(out) and
       not srv.log,
       "a failing --before stops the replay: exit 3, nothing sent, no results file",
       (rc, err, srv.log))

    script = ('date +%%s.%%N > %s; echo "$DYETAP_PHASE $DYETAP_TARGETS $DYETAP_RESULTS" >> %s'
              % (marker + ".b", marker + ".b"))
    after = ('date +%%s.%%N > %s; %s info "$DYETAP_RESULTS" >> %s 2>&1 && '
             'echo "$DYETAP_PHASE" >> %s' % (marker + ".a", DYETAP, marker + ".a",
                                              marker + ".a"))
    srv.log.clear()
    rc, js, err, _ = replay(rec, port, ["--allow-writes", "--before", script, "--before",
                                        "echo second before", "--after", after])
    b = open(marker + ".b").read().split("\n") if os.path.exists(marker + ".b") else ["0"]
    a = open(marker + ".a").read() if os.path.exists(marker + ".a") else "0"
    tb, ta = float(b[0] or 0), float(a.split("\n")[0] or 0)
    arrive = [t for k, t, _m, _p in srv.log if k == "arrive"]
    done = [t for k, t, _m, _p in srv.log if k == "done"]
    ok(rc == 0 and js and js["sent"] == 2 and len(arrive) == 2 and tb < min(arrive) and
       ta > max(done), "--before runs before the first request, --after after the last "
       "response", (rc, err, tb, ta, srv.log))
    ok(b[1:2] == ["before http://127.0.0.1:%d %s" % (port, out)] and
       "second before" in err and "complete" in a and a.rstrip().endswith("after"),
       "the commands get DYETAP_PHASE, DYETAP_TARGETS, DYETAP_RESULTS; their output goes to "
       "stderr; --after sees a complete results file", (b, a, err))
    rc, js, err, _ = replay(rec, port, ["--allow-writes", "--after", "exit 4"])
    ok(rc == 3 and "--after 'exit 4' exited with status 4" in err and js and js["sent"] == 2,
       "a failing --after: exit 3 after the summary", (rc, err))
    rc, js, err, _ = replay(rec, port, ["--allow-writes", "--before", "kill -9 $$"])
    ok(rc == 3 and "was killed by signal 9" in err,
       "a --before killed by a signal stops the replay", (rc, err))
    srv.shutdown()


try:
    {"order": group_order, "hooks": group_hooks}[GROUP]()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(finish())
