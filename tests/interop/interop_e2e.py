#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of HAR and GoReplay input and HAR output (docs/interop.md).

usage: interop_e2e.py DYETAP SOURCE_ROOT GROUP
  gor       a real HTTP server on 127.0.0.1 and a client that writes what it
            sends and receives as a GoReplay file, in the format GoReplay
            documents (header line "TYPE ID TIMESTAMP LATENCY", the
            separator line), while tcpdump captures the same traffic on lo:
            `record` of each gives the same sessions (method, target,
            status, lane, body lengths); payloads that cannot be used are
            counted by reason
  har       `cat --har` of the recording of a real capture validates against
            the HAR 1.2 field list (tests/interop/har_check.py) and `record -r`
            of it gives exactly the same records (`cat --json`), also with
            truncated bodies; the HAR checker fails on broken logs
  chromium  headless Chromium, driven through its DevTools protocol over a
            WebSocket on loopback, loads a page of a local server that makes
            requests; the test assembles the Network domain's events into a
            HAR 1.2 log as DevTools' export does; `record` of it gives the
            sessions of the tcpdump capture of the same traffic, and it
            round-trips through `cat --har`
  time      `cat --since/--until` select the sessions of a window and their
            results
Needs root and tcpdump for the captures (else `1..0 # SKIP`).
"""
import base64
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap_util import finish, ok  # noqa: E402

DYETAP, ROOT, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
HERE = os.path.dirname(os.path.abspath(__file__))
TMP = tempfile.mkdtemp(prefix="dyetap-interop-")
COLOR = ["--color", "blue=header:x-lane=blue", "--color", "green=path:/api/echo"]
SEP = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"  # "\n🐵🙈🙉\n"
procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(TMP, ignore_errors=True)


def skip_all(why):
    print("1..0 # SKIP " + why)
    cleanup()
    sys.exit(0)


def run(args, **kw):
    return subprocess.run([DYETAP] + args, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------- server

SERVER = r'''
import http.server, sys, json
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def send(self, code, body, ctype="text/plain", chunked=False):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
    def do_GET(self):
        p = self.path
        if p == "/page":
            return self.send(200, PAGE, "text/html; charset=utf-8")
        if p.startswith("/api/items"):
            q = dict(kv.split("=", 1) for kv in p.split("?", 1)[1].split("&") if "=" in kv) if "?" in p else {}
            n = int(q.get("id", "0"))
            return self.send(200, json.dumps({"id": n, "name": "item %d" % n, "tags": list(range(n % 7))}).encode(), "application/json")
        if p == "/bin":
            return self.send(200, bytes(range(256)) * 3, "application/octet-stream")
        if p == "/chunked":
            return self.send(200, b"a chunked answer in several pieces\n" * 5, chunked=True)
        if p == "/empty":
            self.send_response(204)
            self.end_headers()
            return
        return self.send(404, b"not found\n")
    do_HEAD = do_GET
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        return self.send(201, b"echo:" + body, "application/octet-stream")
PAGE = b"""<!doctype html><html><head><link rel="icon" href="data:,"><title>run</title></head><body>
<script>
(async () => {
  const r1 = await fetch('/api/items?id=3', {headers: {'x-lane': 'blue'}}); await r1.text();
  const r2 = await fetch('/api/echo', {method: 'POST', body: 'hello from the browser', headers: {'x-lane': 'blue'}}); await r2.text();
  const r3 = await fetch('/bin'); await r3.arrayBuffer();
  const r4 = await fetch('/missing'); await r4.text();
  const r5 = await fetch('/chunked'); await r5.text();
  const r6 = await fetch('/api/items?id=5&x=%20y'); await r6.text();
  document.title = 'done';
})();
</script></body></html>"""
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
srv.daemon_threads = True
print("ready", flush=True)
srv.serve_forever()
'''


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_server():
    port = free_port()
    p = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE,
                         text=True)
    procs.append(p)
    p.stdout.readline()
    return port


def start_capture(port, name):
    if not shutil.which("tcpdump") or os.geteuid() != 0:
        skip_all("tcpdump and root are needed to capture the same traffic")
    pcap = os.path.join(TMP, name)
    td = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-B", "65536", "-U", "-s", "0", "-w", pcap,
                           "tcp port %d" % port],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs.append(td)
    line = td.stderr.readline()  # "listening on lo ..." once it captures
    return td, pcap, line


def stop_capture(td):
    """Stop tcpdump; its own summary ("N packets dropped by kernel")."""
    time.sleep(1.0)
    td.send_signal(signal.SIGINT)
    td.wait(10)
    summary = td.stderr.read()
    ok(re.search(r"(^|\n)0 packets dropped by kernel", summary) is not None,
       "tcpdump lost nothing", summary)
    return summary


def records(path, extra=()):
    r = run(["cat", "--json", path] + list(extra))
    return [json.loads(line) for line in r.stdout.splitlines()], r


def key(s):
    """What the pcap and the other formats must agree on."""
    resp = s.get("response")
    return (s["request"]["method"], s["request"]["target"], resp["status"] if resp else None,
            s["lane"], s["request"]["body_len"], resp["body_len"] if resp else None)


def record(inp, out, extra=()):
    r = run(["record", "-r", inp, "-w", out, "--json"] + COLOR + list(extra))
    try:
        c = json.loads(r.stdout) if r.stdout.strip() else {}
    except ValueError:
        c = {}
    return r, c


# ---------------------------------------------------------------- GoReplay

def exchange(port, raw):
    """Send one request on its own connection; (request ts, response ts, response bytes)."""
    s = socket.create_connection(("127.0.0.1", port))
    t_req = time.time_ns()
    s.sendall(raw)
    data, t_resp = b"", 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        if not t_resp:
            t_resp = time.time_ns()
        data += b
    s.close()
    return t_req, t_resp, data


def group_gor():
    port = start_server()
    td, pcap, _ = start_capture(port, "gor.pcap")
    host = "Host: 127.0.0.1:%d\r\n" % port
    reqs = [
        "GET /api/items?id=1 HTTP/1.1\r\n%sx-lane: blue\r\nConnection: close\r\n\r\n" % host,
        "GET /api/items?id=2 HTTP/1.1\r\n%sConnection: close\r\n\r\n" % host,
        "POST /api/echo HTTP/1.1\r\n%sContent-Length: 11\r\nConnection: close\r\n\r\nhello world" % host,
        "POST /api/echo HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n" % host,
        "GET /bin HTTP/1.1\r\n%sx-lane: blue\r\nConnection: close\r\n\r\n" % host,
        "GET /chunked HTTP/1.1\r\n%sConnection: close\r\n\r\n" % host,
        "GET /missing HTTP/1.1\r\n%sConnection: close\r\n\r\n" % host,
        "HEAD /api/items?id=9 HTTP/1.1\r\n%sConnection: close\r\n\r\n" % host,
        "GET /empty HTTP/1.1\r\n%sConnection: close\r\n\r\n" % host,
    ]
    out = bytearray()
    for i, r in enumerate(reqs):
        raw = r.encode()
        t_req, t_resp, resp = exchange(port, raw)
        rid = hashlib.sha1(b"%d" % i).hexdigest()  # GoReplay ids: 40 hex digits
        out += b"1 %s %d 0\n" % (rid.encode(), t_req) + raw + SEP
        out += b"2 %s %d %d\n" % (rid.encode(), t_resp, t_resp - t_req) + resp + SEP
        if i == 0:  # what GoReplay got when it replayed the request: not recorded
            out += b"3 %s %d %d\n" % (rid.encode(), t_resp + 5, 4) + resp + SEP
    out += b"this is not a header line\nGET / HTTP/1.1\r\n\r\n" + SEP
    out += b"2 %s %d 1\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" % (b"f" * 40, time.time_ns()) + SEP
    stop_capture(td)
    gor = os.path.join(TMP, "traffic.gor")
    with open(gor, "wb") as f:
        f.write(out)
    a, b = os.path.join(TMP, "pcap.dyt"), os.path.join(TMP, "gor.dyt")
    ra, _ = record(pcap, a)
    rb, cb = record(gor, b)
    ok(ra.returncode == 0 and rb.returncode == 0, "record of the pcap and of the .gor file",
       ra.stderr + rb.stderr)
    sa, _ = records(a)
    sb, _ = records(b)
    ka, kb = sorted(map(key, sa), key=repr), sorted(map(key, sb), key=repr)
    ok(len(sa) == len(reqs), "the pcap gives %d sessions" % len(reqs), ka)
    ok(ka == kb, "the .gor file gives the same sessions: method, target, status, lane, body lengths",
       "pcap: %s\ngor:  %s" % (ka, kb))
    lanes = sorted(s["lane"] for s in sb)
    ok(lanes.count("blue") == 2 and lanes.count("green") == 2, "color rules applied to .gor input",
       lanes)
    want = {"interop_gor_files": 1, "interop_gor_payloads": 2 * len(reqs) + 3,
            "interop_exchanges": len(reqs), "interop_gor_replayed": 1,
            "interop_skipped_malformed": 1, "interop_gor_orphans": 1, "pipe_written": len(reqs)}
    got = {k: cb.get(k) for k in want}
    ok(got == want, "counters name every payload not used", "want %s\ngot  %s" % (want, got))
    # the same limits as pcap input: --max-body
    c = os.path.join(TMP, "gor-cap.dyt")
    rc, cc = record(gor, c, ["--max-body", "100"])
    sc, _ = records(c)
    binr = [s for s in sc if s["request"]["target"] == "/bin"]
    big = sum(1 for s in sb for m in (s["request"], s["response"]) if m and m["body_len"] > 100)
    ok(rc.returncode == 0 and binr and binr[0]["response"]["truncated"] and
       binr[0]["response"]["body_len"] == 768 and cc.get("txn_body_truncated") == big == 2,
       "--max-body applies to .gor input (txn_body_truncated 2: /bin and /chunked)",
       rc.stderr + str(cc.get("txn_body_truncated")))
    # redaction applies too
    d = os.path.join(TMP, "gor-redact.dyt")
    rd, _ = record(gor, d, ["--redact", "header:x-lane"])
    sd, _ = records(d)
    vals = [v for s in sd for n, v in s["request"]["headers"] if n.lower() == "x-lane"]
    ok(rd.returncode == 0 and vals and all(v != "blue" for v in vals) and
       sorted(s["lane"] for s in sd).count("blue") == 2,
       "redaction applies to .gor input after coloring", vals)
    # a BPF filter selects the made packets like captured ones
    e = os.path.join(TMP, "gor-filter.dyt")
    r = run(["record", "-r", gor, "-w", e, "tcp port 81"])
    se, _ = records(e)
    ok(r.returncode == 0 and len(se) == 0, "a BPF filter that matches nothing keeps nothing",
       r.stderr)


# ---------------------------------------------------------------- HAR round trip

def client_traffic(port):
    """Keep-alive traffic on a few connections with http.client."""
    import http.client
    for c in range(3):
        h = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(5):
            k = (c * 5 + i) % 6
            hdr = {"x-lane": "blue"} if i % 2 else {}
            if k == 0:
                h.request("GET", "/api/items?id=%d" % (c * 10 + i), headers=hdr)
            elif k == 1:
                h.request("POST", "/api/echo", body=("body %d " % i) * (i + 1), headers=hdr)
            elif k == 2:
                h.request("GET", "/bin", headers=hdr)
            elif k == 3:
                h.request("GET", "/chunked", headers=hdr)
            elif k == 4:
                h.request("HEAD", "/api/items?id=1", headers=hdr)
            else:
                h.request("GET", "/missing?q=a%20b&r", headers=hdr)
            h.getresponse().read()
        h.close()


def har_check(path):
    r = subprocess.run([sys.executable, os.path.join(HERE, "har_check.py"), path],
                       capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def round_trip(dyt, tag, extra=()):
    har = os.path.join(TMP, tag + ".har")
    with open(har, "w") as f:
        r = subprocess.run([DYETAP, "cat", "--har", dyt], stdout=f, stderr=subprocess.PIPE,
                           text=True)
    ok(r.returncode == 0, "%s: cat --har" % tag, r.stderr)
    rc, out = har_check(har)
    ok(rc == 0, "%s: the HAR written validates against the HAR 1.2 field list" % tag, out)
    back = os.path.join(TMP, tag + "-back.dyt")
    rr, c = record(har, back, extra)
    a, _ = records(dyt)
    b, _ = records(back)
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    ok(rr.returncode == 0 and a == b and len(a) > 0,
       "%s: record -r of the HAR gives exactly the same %d records" % (tag, len(a)),
       rr.stderr + "first difference at %s:\n%s\n%s" % (
           first, json.dumps(a[first]) if first is not None else "",
           json.dumps(b[first]) if first is not None else "") if first is not None else
       rr.stderr + " %d vs %d records" % (len(a), len(b)))
    return har, c


def group_har():
    port = start_server()
    td, pcap, _ = start_capture(port, "har.pcap")
    client_traffic(port)
    stop_capture(td)
    a = os.path.join(TMP, "a.dyt")
    r, _ = record(pcap, a)
    sa, _ = records(a)
    ok(r.returncode == 0 and len(sa) == 15, "record of the capture: 15 sessions", r.stderr)
    har, c = round_trip(a, "plain")
    # told apart by content, not by name
    disguised = os.path.join(TMP, "named-like-a-capture.pcap")
    shutil.copy(har, disguised)
    r, _ = record(disguised, os.path.join(TMP, "disguised.dyt"))
    s2, _ = records(os.path.join(TMP, "disguised.dyt"))
    ok(r.returncode == 0 and s2 == sa, "a HAR file named .pcap is read as HAR", r.stderr)
    # an entry that got no response (status 0, as a browser writes a cancelled
    # request) followed by others on its connection: the next response is not
    # taken as its answer (HTTP/1.x pairs them in order), its connection ends
    doc = json.load(open(har))
    e = doc["log"]["entries"]
    conns = [x["_dyetap"]["conn"] for x in e]
    k = next((i for i in range(len(e) - 1) if conns[i] == conns[i + 1]), None)
    if k is not None:
        e[k]["response"] = {"status": 0, "statusText": "", "httpVersion": "", "cookies": [],
                            "headers": [], "content": {"size": 0, "mimeType": "x-unknown"},
                            "redirectURL": "", "headersSize": -1, "bodySize": -1}
    nr = os.path.join(TMP, "no-response.har")
    json.dump(doc, open(nr, "w"))
    r, c = record(nr, os.path.join(TMP, "no-response.dyt"))
    s3, _ = records(os.path.join(TMP, "no-response.dyt"))
    want = [key(x) for x in sa]
    if k is not None:
        m, t, _, lane, bl, _ = want[k]
        want[k] = (m, t, None, lane, bl, None)
    ok(k is not None and r.returncode == 0 and [key(x) for x in s3] == want and
       "no_response" in s3[k]["flags"] and c.get("interop_har_no_response") == 1,
       "a HAR entry without a response on a shared connection: no_response, the next "
       "entries keep their own responses", (k, r.stderr, [key(x) for x in s3][:4], want[:4]))
    doc = json.load(open(har))
    e = doc["log"]["entries"]
    ok(len(e) == 15 and all(x["_dyetap"]["conn"] >= 1 for x in e) and
       any(x["response"]["content"].get("encoding") == "base64" for x in e) and
       any("postData" in x["request"] for x in e) and
       any(x["request"]["queryString"] for x in e),
       "entries carry _dyetap, base64 content, postData and queryString", json.dumps(e[0])[:600])
    ok(c.get("interop_har_entries") == 15 and c.get("interop_exchanges") == 15 and
       c.get("interop_length_set") == 0 and c.get("interop_encoding_removed") == 0,
       "counters of the HAR read back: 15 entries, nothing changed", c)
    # truncated bodies: padded back to their length, truncated again by the same --max-body
    t = os.path.join(TMP, "t.dyt")
    r, _ = record(pcap, t, ["--max-body", "20"])
    _, c = round_trip(t, "truncated", ["--max-body", "20"])
    ok(c.get("interop_padded", 0) > 0, "truncated bodies padded back (interop_padded %s)" %
       c.get("interop_padded"), c)
    # a results file: one page per role
    cand = start_server()
    res = os.path.join(TMP, "results.dyt")
    r = run(["replay", a, "--target", "http://127.0.0.1:%d" % cand, "-o", res, "--max", "-q",
             "--allow-writes"])
    rh = os.path.join(TMP, "results.har")
    with open(rh, "w") as f:
        h = subprocess.run([DYETAP, "cat", "--har", res], stdout=f, stderr=subprocess.PIPE,
                           text=True)
    rc, out = har_check(rh)
    doc = json.load(open(rh)) if h.returncode == 0 else {"log": {}}
    pages = sorted(p["id"] for p in doc["log"].get("pages", []))
    refs = [e.get("pageref") for e in doc["log"].get("entries", [])]
    ok(r.returncode == 0 and h.returncode == 0 and rc == 0 and pages == ["candidate", "recorded"]
       and refs.count("recorded") == 15 and refs.count("candidate") == 15,
       "cat --har of a results file: pages recorded and candidate, 15 entries each, valid HAR",
       r.stderr + h.stderr + out + str(pages))
    # recorded back: the recorded entries only, the candidate's answers counted
    back = os.path.join(TMP, "results-back.dyt")
    rr, c = record(rh, back)
    ra, _ = records(a)
    rb, _ = records(back)
    ok(rr.returncode == 0 and c.get("interop_har_replayed") == 15 and
       c.get("interop_exchanges") == 15 and [key(x) for x in rb] == [key(x) for x in ra],
       "a results file's HAR recorded back: its 15 recorded exchanges, the 15 replay answers "
       "not recorded (interop_har_replayed)", (rr.stderr[-300:], c))
    # the checker is not a rubber stamp
    bad = json.load(open(har))
    bad["log"]["entries"][0]["request"].pop("headers")
    bad["log"]["entries"][0]["response"]["content"]["size"] = "12"
    bad["log"]["entries"][0]["timings"]["send"] = -3
    bad["log"]["entries"][0]["extra"] = 1
    bad["log"]["entries"][0]["startedDateTime"] = "yesterday"
    bp = os.path.join(TMP, "bad.har")
    json.dump(bad, open(bp, "w"))
    rc, out = har_check(bp)
    ok(rc == 1 and out.count("\n") >= 5, "the HAR checker names each broken field", out)
    # a broken HAR file is refused before the output is written
    with open(bp, "w") as f:
        f.write('{"log": {"entries": [')
    out = os.path.join(TMP, "never.dyt")
    r = run(["record", "-r", bp, "-w", out])
    ok(r.returncode == 2 and "not a HAR file" in r.stderr and not os.path.exists(out),
       "a cut HAR file: exit 2 with the reason, nothing written", r.stderr)
    # HTTP/2: 30 gRPC calls on one connection (tests/h2/fixtures/grpc.pcap, a
    # real python3-grpcio capture) come back as 30 exchanges on one
    # connection: an answer that ended with its stream gets a Content-Length
    g = os.path.join(TMP, "grpc.dyt")
    record(os.path.join(ROOT, "tests", "h2", "fixtures", "grpc.pcap"), g)
    gh = os.path.join(TMP, "grpc.har")
    with open(gh, "w") as f:
        subprocess.run([DYETAP, "cat", "--har", g], stdout=f, stderr=subprocess.PIPE)
    gb = os.path.join(TMP, "grpc-back.dyt")
    rr, c = record(gh, gb)
    ga, _ = records(g)
    gr, _ = records(gb)
    ok(rr.returncode == 0 and len(gr) == 30 and len({x["conn_id"] for x in gr}) == 1 and
       not any(x["flags"] for x in gr) and [key(x) for x in gr] == [key(x) for x in ga],
       "an HTTP/2 HAR recorded back: the 30 gRPC calls on their one connection, whole, the "
       "same methods, targets, statuses and body lengths",
       (rr.stderr[-300:], len(gr), sorted({x["conn_id"] for x in gr}),
        [x["flags"] for x in gr if x["flags"]][:3]))


# ---------------------------------------------------------------- Chromium

class WS:
    """A minimal WebSocket client (RFC 6455): text frames, masked, no extensions."""

    def __init__(self, url):
        assert url.startswith("ws://")
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=30)
        k = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, k)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.s.recv(4096)
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0
        self.events = []

    def _read(self, n):
        while len(self.buf) < n:
            b = self.s.recv(1 << 16)
            if not b:
                raise EOFError
            self.buf += b
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def recv(self):
        msg = b""
        while True:
            h = self._read(2)
            fin, op, n = h[0] & 0x80, h[0] & 0x0f, h[1] & 0x7f
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            data = self._read(n)
            if op == 9:
                continue
            msg += data
            if fin:
                return json.loads(msg)

    def call(self, method, **params):
        self.next_id += 1
        payload = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while True:
            m = self.recv()
            if m.get("id") == self.next_id:
                return m.get("result", m.get("error"))
            self.events.append(m)


def iso(wall):
    t = time.gmtime(wall)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % int((wall % 1) * 1000)


def nv(d):
    return [{"name": k, "value": v} for k, vs in d.items() for v in str(vs).split("\n")]


def assemble_har(ws, events):
    """Network domain events -> HAR 1.2, the way DevTools' HAR export builds entries."""
    reqs = {}
    order = []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        rid = p.get("requestId")
        if m == "Network.requestWillBeSent":
            if rid not in order:  # ExtraInfo events may come first
                order.append(rid)
            reqs.setdefault(rid, {})["sent"] = p
        elif m == "Network.requestWillBeSentExtraInfo":
            reqs.setdefault(rid, {})["sent_extra"] = p
        elif m == "Network.responseReceived":
            reqs.setdefault(rid, {})["resp"] = p
        elif m == "Network.responseReceivedExtraInfo":
            reqs.setdefault(rid, {})["resp_extra"] = p
        elif m == "Network.loadingFinished":
            reqs.setdefault(rid, {})["done"] = p
    entries = []
    for rid in order:
        r = reqs[rid]
        if "sent" not in r or "resp" not in r or "done" not in r:
            continue
        rq, rs = r["sent"]["request"], r["resp"]["response"]
        if not rq["url"].startswith("http://"):
            continue
        timing = rs.get("timing") or {}
        req_headers = (r.get("sent_extra") or {}).get("headers") or rq.get("headers", {})
        resp_headers = (r.get("resp_extra") or {}).get("headers") or rs.get("headers", {})
        body = ws.call("Network.getResponseBody", requestId=rid)
        content = {"size": len(base64.b64decode(body["body"])) if body.get("base64Encoded")
                   else len(body.get("body", "").encode()), "mimeType": rs.get("mimeType", "")}
        content["text"] = body.get("body", "")
        if body.get("base64Encoded"):
            content["encoding"] = "base64"
        send = max(0.0, timing.get("sendEnd", 0) - timing.get("sendStart", 0))
        wait = max(0.0, timing.get("receiveHeadersEnd", 0) - timing.get("sendEnd", 0))
        end_ms = (r["done"]["timestamp"] - timing.get("requestTime", r["done"]["timestamp"])) * 1000
        recv = max(0.0, end_ms - timing.get("receiveHeadersEnd", 0))
        ver = {"http/1.1": "HTTP/1.1", "http/1.0": "HTTP/1.0"}.get(rs.get("protocol", ""), rs.get("protocol", ""))
        entry = {
            "startedDateTime": iso(r["sent"]["wallTime"]),
            "time": send + wait + recv,
            "request": {"method": rq["method"], "url": rq["url"], "httpVersion": ver,
                        "cookies": [], "headers": nv(req_headers), "queryString": [],
                        "headersSize": -1, "bodySize": len(rq.get("postData", "").encode())},
            "response": {"status": rs["status"], "statusText": rs.get("statusText", ""),
                         "httpVersion": ver, "cookies": [], "headers": nv(resp_headers),
                         "content": content, "redirectURL": "", "headersSize": -1,
                         "bodySize": r["done"].get("encodedDataLength", -1)},
            "cache": {},
            "timings": {"blocked": -1, "dns": -1, "connect": -1, "send": send, "wait": wait,
                        "receive": recv, "ssl": -1},
            "serverIPAddress": rs.get("remoteIPAddress", ""),
            "connection": str(rs.get("connectionId", "")),
        }
        if rq.get("hasPostData"):
            text = rq.get("postData")
            if text is None:
                text = ws.call("Network.getRequestPostData", requestId=rid).get("postData", "")
            entry["request"]["postData"] = {"mimeType": req_headers.get("Content-Type", ""),
                                            "text": text}
            entry["request"]["bodySize"] = len(text.encode())
        entries.append(entry)
    return {"log": {"version": "1.2", "creator": {"name": "interop_e2e.py", "version": "1"},
                    "browser": {"name": "Chromium", "version": ""}, "entries": entries}}


def group_chromium():
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chrome:
        skip_all("chromium is not installed (tests/setup.sh installs it)")
    port = start_server()
    td, pcap, _ = start_capture(port, "browser.pcap")
    prof = os.path.join(TMP, "profile")
    br = subprocess.Popen([chrome, "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--no-default-browser-check",
                           "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", "--disable-extensions", "--user-data-dir=" + prof,
                           "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                           "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    procs.append(br)
    url = None
    end = time.time() + 60
    while time.time() < end and url is None:
        line = br.stderr.readline()
        if not line:
            break
        if "DevTools listening on " in line:
            url = line.split("DevTools listening on ", 1)[1].strip()
    if not url:
        skip_all("chromium did not start its DevTools endpoint")
    ws = WS(url)
    tgt = ws.call("Target.createTarget", url="about:blank")
    sess = ws.call("Target.attachToTarget", targetId=tgt["targetId"], flatten=True)["sessionId"]

    def call(method, **params):
        ws.next_id += 1
        payload = json.dumps({"id": ws.next_id, "sessionId": sess, "method": method,
                              "params": params}).encode()
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        ws.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        want = ws.next_id
        while True:
            m = ws.recv()
            if m.get("id") == want:
                return m.get("result", m.get("error"))
            ws.events.append(m)

    class Sess:
        pass
    sw = Sess()
    sw.call = call
    call("Network.enable")
    call("Page.enable")
    call("Page.navigate", url="http://127.0.0.1:%d/page" % port)
    end = time.time() + 30
    title = ""
    while time.time() < end:
        title = call("Runtime.evaluate", expression="document.title").get("result", {}).get("value")
        if title == "done":
            break
        time.sleep(0.2)
    time.sleep(0.5)
    call("Runtime.evaluate", expression="1")
    events = [e for e in ws.events if e.get("sessionId") == sess]
    har_doc = assemble_har(sw, events)
    try:
        ws.call("Browser.close")
    except (EOFError, OSError):
        pass
    br.wait(20)
    stop_capture(td)
    ok(title == "done", "the page ran its requests in headless Chromium", title)
    har = os.path.join(TMP, "browser.har")
    json.dump(har_doc, open(har, "w"), indent=1)
    rc, out = har_check(har)
    ok(rc == 0, "the assembled HAR is HAR 1.2", out)
    a, b = os.path.join(TMP, "browser-pcap.dyt"), os.path.join(TMP, "browser-har.dyt")
    ra, _ = record(pcap, a)
    rb, cb = record(har, b)
    sa, _ = records(a)
    sb, _ = records(b)
    ka, kb = sorted(map(key, sa), key=repr), sorted(map(key, sb), key=repr)
    ok(ra.returncode == 0 and rb.returncode == 0 and len(sa) == 7,
       "record of the browser's capture: the page and its 6 requests", ra.stderr + rb.stderr + str(ka))
    ok(ka == kb, "record of the browser's HAR gives the same sessions: method, target, status, lane, body lengths",
       "pcap: %s\nhar:  %s" % (ka, kb))
    item3 = len(json.dumps({"id": 3, "name": "item 3", "tags": [0, 1, 2]}))  # the server's answer
    want = [("GET", "/api/items?id=3", 200, "blue", 0, item3),
            ("POST", "/api/echo", 201, "blue", 22, len("echo:hello from the browser"))]
    ok(all(w in kb for w in want), "the colored fetches: lane blue, the POST body of 22 bytes",
       kb)
    ok(cb.get("interop_har_entries") == 7 and cb.get("interop_skipped_malformed") == 0 and
       cb.get("interop_exchanges") == 7, "all 7 entries used",
       {k: v for k, v in cb.items() if k.startswith("interop_")})
    round_trip(b, "browser")


# ---------------------------------------------------------------- cat --since/--until

def group_time():
    port = start_server()
    td, pcap, _ = start_capture(port, "time.pcap")
    import http.client
    for i in range(6):
        h = http.client.HTTPConnection("127.0.0.1", port)
        h.request("GET", "/api/items?id=%d" % i)
        h.getresponse().read()
        h.close()
        time.sleep(0.3)
    stop_capture(td)
    a = os.path.join(TMP, "time.dyt")
    record(pcap, a)
    sa, _ = records(a)
    ok(len(sa) == 6, "six sessions 0.3 s apart", len(sa))
    if len(sa) != 6:
        return
    ts = [s["ts_request_ns"] for s in sa]
    since, until = ts[2], ts[4]
    win, r = records(a, ["--since", "%d.%09d" % (since // 10**9, since % 10**9),
                         "--until", "%d.%09d" % (until // 10**9, until % 10**9)])
    ok(r.returncode == 0 and [s["id"] for s in win] == [sa[2]["id"], sa[3]["id"]],
       "--since T2 --until T4: sessions 3 and 4", r.stderr + str([s["id"] for s in win]))
    t = time.gmtime(since // 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%09dZ" % (since % 10**9)
    win, r = records(a, ["--since", stamp])
    ok([s["id"] for s in win] == [s["id"] for s in sa[2:]], "--since as a UTC date-time", r.stderr)
    r = run(["cat", a, "--since", "2", "--until", "1"])
    ok(r.returncode == 2 and "after --since" in r.stderr, "an empty window is a usage error",
       r.stderr)
    r = run(["cat", a, "--since", "yesterday"])
    ok(r.returncode == 2 and "--since" in r.stderr, "a bad time is a usage error", r.stderr)
    h = subprocess.run([DYETAP, "cat", "--har", a, "--until", "%d" % (ts[1] // 10**9 + 1)],
                       capture_output=True, text=True)
    doc = json.loads(h.stdout) if h.returncode == 0 else {"log": {"entries": []}}
    n = sum(1 for s in sa if s["ts_request_ns"] < (ts[1] // 10**9 + 1) * 10**9)
    ok(len(doc["log"]["entries"]) == n, "--har with --until: %d entries" % n, h.stderr)


def main():
    try:
        {"gor": group_gor, "har": group_har, "chromium": group_chromium,
         "time": group_time}[GROUP]()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    rc = finish()
    shutil.rmtree(TMP, ignore_errors=True)
    return rc


if __name__ == "__main__":
    random.seed(1)
    sys.exit(main())
