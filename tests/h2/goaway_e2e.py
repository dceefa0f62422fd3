#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/2 replay against a target that ends its connections with GOAWAY.

The recording is written here (crafted_e2e.py's pcap writer): one h2c
connection of N GETs with distinct paths /r/0../r/N-1, 8 streams in
flight as h2load -m 8 keeps them (request i starts when response i-8
ended).

A raw h2c server (below) decodes the request header blocks with
libnghttp2's HPACK inflater (ctypes) and counts request HEADERS per
:path. On each connection it answers streams as they come, but holds
the answers of the last HOLD it takes; when it has taken K, it sends
GOAWAY(last-stream-id = the K-th stream), then the held answers (50 ms
apart, so each ends a stream while the others are still open) or none,
then closes the connection (FIN, then reads until the client's FIN).
Streams above the last-stream-id that arrive are not processed.

RFC 9113 §6.8: streams above a GOAWAY's last-stream-id were not
processed and may be retried on a new connection; the sender of GOAWAY
takes no new streams on that connection. docs/http2.md "Replay": nghttp2
closes such streams with REFUSED_STREAM, and the request goes back to
the queue and is sent again (up to 5 times, each counted in
h2_refused_retried); a connection that received GOAWAY takes no new
stream, and once its streams ended the queued requests go on a new
connection (counted in reconnects); a connection failure fails the
streams in flight on it (a `reset` error).

(a) GOAWAY(NO_ERROR), the held answers sent after it: every path
    answered exactly once, no error, the requests the server did not
    process are the ones sent again (h2_refused_retried: a request
    started on the connection after its GOAWAY would be refused by
    nghttp2 without reaching the server, and counted too), a new
    connection per GOAWAY.
(b) GOAWAY(ENHANCE_YOUR_CALM) whose last-stream-id is below the held
    streams, no answer sent for them: they were not processed and are
    sent again; every path answered exactly once, no error.
(c) GOAWAY(INTERNAL_ERROR) naming the held streams as processed
    (last-stream-id = the K-th) but closing without answering them:
    those are reported (`reset` errors), the others answered once;
    none lost: one result per recorded request, sent = ok + errors.

  goaway_e2e.py DYETAP
"""
import ctypes
import ctypes.util
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from tap_util import LoopbackServer, finish, ok  # noqa: E402
from crafted_e2e import (PREFACE, HeaderBlocks, data, frame, get, headers,  # noqa: E402
                         read_preface, settings, take_frame, write_pcap)

DYETAP = sys.argv[1]
N = 40  # recorded requests
WINDOW = 8  # streams in flight in the recording
NO_ERROR, INTERNAL_ERROR, ENHANCE_YOUR_CALM = 0x0, 0x2, 0xb
ALL = {"/r/%d" % i for i in range(N)}
PATH = {}  # recorded session id: its :path


def dy(*args):
    return subprocess.run([DYETAP] + list(args), capture_output=True, text=True, timeout=120)


def recording(tmp):
    segs = [("c", PREFACE + settings()), ("s", settings()), ("c", frame(4, 1, 0, b"")),
            ("s", frame(4, 1, 0, b""))]
    sid = lambda i: 2 * i + 1  # noqa: E731
    for i in range(min(WINDOW, N)):
        segs.append(("c", get(sid(i), "/r/%d" % i)))
    for i in range(N):
        segs.append(("s", headers(sid(i), [(":status", "200")], False) + data(sid(i), b"ok")))
        if i + WINDOW < N:
            segs.append(("c", get(sid(i + WINDOW), "/r/%d" % (i + WINDOW))))
    pcap, rec = os.path.join(tmp, "rec.pcap"), os.path.join(tmp, "rec.dyt")
    write_pcap(pcap, segs)
    r = dy("record", "-r", pcap, "-w", rec)
    if r.returncode == 0:
        for line in dy("cat", rec, "--json").stdout.splitlines():
            s = json.loads(line)
            PATH[s.get("id")] = s.get("request", {}).get("target")
    ok(r.returncode == 0 and set(PATH.values()) == ALL and len(PATH) == N,
       "recording: one h2c connection, %d GETs with distinct paths" % N, (r.stderr, PATH))
    return rec


# ---- HPACK decoding with libnghttp2's inflater ----

class _NV(ctypes.Structure):
    _fields_ = [("name", ctypes.POINTER(ctypes.c_uint8)), ("value", ctypes.POINTER(ctypes.c_uint8)),
                ("namelen", ctypes.c_size_t), ("valuelen", ctypes.c_size_t),
                ("flags", ctypes.c_uint8)]


_ng = ctypes.CDLL(ctypes.util.find_library("nghttp2") or "libnghttp2.so.14")
_ng.nghttp2_hd_inflate_new.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
_ng.nghttp2_hd_inflate_del.argtypes = [ctypes.c_void_p]
_ng.nghttp2_hd_inflate_hd2.restype = ctypes.c_ssize_t
_ng.nghttp2_hd_inflate_hd2.argtypes = [ctypes.c_void_p, ctypes.POINTER(_NV),
                                       ctypes.POINTER(ctypes.c_int), ctypes.c_void_p,
                                       ctypes.c_size_t, ctypes.c_int]
_ng.nghttp2_hd_inflate_end_headers.argtypes = [ctypes.c_void_p]


class Inflater:
    def __init__(self):
        self.p = ctypes.c_void_p()
        if _ng.nghttp2_hd_inflate_new(ctypes.byref(self.p)) != 0:
            raise MemoryError

    def fields(self, blk):
        out, nv, fl = [], _NV(), ctypes.c_int()
        buf = ctypes.create_string_buffer(blk, len(blk))
        off = 0
        while True:
            n = _ng.nghttp2_hd_inflate_hd2(self.p, ctypes.byref(nv), ctypes.byref(fl),
                                           ctypes.addressof(buf) + off, len(blk) - off, 1)
            if n < 0:
                raise ValueError("HPACK error %d" % n)
            off += n
            if fl.value & 2:  # NGHTTP2_HD_INFLATE_EMIT
                out.append((ctypes.string_at(nv.name, nv.namelen).decode(),
                            ctypes.string_at(nv.value, nv.valuelen).decode()))
            if fl.value & 1:  # NGHTTP2_HD_INFLATE_FINAL
                _ng.nghttp2_hd_inflate_end_headers(self.p)
                return out
            if not fl.value & 2 and off >= len(blk):
                return out

    def close(self):
        _ng.nghttp2_hd_inflate_del(self.p)


# ---- the server ----

class GoawayServer(LoopbackServer):
    """h2c (prior knowledge), SETTINGS_MAX_CONCURRENT_STREAMS 100. Per
    connection: answers (:status 200, 'ok') the streams it takes, holding
    the answers of streams K-HOLD+1..K; at the K-th it sends
    GOAWAY(@code, last = the K-th stream id - 2 * @below), then the held
    answers when @answer_held, and closes. Streams above last are not
    processed (a held one above it is dropped unanswered). Held answers
    go after 1 s without a new stream (the last connection of a run)."""

    K, HOLD = 10, 3
    MAX_ID = 0x7fffffff

    def __init__(self, code, below, answer_held, two_step=False):
        self.code, self.below, self.answer_held = code, below, answer_held
        self.two_step = two_step  # RFC 9113 §6.8 graceful shutdown (below)
        self.headers = []  # (connection, stream, path) of every request HEADERS
        self.answered = []  # paths answered
        self.unprocessed = []  # paths above a GOAWAY's last stream id
        self.unanswered = []  # paths at or below it, never answered
        self.errors = []
        super().__init__()  # self.conns: connections accepted

    def answer(self, c, sid, path):
        c.sendall(frame(1, 4, sid, b"\x88") + frame(0, 1, sid, b"ok"))  # :status 200
        with self.lock:
            self.answered.append(path)

    def serve(self, c, cid):
        inf = Inflater()
        c.settimeout(1)  # held answers go after 1 s without a new stream
        buf, taken, held, last, idle, blocks = b"", 0, [], None, 0, HeaderBlocks()
        drain_until, top = None, 0  # two-step: end of the first step, highest stream taken
        try:
            buf = read_preface(c)
            if buf is None:
                return
            c.sendall(frame(4, 0, 0, struct.pack(">HI", 3, 100)))
            while True:
                while True:
                    fr, buf = take_frame(buf)
                    if fr is None:
                        break
                    ftype, flags, sid, payload = fr
                    if ftype == 4 and not flags & 1 and last is None:
                        c.sendall(frame(4, 1, 0, b""))  # SETTINGS ACK
                    elif ftype == 6 and not flags & 1 and last is None:
                        c.sendall(frame(6, 1, 0, payload))  # PING ACK
                    elif ftype == 1 or ftype == 9:  # HEADERS, CONTINUATION
                        got = blocks.feed(ftype, flags, sid, payload)
                        if got is None:
                            continue
                        bsid, block = got
                        path = dict(inf.fields(block)).get(":path")
                        with self.lock:
                            self.headers.append((cid, bsid, path))
                        if last is not None:  # above the GOAWAY's last stream id
                            with self.lock:
                                self.unprocessed.append(path)
                            continue
                        taken += 1
                        top = max(top, bsid)
                        if drain_until is not None:  # sent before the client saw GOAWAY
                            self.answer(c, bsid, path)
                            continue
                        if taken <= self.K - self.HOLD:
                            self.answer(c, bsid, path)
                        else:
                            held.append((bsid, path))
                        if taken == self.K and self.two_step:
                            # step 1: GOAWAY(2^31-1, NO_ERROR), streams on the
                            # wire still taken for a while (read on below)
                            c.sendall(frame(7, 0, 0, struct.pack(">II", self.MAX_ID,
                                                                 NO_ERROR)))
                            drain_until = time.monotonic() + 0.2
                            c.settimeout(0.02)
                        elif taken == self.K:
                            last = bsid - 2 * self.below
                            c.sendall(frame(7, 0, 0, struct.pack(">II", last, self.code)))
                            for hsid, hpath in held:
                                if hsid > last:
                                    with self.lock:
                                        self.unprocessed.append(hpath)
                                elif self.answer_held:
                                    time.sleep(0.05)  # the client reads each alone
                                    self.answer(c, hsid, hpath)
                                else:
                                    with self.lock:
                                        self.unanswered.append(hpath)
                            c.shutdown(socket.SHUT_WR)  # then read to the client's FIN
                if drain_until is not None and last is None and time.monotonic() >= drain_until:
                    # step 2: the held answers, then GOAWAY naming the
                    # highest stream taken, then close
                    for hsid, hpath in held:
                        time.sleep(0.05)
                        self.answer(c, hsid, hpath)
                    held, last = [], top
                    c.sendall(frame(7, 0, 0, struct.pack(">II", last, NO_ERROR)))
                    c.shutdown(socket.SHUT_WR)
                    c.settimeout(1)
                try:
                    d = c.recv(65536)
                except socket.timeout:
                    if drain_until is not None and last is None:
                        continue
                    if last is None and held:  # no K-th stream coming: answer them
                        for hsid, hpath in held:
                            self.answer(c, hsid, hpath)
                        held = []
                        continue
                    idle += 1
                    if idle < 10:
                        continue
                    raise
                idle = 0
                if not d:
                    return
                buf += d
        except OSError as e:
            # After a graceful shutdown's first GOAWAY the client may close
            # once its streams are answered (RFC 9113 §6.8), the second
            # GOAWAY unread (a reset): the end of the connection, no error.
            if drain_until is None:
                with self.lock:
                    self.errors.append("connection %d: %r" % (cid, e))
        except Exception as e:  # noqa: BLE001 (reported by the checks)
            with self.lock:
                self.errors.append("connection %d: %r" % (cid, e))
        finally:
            inf.close()
            c.close()


def run(tmp, rec, name, srv):
    res = os.path.join(tmp, name + ".dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % srv.port, "--max", "-o", res,
           "--allow-writes", "--json", "--quiet")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    results = {}  # path: [(error kind, message)] of its results
    for line in dy("cat", "--json", "--type", "result", "--no-body", res).stdout.splitlines():
        x = json.loads(line)
        results.setdefault(PATH.get(x.get("session_id")), []).append((x.get("error"),
                                                                      x.get("error_msg")))
    ctr = js.get("counters", {})
    detail = (r.returncode, r.stderr[-400:], js.get("errors"), js.get("error_causes"), ctr,
              srv.conns, len(srv.headers), srv.unprocessed, srv.errors)
    return r, js, results, ctr, counted(srv.answered), detail


def clean(r, js, results):
    """The replay ended well: all N sent and answered, no error, one result each."""
    return (r.returncode == 0 and js.get("sent") == N and js.get("ok") == N and
            js.get("errors", {}).get("total") == 0 and set(results) == ALL and
            all(v == [("none", "")] for v in results.values()))


def once(ans):
    """The server answered every recorded path exactly once."""
    return set(ans) == ALL and set(ans.values()) == {1}


def counted(paths):
    out = {}
    for p in paths:
        out[p] = out.get(p, 0) + 1
    return out



def case_graceful(tmp, rec):
    srv = GoawayServer(NO_ERROR, 0, True)
    r, js, results, ctr, ans, detail = run(tmp, rec, "graceful", srv)
    ok(clean(r, js, results),
       "(a) GOAWAY(NO_ERROR) every %d streams: %d answered, no error, one result each" %
       (GoawayServer.K, N), detail)
    ok(once(ans),
       "(a) the server answered every recorded path exactly once", (ans, detail))
    ok(srv.unprocessed and len(srv.headers) == N + len(srv.unprocessed) and
       ctr.get("h2_refused_retried") == len(srv.unprocessed) and
       all(ans.get(p) == 1 for p in srv.unprocessed),
       "(a) the requests above last-stream-id (%d) were sent again and answered; none "
       "else (no stream started on a connection after its GOAWAY)" % len(srv.unprocessed),
       detail)
    ok(srv.conns >= 2 and ctr.get("connects") == srv.conns and
       ctr.get("reconnects") == srv.conns - 1 and not srv.errors,
       "(a) a new connection after each GOAWAY (%d connections)" % srv.conns, detail)


def case_calm(tmp, rec):
    srv = GoawayServer(ENHANCE_YOUR_CALM, GoawayServer.HOLD, False)
    r, js, results, ctr, ans, detail = run(tmp, rec, "calm", srv)
    ok(clean(r, js, results) and once(ans),
       "(b) GOAWAY(ENHANCE_YOUR_CALM) below the %d streams held: all %d answered exactly "
       "once, no error" % (GoawayServer.HOLD, N), (ans, detail))
    ok(len(srv.unprocessed) >= GoawayServer.HOLD and
       len(srv.headers) == N + len(srv.unprocessed) and
       ctr.get("h2_refused_retried") == len(srv.unprocessed) and
       ctr.get("connects") == srv.conns and not srv.errors,
       "(b) the unprocessed requests (%d) sent again on new connections (%d)" %
       (len(srv.unprocessed), srv.conns), detail)


def case_internal(tmp, rec):
    srv = GoawayServer(INTERNAL_ERROR, 0, False)
    r, js, results, ctr, ans, _ = run(tmp, rec, "internal", srv)
    lost = counted(srv.unanswered)
    errs = js.get("errors", {})
    detail = (r.returncode, r.stderr[-400:], errs, js.get("error_causes"), ctr, srv.conns,
              len(srv.headers), srv.unanswered, srv.unprocessed, srv.errors)
    ok(set(results) == ALL and all(len(v) == 1 for v in results.values()) and
       js.get("sent") == N and
       js.get("sent") == js.get("ok", 0) + errs.get("total", -1) and
       js.get("ok") == len(srv.answered) and errs.get("reset") == len(srv.unanswered) > 0 and
       errs.get("total") == errs.get("reset"),
       "(c) GOAWAY(INTERNAL_ERROR) naming the held streams processed, closed unanswered: "
       "%d reset errors, the rest answered, sent = ok + errors = %d" % (len(srv.unanswered), N),
       detail)
    ok(set(ans) | set(lost) == ALL and not set(ans) & set(lost) and
       set(ans.values()) <= {1} and set(lost.values()) <= {1},
       "(c) every recorded path either answered once or reported once, none lost", (ans, lost))
    failed = {p for p, v in results.items() if v[0][0] != "none"}
    ok(failed == set(lost) and
       all(results[p] == [("reset", "connection closed by the target")] for p in failed),
       "(c) the results of exactly the unanswered ones are reset errors: connection closed by "
       "the target", (failed, set(lost), [results.get(p) for p in failed]))
    ok(len(srv.headers) == N + len(srv.unprocessed) and
       ctr.get("h2_refused_retried") == len(srv.unprocessed) and not srv.errors,
       "(c) only the requests above last-stream-id (%d) sent again" % len(srv.unprocessed),
       detail)


def case_two_step(tmp, rec):
    srv = GoawayServer(NO_ERROR, 0, True, two_step=True)
    r, js, results, ctr, ans, detail = run(tmp, rec, "two-step", srv)
    ok(clean(r, js, results) and once(ans),
       "(d) two-step graceful shutdown (GOAWAY 2^31-1, the streams in flight answered, "
       "GOAWAY naming the last): all %d answered exactly once, no error" % N, (ans, detail))
    ok(not srv.unprocessed and len(srv.headers) == N and
       ctr.get("h2_refused_retried") == 0,
       "(d) no stream started on a connection after its first GOAWAY: none refused, none "
       "sent again", detail)
    ok(srv.conns >= 2 and ctr.get("connects") == srv.conns and
       ctr.get("reconnects") == srv.conns - 1 and not srv.errors,
       "(d) a new connection after each shutdown (%d connections)" % srv.conns, detail)


def case_mirror(tmp):
    """mirror shadows the recorded pcap's h2c requests (lane blue, every
    GET) to the GOAWAY(NO_ERROR) server of (a): it takes the same
    HTTP/2 client path (one connection per production connection and
    lane target, replaced after GOAWAY)."""
    srv = GoawayServer(NO_ERROR, 0, True)
    r = dy("mirror", "-r", os.path.join(tmp, "rec.pcap"), "--color", "blue=method:GET",
           "--lane", "blue=http://127.0.0.1:%d" % srv.port, "-w",
           os.path.join(tmp, "mirror.dyt"), "--stats")
    st = {m.group(1): int(m.group(2))
          for m in re.finditer(r"^\s*(lane_blue_\w+)\s+(\d+)\s*$", r.stderr, re.M)}
    ans = counted(srv.answered)
    detail = (r.returncode, st, r.stderr[-600:], srv.conns, len(srv.headers), srv.unprocessed,
              srv.errors)
    ok(r.returncode in (0, 1) and st.get("lane_blue_sent") == N and
       st.get("lane_blue_ok") == N and st.get("lane_blue_errors") == 0,
       "(e) mirror to a server ending connections with GOAWAY: %d sent, %d answered, no "
       "error" % (N, N), detail)
    ok(set(ans) == ALL and set(ans.values()) == {1} and
       len(srv.headers) == N + len(srv.unprocessed) and
       st.get("lane_blue_h2_refused_retried") == len(srv.unprocessed) and
       srv.conns >= 2 and not srv.errors,
       "(e) mirror: every path answered exactly once, only those above last-stream-id sent "
       "again (%d), %d connections" % (len(srv.unprocessed), srv.conns), (ans, detail))


def main():
    with tempfile.TemporaryDirectory(prefix="dyetap-h2-goaway-") as tmp:
        rec = recording(tmp)
        case_graceful(tmp, rec)
        case_calm(tmp, rec)
        case_internal(tmp, rec)
        case_two_step(tmp, rec)
        case_mirror(tmp)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
