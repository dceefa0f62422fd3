#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/2 replay sends every field line of a large request, and the whole
:path, whatever their size.

The recording is written here (crafted_e2e.py's pcap writer): one h2c
connection upgraded from HTTP/1.1 (RFC 7540 §3.2), whose streams are

* 1: the upgraded request, with 150 mixed-case header lines
  (`X-Upgrade-Field-Number-000001: v1`...) and one 200-byte name;
* 3: a GET whose :path is 3000 bytes long;
* 5: a GET with 300 header fields named `x-field-name-number-000001`...
  (about 8 KB of names).

A raw h2c server (below) decodes each request header block with
libnghttp2's HPACK inflater and keeps its field lines. Replayed with
`--path-prefix /v2`, the server must see, per request, the recorded
field lines in order, names in lower case (RFC 9113 §8.2.1: an upper-case
name makes the request malformed), connection-specific ones left out
(§8.2.2), the shadow marker last, and :path the prefix followed by the
whole recorded target (docs/replay.md "Rewrite", docs/http2.md
"Replay"); a prefix without a leading '/' (`v2/`) or with a trailing one
(`/v2/`) is written as in an HTTP/1.x request line: /v2/up, not v2//up
(a :path that does not start with '/' is malformed, RFC 9113 §8.3.1) or
/v2//up. The request's fields used to be built in fixed arrays (256
fields, 4 KB of lowered names, a 2 KB :path): fields past them were left
out or sent with names read past a string's end, and a longer :path was
cut at 2047 bytes, with the request still reported ok.

  fields_e2e.py DYETAP
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from tap_util import LoopbackServer, finish, ok  # noqa: E402
from crafted_e2e import (PREFACE, HeaderBlocks, data, frame, headers,  # noqa: E402
                         read_preface, settings, take_frame, write_pcap)
from goaway_e2e import Inflater  # noqa: E402

DYETAP = sys.argv[1]
UPGRADE_FIELDS = [("X-Upgrade-Field-Number-%06d" % i, "v%d" % i) for i in range(1, 151)]
UPGRADE_FIELDS.append(("X-" + "Long-Name-" * 19 + "End", "long"))  # 200 bytes
LONG_PATH = "/long?q=" + "".join(chr(ord("a") + i % 26) for i in range(2992))
MANY_FIELDS = [("x-field-name-number-%06d" % i, "v%d" % i) for i in range(1, 301)]
MARKER = ("x-dyetap-shadow", "1")


def dy(*args):
    return subprocess.run([DYETAP] + list(args), capture_output=True, text=True, timeout=120)


def recording(tmp):
    up = (b"GET /up HTTP/1.1\r\nHost: h2.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
          b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n" +
          b"".join(("%s: %s\r\n" % f).encode() for f in UPGRADE_FIELDS) + b"\r\n")
    pseudo = [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test")]
    ok_answer = lambda sid: headers(sid, [(":status", "200")], False) + data(sid, b"ok")  # noqa: E731
    segs = [("c", up),
            ("s", b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                  b"\r\n" + settings()),
            ("c", PREFACE + settings()), ("s", frame(4, 1, 0, b"")), ("c", frame(4, 1, 0, b"")),
            ("s", ok_answer(1)),
            ("c", headers(3, pseudo + [(":path", LONG_PATH)], True)), ("s", ok_answer(3)),
            ("c", headers(5, pseudo + [(":path", "/many")] + MANY_FIELDS, True)),
            ("s", ok_answer(5))]
    pcap, rec = os.path.join(tmp, "rec.pcap"), os.path.join(tmp, "rec.dyt")
    write_pcap(pcap, segs)
    r = dy("record", "-r", pcap, "-w", rec)
    got = {}
    if r.returncode == 0:
        for line in dy("cat", rec, "--json").stdout.splitlines():
            s = json.loads(line)
            got[s.get("stream")] = (s["request"]["target"], len(s["request"]["headers"]),
                                    s.get("flags"))
    ok(got == {1: ("/up", 4 + len(UPGRADE_FIELDS), []), 3: (LONG_PATH, 4, []),
               5: ("/many", 4 + len(MANY_FIELDS), [])},
       "recording: the upgraded request, a 3000-byte :path and 300 fields, all whole",
       (r.stderr, {k: v[1:] for k, v in got.items()}))
    return rec


class FieldServer(LoopbackServer):
    """h2c (prior knowledge): keeps the field lines of every request
    header block (by :path) and answers each stream 200 "ok"."""

    def __init__(self):
        self.requests = {}  # :path: [(name, value)] after the pseudo-header fields
        self.errors = []
        super().__init__()

    def serve(self, c, cid):
        inf, blocks = Inflater(), HeaderBlocks()
        try:
            buf = read_preface(c)
            if buf is None:
                return
            c.sendall(frame(4, 0, 0, b""))
            while True:
                while True:
                    fr, buf = take_frame(buf)
                    if fr is None:
                        break
                    ftype, flags, sid, payload = fr
                    if ftype == 4 and not flags & 1:
                        c.sendall(frame(4, 1, 0, b""))  # SETTINGS ACK
                    elif ftype in (1, 9):  # HEADERS, CONTINUATION
                        got = blocks.feed(ftype, flags, sid, payload)
                        if got is None:
                            continue
                        bsid, block = got
                        fields = inf.fields(block)
                        path = dict(fields).get(":path")
                        with self.lock:
                            self.requests[path] = [f for f in fields if not f[0].startswith(":")]
                        c.sendall(frame(1, 4, bsid, b"\x88") + frame(0, 1, bsid, b"ok"))
                d = c.recv(65536)
                if not d:
                    return
                buf += d
        except Exception as e:  # noqa: BLE001 (reported by the checks)
            with self.lock:
                self.errors.append("connection %d: %r" % (cid, e))
        finally:
            inf.close()
            c.close()


def replay(tmp, rec, prefix):
    srv = FieldServer()
    res = os.path.join(tmp, "res.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % srv.port, "--max",
           "--path-prefix", prefix, "-o", res, "--json", "--quiet")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    ok(r.returncode == 0 and js.get("sent") == 3 and js.get("ok") == 3,
       "--path-prefix %s: 3 requests sent, 3 answered" % prefix,
       (r.returncode, r.stderr[-400:], js))
    return srv


def main():
    with tempfile.TemporaryDirectory(prefix="dyetap-h2-fields-") as tmp:
        rec = recording(tmp)
        srv = replay(tmp, rec, "/v2")
        seen = srv.requests
        up = [(n.lower(), v) for n, v in UPGRADE_FIELDS]
        ok(seen.get("/v2/up") == up + [MARKER],
           "the upgraded request: its %d mixed-case header lines in order, in lower case, "
           "no connection-specific field, the marker last" % len(UPGRADE_FIELDS),
           (len(seen.get("/v2/up") or []), (seen.get("/v2/up") or [])[-3:]))
        ok("/v2" + LONG_PATH in seen and seen["/v2" + LONG_PATH] == [MARKER],
           ":path with the prefix: the whole %d-byte recorded target" % len(LONG_PATH),
           sorted(len(p or "") for p in seen))
        ok(seen.get("/v2/many") == MANY_FIELDS + [MARKER],
           "300 header fields: every one, in order, the marker last",
           (len(seen.get("/v2/many") or []), [f for f in seen.get("/v2/many") or []
                                               if f not in MANY_FIELDS][:3]))
        ok(not srv.errors, "the server read every connection", srv.errors)
        # the prefix is written as in an HTTP/1.x request line: a
        # missing leading '/' added, a trailing one dropped
        for prefix in ("v2/", "/v2/"):
            srv = replay(tmp, rec, prefix)
            ok(set(srv.requests) == {"/v2/up", "/v2/many", "/v2" + LONG_PATH} and not srv.errors,
               "--path-prefix %s: :path /v2/up, /v2/many, /v2/long?q=..." % prefix,
               ([p[:20] for p in srv.requests], srv.errors))
    return finish()


if __name__ == "__main__":
    sys.exit(main())
