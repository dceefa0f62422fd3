#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/2 replay and mirror against a target that allows fewer concurrent
streams than the recording used, and against one that refuses streams.

The h2load capture (fixtures/h2load.pcap: h2load -n 60 -c 2 -m 8, 60
streams on two connections, up to 8 at once) goes to nghttpd with
SETTINGS_MAX_CONCURRENT_STREAMS 3 (`-m 3`; `-m 2` for the mirror). RFC
9113 §5.1.2: a client must not open more streams than the server's
SETTINGS_MAX_CONCURRENT_STREAMS, and a server refuses those over it with
REFUSED_STREAM; docs/http2.md "Replay": at most as many as that setting
allows are in flight per connection, and before the server's first
SETTINGS frame one stream. So: every request answered, no error, nothing
sent again (h2_refused_retried 0), and nghttpd's own log (-v) shows no
stream refused and never more open streams on a connection than its
limit.

A raw h2c server (below) that refuses streams with RST_STREAM
REFUSED_STREAM: RFC 9113 §8.7 says such a request was not processed and
may be sent again; docs/http2.md: it is, at most 5 times. Refusing the
first 3 streams of each connection: all 60 answered, 6 sent again, the
server saw 66 request HEADERS. Refusing every stream: each request is
sent 6 times (360 HEADERS), 300 sent again, all 60 reset errors that
name REFUSED_STREAM. Allowing no streams (SETTINGS_MAX_CONCURRENT_STREAMS
0) for ever: all 60 end as timeouts and the replay ends; the limit raised
to 2 later: all 60 answered.

  refused_e2e.py DYETAP FIXTURES_DIR
"""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from tap_util import LoopbackServer, finish, free_port, ok  # noqa: E402
sys.path.insert(0, HERE)
from crafted_e2e import frame, read_preface, take_frame  # noqa: E402

DYETAP, FIX = sys.argv[1], sys.argv[2]
N = 60  # streams in fixtures/h2load.pcap (tests/h2/README.md)
procs = []


def dy(*args):
    return subprocess.run([DYETAP] + list(args), capture_output=True, text=True, timeout=120)


def nghttpd(tmp, htdocs, limit):
    port = free_port()
    log = os.path.join(tmp, "nghttpd-m%d-%d.log" % (limit, port))
    p = subprocess.Popen(["nghttpd", "--no-tls", "-v", "-m", str(limit), "-d", htdocs,
                          str(port)], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return port, log


def nghttpd_view(log, start=0):
    """nghttpd -v's frames after byte @start: (request HEADERS received,
    streams refused, the most streams open at once on one connection).
    A stream is open from its request HEADERS to nghttpd's 'closed' line."""
    with open(log) as f:
        f.seek(start)
        text = f.read()
    opened = closed = refused = 0
    open_now, most = {}, 0
    for line in text.splitlines():
        if "Stream was refused" in line:
            refused += 1
            continue
        m = re.match(r"\[id=(\d+)\] \[[ \d.]+\] recv HEADERS frame .*stream_id=(\d+)>", line)
        if m:
            opened += 1
            s = open_now.setdefault(m.group(1), set())
            s.add(m.group(2))
            most = max(most, len(s))
            continue
        m = re.match(r"\[id=(\d+)\] \[[ \d.]+\] stream_id=(\d+) closed", line)
        if m:
            closed += 1
            open_now.get(m.group(1), set()).discard(m.group(2))
    return opened, refused, most, len(text)


def limited(tmp, rec, htdocs):
    port, log = nghttpd(tmp, htdocs, 3)
    pos = 0
    for run in range(3):  # before the fix, 4 of 5 such runs had refused streams
        res = os.path.join(tmp, "lim-%d.dyt" % run)
        r = dy("replay", rec, "-t", "http://127.0.0.1:%d" % port, "-o", res, "--max", "--json",
               "--quiet")
        js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
        time.sleep(0.3)  # nghttpd's log written
        opened, refused, most, n = nghttpd_view(log, pos)
        pos += n
        ok(r.returncode == 0 and js.get("ok") == N and js.get("errors", {}).get("total") == 0 and
           js.get("counters", {}).get("h2_refused_retried") == 0,
           "replay --max (run %d) to nghttpd -m 3: %d answered, no error, none sent again" %
           (run + 1, N), (r.stderr[-400:], js.get("errors"), js.get("counters")))
        ok(opened == N and refused == 0 and 1 <= most <= 3,
           "run %d: nghttpd saw %d streams, none refused, at most 3 open on a connection "
           "(saw %d)" % (run + 1, N, most), (opened, refused, most))
    # mirror, paced as captured (--realtime): each request when its stream ended
    port, log = nghttpd(tmp, htdocs, 2)
    r = dy("mirror", "-r", os.path.join(FIX, "h2load.pcap"), "--realtime", "--color",
           "blue=method:GET", "--lane", "blue=http://127.0.0.1:%d" % port, "-w",
           os.path.join(tmp, "mirror.dyt"), "--stats")
    st = {m.group(1): int(m.group(2))
          for m in re.finditer(r"^\s*(lane_blue_\w+)\s+(\d+)\s*$", r.stderr, re.M)}
    ok(r.returncode in (0, 1) and st.get("lane_blue_sent") == N and
       st.get("lane_blue_ok") == N and st.get("lane_blue_errors") == 0 and
       st.get("lane_blue_h2_refused_retried") == 0,
       "mirror --realtime to nghttpd -m 2: %d sent, %d answered, no error, none sent again" %
       (N, N), (r.returncode, st, r.stderr[-400:]))
    time.sleep(0.3)
    opened, refused, most, _ = nghttpd_view(log)
    ok(opened == N and refused == 0 and 1 <= most <= 2,
       "mirror: nghttpd saw %d streams, none refused, at most 2 open on a connection (saw %d)" %
       (N, most), (opened, refused, most))


# ---- a raw h2c server that refuses streams ----

class Refuser(LoopbackServer):
    """h2c (prior knowledge): SETTINGS MAX_CONCURRENT_STREAMS @limit (100);
    the first @refuse request streams of each connection, and any stream
    while the limit is 0, get RST_STREAM REFUSED_STREAM (0x7), the others
    :status 200 (HPACK static index 8) and 'ok'. With @raise_to, a second
    SETTINGS frame sets the limit to it @raise_after seconds after the
    first."""

    def __init__(self, refuse, limit=100, raise_to=None, raise_after=0.3):
        self.refuse, self.headers, self.refused = refuse, 0, 0
        self.limit, self.raise_to, self.raise_after = limit, raise_to, raise_after
        super().__init__()

    def serve(self, c, _n):
        buf, seen, st = b"", 0, {"limit": self.limit}
        wlock = threading.Lock()

        def send(data):
            with wlock:
                c.sendall(data)

        def raise_limit():
            time.sleep(self.raise_after)
            try:
                st["limit"] = self.raise_to
                send(frame(4, 0, 0, struct.pack(">HI", 3, self.raise_to)))
            except OSError:
                pass

        try:
            buf = read_preface(c)
            if buf is None:
                return
            send(frame(4, 0, 0, struct.pack(">HI", 3, self.limit)))
            if self.raise_to is not None:
                threading.Thread(target=raise_limit, daemon=True).start()
            while True:
                while True:
                    fr, buf = take_frame(buf)
                    if fr is None:
                        break
                    ftype, flags, sid, payload = fr
                    if ftype == 4 and not flags & 1:
                        send(frame(4, 1, 0))  # SETTINGS ACK
                    elif ftype == 6 and not flags & 1:
                        send(frame(6, 1, 0, payload))  # PING ACK
                    elif ftype == 7:
                        return
                    elif ftype == 1:
                        seen += 1
                        refuse = seen <= self.refuse or st["limit"] == 0
                        with self.lock:
                            self.headers += 1
                            if refuse:
                                self.refused += 1
                        if refuse:
                            send(frame(3, 0, sid, struct.pack(">I", 7)))
                        else:
                            send(frame(1, 4, sid, b"\x88") + frame(0, 1, sid, b"ok"))
                d = c.recv(65536)
                if not d:
                    return
                buf += d
        except OSError:
            return
        finally:
            c.close()


def refusing(tmp, rec):
    srv = Refuser(3)
    res = os.path.join(tmp, "ref3.dyt")
    r = dy("replay", rec, "-t", "http://127.0.0.1:%d" % srv.port, "-o", res, "--max", "--json",
           "--quiet")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    ok(r.returncode == 0 and js.get("ok") == N and js.get("errors", {}).get("total") == 0 and
       js.get("counters", {}).get("h2_refused_retried") == 6 and srv.headers == N + 6 and srv.refused == 6,
       "first 3 streams of each connection refused: all %d answered, 6 sent again, the server "
       "saw %d requests" % (N, N + 6),
       (r.stderr[-400:], js.get("errors"), js.get("counters"), srv.headers, srv.refused))
    d = dy("diff", res, "--json", "-", "--quiet")
    rep = json.loads(d.stdout) if d.stdout.startswith("{") else {}
    ok(rep.get("data_incomplete") is False and rep.get("summary", {}).get("compared") == N,
       "diff of those results: complete, %d compared (a stream sent again and answered lost "
       "nothing: h2_refused_retried is information)" % N,
       (rep.get("data_incomplete"), rep.get("incomplete_reasons"), d.stderr[-300:]))
    srv = Refuser(1 << 30)
    res = os.path.join(tmp, "refall.dyt")
    r = dy("replay", rec, "-t", "http://127.0.0.1:%d" % srv.port, "-o", res, "--max", "--json",
           "--quiet")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    msgs = set()
    out = dy("cat", "--json", "--type", "result", "--no-body", res).stdout
    for line in out.splitlines():
        msgs.add(json.loads(line).get("error_msg"))
    ok(js.get("ok") == 0 and js.get("errors", {}).get("reset") == N and
       js.get("counters", {}).get("h2_refused_retried") == 5 * N and srv.headers == 6 * N and
       len(msgs) == 1 and "REFUSED_STREAM" in next(iter(msgs)),
       "every stream refused: each request sent 6 times (%d requests), %d reset errors naming "
       "REFUSED_STREAM" % (6 * N, N),
       (js.get("errors"), js.get("counters"), srv.headers, msgs))


def no_streams(tmp, rec):
    """SETTINGS_MAX_CONCURRENT_STREAMS 0 (RFC 9113 §6.5.2 allows it) on a
    connection the server keeps open: docs/http2.md "Replay": a queued
    request's timeout runs from when it was due, and it ends as a timeout
    naming the setting; the replay ends. The stream dyetap may open before
    the server's SETTINGS is refused (REFUSED_STREAM) and queued again."""
    srv = Refuser(0, limit=0)
    res = os.path.join(tmp, "none.dyt")
    try:
        r = dy("replay", rec, "-t", "http://127.0.0.1:%d" % srv.port, "-o", res, "--max",
               "--timeout", "1s", "--json", "--quiet")
    except subprocess.TimeoutExpired:
        r = None
    js = json.loads(r.stdout) if r and r.stdout.startswith("{") else {}
    msgs = set()
    out = dy("cat", "--json", "--type", "result", "--no-body", res).stdout if r else ""
    for line in out.splitlines():
        msgs.add(json.loads(line).get("error_msg"))
    ok(r is not None and js.get("ok") == 0 and js.get("errors", {}).get("timeout") == N and
       js.get("errors", {}).get("total") == N and len(msgs) == 1 and
       "SETTINGS_MAX_CONCURRENT_STREAMS 0" in next(iter(msgs)),
       "target allowing no streams for ever: the replay ends, %d timeout errors naming "
       "SETTINGS_MAX_CONCURRENT_STREAMS 0" % N,
       (r and r.stderr[-400:], js.get("errors"), msgs))
    # the limit raised to 2 by a second SETTINGS frame 0.3 s later
    srv = Refuser(0, limit=0, raise_to=2)
    res = os.path.join(tmp, "raised.dyt")
    r = dy("replay", rec, "-t", "http://127.0.0.1:%d" % srv.port, "-o", res, "--max",
           "--timeout", "5s", "--json", "--quiet")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    ok(r.returncode == 0 and js.get("ok") == N and js.get("errors", {}).get("total") == 0,
       "limit 0 raised to 2 later: all %d answered, no error" % N,
       (r.stderr[-400:], js.get("errors"), js.get("counters")))


tmp = tempfile.mkdtemp(prefix="h2-refused-")
try:
    if not shutil.which("nghttpd"):
        print("1..0 # SKIP nghttpd not installed (nghttp2-server, tests/setup.sh)")
        sys.exit(0)
    rec = os.path.join(tmp, "h2load.dyt")
    r = dy("record", "-r", os.path.join(FIX, "h2load.pcap"), "-w", rec)
    ok(r.returncode == 0, "h2load.pcap recorded", r.stderr)
    htdocs = os.path.join(tmp, "htdocs")
    os.makedirs(htdocs)
    with open(os.path.join(htdocs, "a.json"), "w") as f:  # make_fixtures.sh's document
        f.write('{"id": 1, "name": "first", "tags": ["a", "b"]}\n')
    limited(tmp, rec, htdocs)
    refusing(tmp, rec)
    no_streams(tmp, rec)
finally:
    for p in procs:
        p.terminate()
        p.wait()
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(finish())
