#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Forced limits (docs/testing.md "Forced limits"): each cap is hit at a chosen point and the test
asserts the policy's outcome and the exact value of its counter
(docs/testing.md "Forced limits" has the table of every cap).

usage: limits_e2e.py DYETAP SOURCE_ROOT GROUP      (TAP output)

capture  `dyetap record` on packets built with tests/capture/gen_pcap.py:
         --max-flows, --reasm-memcap, --http-memcap, the 64 KiB header
         block cap, the 64-lane counter table, a record over the store's
         64 MiB frame cap, -w past a file size limit.
replay   `dyetap replay` against a real HTTP server on 127.0.0.1: the 64 KiB
         response header cap, -c (concurrency) eviction.
mirror   `dyetap mirror -r`: --queue against a target that never answers,
         --report-memcap, -w past a file size limit.
"""
import http.server
import json
import os
import resource
import signal
import shutil
import socket
import subprocess
import sys
import tempfile

DYETAP, ROOT, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(ROOT, "tests", "capture"))
import gen_pcap as g  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, free_port, ok, serve_http  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dyetap-limits-")




def pick(c, *keys):
    return {k: c.get(k) for k in keys}


def write(frames, name):
    path = os.path.join(TMP, name + ".pcap")
    g.write_pcap(path, 1, frames)
    return path


def record(pcap, *args):
    out = os.path.join(TMP, "rec.dyt")
    r = subprocess.run([DYETAP, "record", "-r", pcap, "-w", out, "--json"] + list(args),
                       capture_output=True, text=True, timeout=30)
    try:
        return r, json.loads(r.stdout), out
    except ValueError:
        return r, {}, out


def cat(path):
    r = subprocess.run([DYETAP, "cat", "--json", path], capture_output=True, text=True)
    return [json.loads(x) for x in r.stdout.splitlines() if x.strip()]


def resume(c):
    """A Conv continuing where @p c stopped (to interleave connections)."""
    n = g.Conv(cli=socket.inet_ntop(socket.AF_INET, c.ca), cport=c.cp,
               srv=socket.inet_ntop(socket.AF_INET, c.sa), sport=c.sp)
    n.cseq, n.sseq = c.cseq, c.sseq
    return n


def capture_max_flows():
    # three handshakes, then only the second and third connection talk
    cs = [g.Conv(cport=40001 + i).handshake() for i in range(3)]
    f = sum((g.frame(c, 1) for c in cs), [])
    for c in cs[1:]:
        n = resume(c)
        n.send(True, g.req(b"GET", b"/p%d" % c.cp)).send(False, g.resp(200, b"ok")).close()
        f += g.frame(n, 1)
    pcap = write(f, "flows")
    _, c0, _ = record(pcap)
    r, c, _ = record(pcap, "--max-flows", "2")
    ok(c0.get("flow_evicted") == 0 and c0.get("flow_active_peak") == 3,
       "uncapped: 3 connections open at once, none evicted",
       pick(c0, "flow_evicted", "flow_active_peak"))
    ok(r.returncode == 0 and c.get("flow_evicted") == 1 and c.get("flow_active_peak") == 2 and
       c.get("flow_ended_eof") == 0 and c.get("pipe_sessions") == 2,
       "--max-flows 2: the idlest connection is evicted (flow_evicted 1), both "
       "transactions still recorded", pick(c, "flow_evicted", "flow_active_peak",
                                           "flow_ended_eof", "pipe_sessions"))


def capture_reasm_memcap():
    # a POST whose header arrives in order and whose 3000-byte body's
    # segments arrive in reverse order
    c = g.Conv().handshake()
    full = g.req(b"POST", b"/up", b"x" * 3000)
    c.send(True, full[:-3000])
    first = len(c.segs)
    c.send(True, full[-3000:])
    c.send(False, g.resp(200, b"ok")).close()
    data = [i for i, s in enumerate(c.segs) if s.payload and s.c and i >= first]
    order = list(range(len(c.segs)))
    for a, b in zip(data, reversed(data)):
        order[a] = b
    c.segs = [c.segs[i] for i in order]
    pcap = write(g.frame(c, 1), "reasm")
    _, c0, _ = record(pcap)
    ok(c0.get("reasm_memcap_hits") == 0 and c0.get("reasm_gaps") == 0 and
       c0.get("reasm_buffered_peak", 0) > 1500,
       "uncapped: 2 out-of-order segments buffered (%s bytes peak), no gap" %
       c0.get("reasm_buffered_peak"), c0)
    r, c, out = record(pcap, "--reasm-memcap", "1500")
    ok(r.returncode == 0 and c.get("reasm_memcap_hits") == 1 and c.get("reasm_gaps") == 1 and
       c.get("reasm_gap_bytes") == 2000 and c.get("reasm_buffered_peak", 9999) <= 1500,
       "--reasm-memcap 1500: the second out-of-order segment hits the cap "
       "(reasm_memcap_hits 1), the direction stops waiting: one 2000-byte gap",
       pick(c, "reasm_memcap_hits", "reasm_gaps", "reasm_gap_bytes", "reasm_buffered_peak"))
    s = cat(out)
    ok(len(s) == 1 and s[0]["flags"] == ["gap"] and s[0]["request"]["truncated"] and
       c.get("txn_gap_sessions") == 1, "the session is recorded flagged gap, its body truncated",
       [(x["flags"], x["request"]["truncated"]) for x in s])


def capture_http_memcap():
    # three connections each buffer half of a 4000-byte response body at once
    cs = [g.Conv(cport=41000 + i).handshake() for i in range(3)]
    for c in cs:
        c.send(True, g.req(b"GET", b"/big%d" % c.cp))
    f = sum((g.frame(c, 1) for c in cs), [])
    body = b"y" * 4000
    halves = [b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n" + body[:2000], body[2000:]]
    for k, half in enumerate(halves):
        for i, c in enumerate(cs):
            n = resume(c)
            n.send(False, half, mss=5000)
            if k:
                n.close()
            f += g.frame(n, 1)
            cs[i] = n
    pcap = write(f, "httpmem")
    _, c0, _ = record(pcap)
    peak = c0.get("pipe_txn_mem_peak", 0)
    ok(c0.get("pipe_memcap_evictions") == 0 and peak > 0 and c0.get("txn_incomplete") == 0,
       "uncapped: HTTP trackers peak at %d bytes, nothing evicted" % peak, c0)
    # the cap one byte below that peak is hit exactly once: when the first
    # connection's second half arrives (its body at 4000 bytes, the other two
    # holding 2000 each); the least recently active connection is then the
    # second one (/big41001)
    r, c, out = record(pcap, "--http-memcap", str(peak - 1))
    ok(r.returncode == 0 and c.get("pipe_memcap_evictions") == 1 and
       c.get("flow_evicted") == 1 and c.get("txn_incomplete") == 1 and
       c.get("flow_midstream") == 1,
       "--http-memcap peak-1: the least recently active connection is closed early "
       "(pipe_memcap_evictions 1, flow_evicted 1), its transaction emitted incomplete, "
       "its later packets picked up midstream",
       pick(c, "pipe_memcap_evictions", "flow_evicted", "txn_incomplete", "flow_midstream"))
    s = cat(out)
    inc = [x for x in s if "incomplete" in x["flags"]]
    ok(len(s) == 3 and len(inc) == 1 and inc[0]["request"]["target"] == "/big41001",
       "the evicted (least recently active) connection's session is the one flagged "
       "incomplete",
       [(x["request"]["target"], x["flags"]) for x in s])


def capture_header_cap():
    c = g.Conv().handshake()
    c.send(True, g.req(b"GET", b"/big-header", extra=b"x-big: " + b"h" * 70000 + b"\r\n"))
    c.send(False, g.resp(200, b"ok"))
    c.send(True, g.req(b"GET", b"/next"))
    c.send(False, g.resp(200, b"ok2")).close()
    r, c, out = record(write(g.frame(c, 1), "hdr"))
    ok(r.returncode == 0 and c.get("txn_header_too_large") == 1 and
       c.get("txn_parse_errors") == 1 and c.get("txn_sessions_complete") == 1,
       "a 70 KB request header block passes the 64 KiB cap: txn_header_too_large 1, "
       "parse_errors 1, the next request still parsed",
       pick(c, "txn_header_too_large", "txn_parse_errors", "txn_sessions_complete"))
    s = cat(out)
    ok(len(s) == 2 and "parse_error" in s[0]["flags"] and s[1]["request"]["target"] == "/next"
       and s[1]["flags"] == [], "session 1 flagged parse_error, session 2 (/next) clean",
       [(x["request"] and x["request"]["target"], x["flags"]) for x in s])


def capture_lanes():
    f, args = [], []
    for i in range(66):
        cv = g.Conv(cport=30000 + i).handshake()
        cv.send(True, g.req(b"GET", b"/l%d" % i, extra=b"x-lane: l%d\r\n" % i))
        cv.send(False, g.resp(200, b"ok")).close()
        f += g.frame(cv, 1)
        args += ["--color", "l%d=header:x-lane=l%d" % (i, i)]
    r, c, _ = record(write(f, "lanes"), *args)
    ok(r.returncode == 0 and c.get("pipe_lanes_overflow") == 2 and
       c.get("pipe_sessions") == 66 and c.get("pipe_colored") == 66 and
       c.get("lane_l63_sessions") == 1 and "lane_l64_sessions" not in c,
       "66 lanes: the per-lane counter table holds 64 (pipe_lanes_overflow 2), "
       "every session still recorded and colored",
       pick(c, "pipe_lanes_overflow", "pipe_sessions", "pipe_colored", "lane_l63_sessions"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.log.append((self.client_address[1], self.path))
        self.send_response(200)
        if self.path == "/big-header":
            self.send_header("x-big", "h" * 70000)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


def server():
    return serve_http(Handler)




def replay(rec, *args):
    out = os.path.join(TMP, "res.dyt")
    r = subprocess.run([DYETAP, "replay", rec, "-o", out, "-q", "--json"] + list(args),
                       capture_output=True, text=True, timeout=30)
    try:
        return r, json.loads(r.stdout), out
    except ValueError:
        return r, {}, out


def group_replay():
    srv, port = server()
    prod = free_port()  # the recorded server: another, closed port
    # two recorded connections, the second starts after the first is done
    f = []
    for i, paths in enumerate(([b"/big-header", b"/a"], [b"/b"])):
        c = g.Conv(cli="127.0.0.1", cport=43000 + i, srv="127.0.0.1", sport=prod).handshake()
        for p in paths:
            c.send(True, g.req(b"GET", p)).send(False, g.resp(200, b"ok"))
        f += g.frame(c.close(), 1)
    _, c, rec = record(write(f, "replay"))
    ok(c.get("pipe_sessions") == 3, "recorded 3 sessions on 2 connections", c)
    target = "http://127.0.0.1:%d" % port
    r, js, out = replay(rec, "--target", target)
    cn = js.get("counters", {})
    ok(r.returncode == 0 and js.get("ok") == 2 and cn.get("err_bad_response") == 1,
       "a 70 KB response header block passes the 64 KiB response header cap: "
       "err_bad_response 1, the other 2 ok", (r.stderr, cn))
    res = [x for x in cat(out) if "session_id" in x]
    bad = [x for x in res if x["error"] == "bad_response"]
    ok(len(bad) == 1 and "header" in bad[0]["error_msg"],
       "the result says why: %s" % (bad[0]["error_msg"] if bad else None), res)
    # -c 1: the second recorded connection needs the only slot; the first's
    # idle keep-alive connection is closed for it
    srv.log.clear()
    r, js, out = replay(rec, "--target", target, "-c", "1")
    cn = js.get("counters", {})
    ports = [p for p, _ in srv.log]
    # (the bad response closes the first connection: /a reconnects)
    ok(r.returncode == 0 and cn.get("evictions") == 1 and cn.get("connects") == 3 and
       cn.get("reconnects") == 1 and len(ports) == 3 and ports[2] not in ports[:2],
       "-c 1 with 2 recorded connections: evictions 1 (the first one's idle connection "
       "closed for the second), /b on its own connection",
       (r.stderr, pick(cn, "evictions", "connects", "reconnects"), srv.log))
    r, js, out = replay(rec, "--target", target, "-c", "2")
    cn = js.get("counters", {})
    ok(r.returncode == 0 and cn.get("evictions") == 0 and cn.get("connects") == 3,
       "-c 2: no eviction", pick(cn, "evictions", "connects"))


def mirror(*args):
    r = subprocess.run([DYETAP, "mirror"] + list(args) + ["--json"], capture_output=True,
                       text=True, timeout=30)
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        return r, {}


def group_mirror():
    srv, port = server()
    prod = free_port()
    f = []
    for i in range(4):
        c = g.Conv(cli="127.0.0.1", cport=44000 + i, srv="127.0.0.1", sport=prod).handshake()
        for k in range(5):
            c.send(True, g.req(b"GET", b"/m%d/%d" % (i, k), extra=b"x-lane: blue\r\n"))
            c.send(False, g.resp(200, b"ok"))
        f += g.frame(c.close(), 1)
    pcap = write(f, "mirror")
    color = ["-r", pcap, "--color", "blue=header:x-lane=blue"]
    # --queue 1 toward a target that accepts and never answers: the first
    # request takes the only place, the 19 others arrive within milliseconds
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    r, c = mirror(*color, "--lane", "blue=http://127.0.0.1:%d" % ls.getsockname()[1],
                  "--queue", "1", "--timeout", "5s", "--drain-timeout", "200ms")
    ls.close()
    ok(r.returncode == 0 and c.get("mirror_colored") == 20 and
       c.get("lane_blue_mirrored") == 1 and c.get("lane_blue_dropped_queue_full") == 19 and
       c.get("lane_blue_dropped_stopped") == 0,
       "--queue 1: 1 mirrored, lane_blue_dropped_queue_full 19",
       (r.stderr, pick(c, "mirror_colored", "lane_blue_mirrored", "lane_blue_dropped_queue_full",
                       "lane_blue_error_timeout", "lane_blue_errors")))
    ok(c.get("lane_blue_errors") == 1 and c.get("lane_blue_ok") == 0,
       "the one in flight ends as an error at the stop", pick(c, "lane_blue_errors"))
    # --report-memcap 0: every pair is compared and counted, none kept for reports
    rdir = os.path.join(TMP, "rep")
    os.mkdir(rdir)
    lane = ["--lane", "blue=http://127.0.0.1:%d" % port]
    r, c = mirror(*color, *lane, "--report-dir", rdir, "--report-memcap", "0")
    rep = json.load(open(os.path.join(rdir, "report.json"))) if r.returncode == 0 else {}
    ok(r.returncode == 0 and c.get("lane_blue_ok") == 20 and c.get("mirror_diffed") == 20 and
       c.get("mirror_report_pairs_over_memcap") == 20,
       "--report-memcap 0: mirror_report_pairs_over_memcap 20 of 20 diffed",
       (r.stderr, pick(c, "lane_blue_ok", "mirror_diffed", "mirror_report_pairs_over_memcap")))
    ok("memory cap" in json.dumps(rep), "report.json says pairs were over the memory cap",
       json.dumps(rep)[:600])
    r, c = mirror(*color, *lane, "--report-dir", rdir)
    ok(r.returncode == 0 and c.get("mirror_report_pairs_over_memcap") == 0 and
       c.get("mirror_diffed") == 20, "default report memcap: all 20 pairs kept",
       pick(c, "mirror_report_pairs_over_memcap", "mirror_diffed"))
    mirror_write_fails(["--color", "blue=header:x-lane=blue"] + lane, prod)


def big_sessions(port):
    """8 colored sessions with incompressible 600 KB responses (~4.8 MB)."""
    f = []
    for i in range(8):
        c = g.Conv(cli="127.0.0.1", cport=45000 + i, srv="127.0.0.1", sport=port).handshake()
        c.send(True, g.req(b"GET", b"/big%d" % i, extra=b"x-lane: blue\r\n"))
        c.send(False, g.resp(200, os.urandom(600000)))
        f += g.frame(c.close(), 1)
    return write(f, "big%d" % port)


def run_limited(args):
    """Run dyetap with a 1.5 MiB file size limit (RLIMIT_FSIZE; SIGXFSZ ignored,
    so write(2) fails with EFBIG): the first 1 MiB frame fits, the next does not."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1536 * 1024, 1536 * 1024))
    return subprocess.run([DYETAP] + args, capture_output=True, text=True, timeout=30,
                          preexec_fn=limit)


def mirror_write_fails(color_lane, port):
    out = os.path.join(TMP, "limited.dyt")
    r = run_limited(["mirror", "-r", big_sessions(port)] + color_lane + ["-w", out])
    ok(r.returncode == 3 and "could not be written to " + out in r.stderr,
       "mirror -w past a file size limit: exit 3 and the lost records named on stderr",
       (r.returncode, r.stderr[-400:]))


def capture_write_fails():
    out = os.path.join(TMP, "limited.dyt")
    r = run_limited(["record", "-r", big_sessions(80), "-w", out])
    ok(r.returncode == 3 and "sessions could not be written to " + out in r.stderr and
       out + " is incomplete" in r.stderr and "sessions written" not in r.stderr,
       "record -w past a file size limit: exit 3, the lost sessions named, the file called "
       "incomplete (no count of sessions 'written')", (r.returncode, r.stderr[-500:]))


def capture_frame_cap():
    # A 65 MiB body kept whole (--max-body 100M) makes a record over the
    # store's 64 MiB frame content cap: the session is lost, named and failed.
    c = g.Conv().handshake()
    c.send(True, g.req(b"GET", b"/small"))
    c.send(False, g.resp(200, b"ok"))
    c.send(True, g.req(b"GET", b"/huge"))
    c.send(False, g.resp(200, b"z" * (65 << 20)), mss=60000).close()
    r, c, out = record(write(g.frame(c, 1), "huge"), "--max-body", "100M")
    ok(r.returncode == 3 and c.get("pipe_sink_errors") == 1 and c.get("pipe_written") == 1
       and "1 sessions could not be written" in r.stderr and "frame limit" in r.stderr,
       "a record over the 64 MiB frame cap: exit 3, pipe_sink_errors 1, the writer's "
       "reason on stderr, the other session written",
       (r.returncode, pick(c, "pipe_sink_errors", "pipe_written"), r.stderr[-300:]))
    s = cat(out)
    ok([x["request"]["target"] for x in s] == ["/small"], "the file holds /small only",
       [x["request"]["target"] for x in s])


def group_capture():
    capture_max_flows()
    capture_reasm_memcap()
    capture_http_memcap()
    capture_header_cap()
    capture_lanes()
    capture_frame_cap()
    capture_write_fails()


def main():
    try:
        {"capture": group_capture, "replay": group_replay, "mirror": group_mirror}[GROUP]()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
