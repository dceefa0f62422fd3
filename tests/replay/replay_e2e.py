#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of `dyetap replay` against real servers on loopback.

Usage: replay_e2e.py DYETAP TESTTOOL GROUP

Recordings are built with the store writer (replay_testtool mkrec) from
known sessions; servers are started here on 127.0.0.1 with free ports:
a small HTTP server written below that logs every request with its
connection (the client port), and nginx with a generated configuration
logging $connection and $connection_requests. Prints TAP.
GROUP selects a subset so each test program stays short: fidelity,
failures, control.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, free_port, ok  # noqa: E402

DYETAP, TOOL, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
TMP = tempfile.mkdtemp(prefix="dyetap-replay-")






def mkrec(name, rows):
    """rows: (conn, ts_ms, method, target[, lane, body, flags, headers])"""
    path = os.path.join(TMP, name)
    lines = []
    for r in rows:
        r = list(r) + ["-"] * (8 - len(r))
        lines.append("\t".join(str(x) for x in r))
    subprocess.run([TOOL, "mkrec", path], input="\n".join(lines) + "\n", text=True, check=True)
    return path


def dump(path):
    out = subprocess.run([TOOL, "dump", path], capture_output=True, text=True)
    sessions, results, status = [], [], None
    for line in out.stdout.splitlines():
        o = json.loads(line)
        if "session" in o:
            sessions.append(o["session"])
        elif "result" in o:
            results.append(o["result"])
        else:
            status = o["status"]
    return sessions, results, status, out.returncode


def replay(args, timeout=30):
    t0 = time.monotonic()
    p = subprocess.run([DYETAP, "replay"] + args + ["--json", "-q"], capture_output=True,
                       text=True, timeout=timeout)
    el = time.monotonic() - t0
    js = None
    if p.returncode in (0, 1, 3) and p.stdout.strip():  # 3: every request failed, summary given
        try:
            js = json.loads(p.stdout)
        except ValueError:
            pass
    return p.returncode, js, p.stderr, el


class LogServer:
    """A small HTTP/1.1 server that logs (client port, method, path, headers, body).

    mode: ok | close_after:N (silently close after N responses per connection)
          | close_hdr:N (send Connection: close on the Nth response) | hang | reset
          | garbage | chunked | interim | slow:SECONDS
          | drop_second (close the connection on its 2nd request, unanswered)
          | close_delim (no length: the body ends when the server closes; the
            response and the close are sent at once)
    """

    def __init__(self, mode="ok", v6=False):
        self.mode = mode
        self.v6 = v6
        self.log = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
        self.sock.bind(("::1" if v6 else "127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def url(self):
        return "http://%s:%d" % ("[::1]" if self.v6 else "127.0.0.1", self.port)

    def accept_loop(self):
        while not self.stop:
            try:
                c, addr = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c, addr[1]), daemon=True).start()

    def serve(self, c, port):
        buf = b""
        served = 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = [tuple(x.split(": ", 1)) for x in lines[1:]]
                clen = 0
                for k, v in headers:
                    if k.lower() == "content-length":
                        clen = int(v)
                while len(buf) < clen:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:clen], buf[clen:]
                with self.lock:
                    self.log.append({"port": port, "method": method, "path": path,
                                     "headers": headers, "body": body.decode("latin-1")})
                served += 1
                m = self.mode
                if m == "drop_second" and served == 2:
                    return
                if m == "hang":
                    time.sleep(30)
                    return
                if m == "reset":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    c.close()
                    return
                if m == "garbage":
                    c.sendall(b"this is not http at all\r\n\r\n")
                    time.sleep(0.2)
                    c.close()
                    return
                if m.startswith("slow:"):
                    time.sleep(float(m[5:]))
                rb = ("echo %s" % path).encode()
                extra = b""
                if m.startswith("close_hdr:") and served >= int(m[10:]):
                    extra = b"Connection: close\r\n"
                if m == "big":
                    rb = b"x" * (2 << 20)
                if m == "chunked":
                    resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                            b"%x\r\n%s\r\n0\r\n\r\n" % (len(rb), rb))
                elif m == "close_delim":
                    # Body and FIN together: the client must read to EOF.
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + rb)
                    c.shutdown(socket.SHUT_WR)
                    return
                elif m == "interim":
                    resp = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(rb), rb))
                else:
                    resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (
                        len(rb), extra, rb if method != "HEAD" else b"")
                c.sendall(resp)
                if extra or (m.startswith("close_after:") and served >= int(m[12:])):
                    time.sleep(0.05)
                    c.close()
                    return
        except OSError:
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        # shutdown() wakes the thread blocked in accept(): a bare close() would
        # leave the listener alive until that accept() returns.
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def by_port(self):
        with self.lock:
            out = {}
            for e in self.log:
                out.setdefault(e["port"], []).append(e)
            return out


def start_nginx(tls=None):
    if not shutil.which("nginx"):
        return None
    d = tempfile.mkdtemp(prefix="nginx-", dir=TMP)
    port = free_port()
    listen = "127.0.0.1:%d" % port
    if tls:
        listen += " ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s" % tls
    conf = """
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  log_format conn '$connection $connection_requests $request_method $request_uri $http_x_dyetap_shadow';
  keepalive_requests 10000;
  server {
    listen %(listen)s;
    access_log %(d)s/access.log conn;
    location / { return 200 "nginx $request_uri\\n"; }
  }
}
""" % {"d": d, "listen": listen}
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, port, d
        except OSError:
            time.sleep(0.05)
    p.kill()
    return None


def stop_nginx(n):
    if n:
        n[0].terminate()
        try:
            n[0].wait(5)
        except subprocess.TimeoutExpired:
            n[0].kill()


# Three recorded connections, four requests each, interleaved in time.
def fidelity_rows():
    rows = []
    for i in range(4):
        for c in (1, 2, 3):
            rows.append((c, i * 30 + c * 5, "GET", "/c%d/r%d" % (c, i)))
    return rows


def check_connections(seqs, what):
    """seqs: list of per-target-connection request paths, in server order."""
    want = {tuple("/c%d/r%d" % (c, i) for i in range(4)) for c in (1, 2, 3)}
    got = {tuple(s) for s in seqs}
    ok(got == want and len(seqs) == 3, what, "got %r" % sorted(got))


def group_fidelity():
    rec = mkrec("fid.dyt", fidelity_rows())
    srv = LogServer()
    out = os.path.join(TMP, "fid-res.dyt")
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", out, "--speed", "4x"])
    ok(rc == 0 and js and js["sent"] == 12 and js["ok"] == 12, "12 requests replayed ok", err)
    seqs = [[e["path"] for e in v] for v in srv.by_port().values()]
    check_connections(seqs, "python server: same requests on the same connections, in order")
    hdrs = srv.log[0]["headers"] if srv.log else []
    names = [h[0] for h in hdrs]
    ok(names[:2] == ["Host", "X-Seq"] and ("x-dyetap-shadow", "1") in hdrs,
       "recorded header order kept, shadow marker added", hdrs)
    sessions, results, status, drc = dump(out)
    ok(drc == 0 and status["kind"] == "results" and status["has_index"],
       "results store complete, kind results", status)
    ids = [s["id"] for s in sessions]
    ok(len(sessions) == 12 and len(results) == 12 and
       all(r["session_id"] in ids for r in results), "every result refers to a session", status)
    # Self-contained: each session record precedes its results in the file.
    out2 = subprocess.run([TOOL, "dump", out], capture_output=True, text=True).stdout
    seen, before = set(), True
    for line in out2.splitlines():
        o = json.loads(line)
        if "session" in o:
            seen.add(o["session"]["id"])
        elif "result" in o and o["result"]["session_id"] not in seen:
            before = False
    ok(before, "session records precede their results")
    r0 = results[0] if results else {}
    ok(r0.get("role") == "candidate" and r0.get("target") == srv.url() and
       r0.get("response", {}).get("status") == 200 and r0.get("error") == "none",
       "result carries role, target, status", r0)
    prod = sessions[0]["response"]["body"] if sessions else ""
    ok(prod.startswith("prod /c"), "production response kept in the results", prod)
    ok(js and set(["sent", "ok", "skipped", "errors", "achieved_rps", "latency_ms",
                   "lateness_ms"]) <= set(js) and
       set(["p50", "p90", "p99", "max"]) <= set(js["latency_ms"]) and
       set(["p50", "p99"]) <= set(js["lateness_ms"]) and
       set(["refused", "reset", "timeout", "bad_response"]) <= set(js["errors"]),
       "--json has the documented keys", js)
    srv.close()

    # nginx: $connection / $connection_requests prove the same grouping.
    ng = start_nginx()
    if not ng:
        ok(True, "# SKIP nginx not installed")
        return
    _, port, d = ng
    out = os.path.join(TMP, "fid-ng.dyt")
    rc, js, err, _ = replay([rec, "--target", "http://127.0.0.1:%d" % port, "-o", out,
                             "--speed", "4x", "--set-header", "X-Test: 1"])
    time.sleep(0.3)
    stop_nginx(ng)
    ok(rc == 0 and js and js["ok"] == 12, "nginx: 12 ok", err)
    conns = {}
    reqno_ok = True
    with open(os.path.join(d, "access.log")) as f:
        for line in f:
            cid, nreq, meth, uri, shadow = line.split()
            conns.setdefault(cid, []).append(uri)
            reqno_ok &= int(nreq) == len(conns[cid]) and shadow == "1"
    check_connections(list(conns.values()),
                      "nginx: $connection groups match recorded connections, in order")
    ok(reqno_ok, "nginx: $connection_requests counts 1..4 on each connection, marker seen")

    # Pooled mode spreads requests over at most N connections.
    srv = LogServer()
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "pool.dyt"),
                             "--max", "--pooled", "-c", "2"])
    ok(rc == 0 and js["ok"] == 12 and 1 <= len(srv.by_port()) <= 2,
       "--pooled -c 2: 12 ok over at most 2 connections", (err, len(srv.by_port())))
    # Under --max nothing is paced: the wait is not called pacing lateness.
    p = subprocess.run([DYETAP, "replay", rec, "--target", srv.url(), "--max", "-q",
                        "-o", os.path.join(TMP, "max-text.dyt")],
                       capture_output=True, text=True, timeout=30)
    ok(js and js.get("pace") == "max" and "queue wait ms" in p.stdout and
       "lateness ms" not in p.stdout,
       "--max: the summary says queue wait, --json says pace max", (p.stdout, p.stderr, js))
    srv.close()

    # Chunked, 1xx interim and close-delimited responses parse (the last
    # with the body and the server's FIN arriving together).
    for mode in ("chunked", "interim", "close_delim"):
        srv = LogServer(mode)
        rc, js, err, _ = replay([rec, "--target", srv.url(), "-o",
                                 os.path.join(TMP, mode + ".dyt"), "--max"])
        sess, res, _, _ = dump(os.path.join(TMP, mode + ".dyt"))
        target = {x["id"]: x["request"]["target"] for x in sess}
        bodies_ok = all(r["response"] and
                        r["response"]["body"] == "echo " + target.get(r["session_id"], "?")
                        for r in res)
        ok(rc == 0 and js["ok"] == 12 and bodies_ok and len(res) == 12,
           "%s responses: 12 ok with bodies" % mode, (err, js))
        srv.close()

    # HEAD: the response has a Content-Length but no body, on fresh and reused
    # connections alike.
    hrec = mkrec("head.dyt", [(1, 0, "HEAD", "/h1"), (1, 1, "HEAD", "/h2"),
                              (2, 2, "HEAD", "/h3")])
    srv = LogServer()
    rc, js, err, _ = replay([hrec, "--target", srv.url(), "-o", os.path.join(TMP, "head-res.dyt"),
                             "--max", "--timeout", "2s"])
    ok(rc == 0 and js["ok"] == 3 and js["errors"]["total"] == 0 and len(srv.by_port()) == 2,
       "HEAD responses end at their headers: 3 ok over 2 connections", (err, js))
    srv.close()

    # An IPv6 target.
    try:
        srv = LogServer(v6=True)
    except OSError:
        srv = None
    if srv:
        rc, js, err, _ = replay([rec, "--target", srv.url(), "-o",
                                 os.path.join(TMP, "v6.dyt"), "--max"])
        ok(rc == 0 and js["ok"] == 12 and len(srv.by_port()) == 3,
           "IPv6 target [::1]: 12 ok over 3 connections", (err, js))
        srv.close()
    else:
        ok(True, "# SKIP no IPv6 loopback")

    # Two targets: each request goes to both, results filed by role.
    a, b = LogServer(), LogServer()
    out = os.path.join(TMP, "two.dyt")
    rc, js, err, _ = replay([rec, "--target", a.url(), "--target", "baseline=" + b.url(),
                             "-o", out, "--max"])
    _, res, _, _ = dump(out)
    roles = sorted(set(r["role"] for r in res))
    ok(rc == 0 and js["ok"] == 24 and len(a.log) == 12 and len(b.log) == 12 and
       roles == ["baseline", "candidate"], "two targets: 24 results, roles kept", (err, roles))
    # --baseline first: the unnamed target still becomes the candidate.
    out = os.path.join(TMP, "two-b.dyt")
    rc, js, err, _ = replay([rec, "--baseline", b.url(), "--target", a.url(), "-o", out, "--max"])
    _, res, _, _ = dump(out)
    by_role = {(r["role"], r["target"]) for r in res}
    ok(rc == 0 and by_role == {("candidate", a.url()), ("secondary", b.url())},
       "--baseline B --target A: A is the candidate, B the secondary", (err, by_role))
    rc, js, err, _ = replay([rec, "--target", "candidate=" + a.url(), "--target",
                             "candidate=" + b.url(), "-o", out, "--max"])
    ok(rc == 2 and "two targets have the role 'candidate'" in err,
       "two targets with one role: exit 2", (rc, err))
    a.close()
    b.close()

    # A body over the cap is kept to the cap and counted.
    srv = LogServer("big")
    out = os.path.join(TMP, "big.dyt")
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", out, "--max",
                             "--max-body", "1000"])
    _, res, _, _ = dump(out)
    ok(rc == 0 and js["ok"] == 12 and js["counters"]["resp_truncated"] == 12 and
       res[0]["response"]["body_len"] == 2 << 20 and len(res[0]["response"]["body"]) == 1000
       and res[0]["response"]["truncated"], "2 MiB bodies kept to the 1000-byte cap, counted",
       (err, js and js["counters"]))
    srv.close()

    # A reused connection closed before any answer: an idempotent request is
    # resent once on a new connection, a POST is not (the target may have
    # acted on it) and ends as a reset.
    for method, want_ok, want_retries, want_seen in (("GET", 2, 1, 3), ("POST", 1, 0, 2)):
        r2 = mkrec("retry-%s.dyt" % method, [(1, 0, method, "/r1"), (1, 10, method, "/r2")])
        srv = LogServer("drop_second")
        rc, js, err, _ = replay([r2, "--target", srv.url(), "-o",
                                 os.path.join(TMP, "retry.dyt"), "--max", "--allow-writes"])
        ok(rc == 0 and js["ok"] == want_ok and js["counters"]["retries"] == want_retries and
           js["errors"]["reset"] == 2 - want_ok and len(srv.log) == want_seen,
           "%s on a reused connection closed unanswered: %d ok, %d retries, target saw %d" %
           (method, want_ok, want_retries, want_seen),
           (err, js and (js["ok"], js["counters"]["retries"], js["errors"]), len(srv.log)))
        srv.close()

    # Server closing keep-alive connections: reconnect, nothing lost.
    for mode in ("close_hdr:2", "close_after:2"):
        srv = LogServer(mode)
        rc, js, err, _ = replay([rec, "--target", srv.url(), "-o",
                                 os.path.join(TMP, "ka.dyt"), "--speed", "4x"])
        ok(rc == 0 and js["ok"] == 12 and js["counters"]["reconnects"] >= 3 and
           len(srv.log) >= 12,
           "target closes keep-alive (%s): 12 ok, reconnects counted" % mode,
           (err, js, [[e["path"] for e in v] for v in srv.by_port().values()]))
        srv.close()


def group_tls():
    if not shutil.which("openssl"):
        ok(True, "# SKIP openssl not installed")
        return
    d = os.path.join(TMP, "pki")
    os.mkdir(d)

    def ossl(*a):
        subprocess.run(["openssl"] + list(a), cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=dyetap test ca")
    ossl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext")
    ng = start_nginx((os.path.join(d, "srv.pem"), os.path.join(d, "srv.key")))
    if not ng:
        ok(True, "# SKIP nginx not installed")
        return
    _, port, nd = ng
    url = "https://127.0.0.1:%d" % port
    rec = mkrec("tls.dyt", fidelity_rows())
    ca = os.path.join(d, "ca.pem")
    out = os.path.join(TMP, "tls-res.dyt")
    rc, js, err, _ = replay([rec, "--target", url, "-o", out, "--max", "--ca", ca])
    ok(rc == 0 and js["ok"] == 12, "https with --ca: 12 ok (address verified)", (err, js))
    rc, js, err, _ = replay([rec, "--target", url, "-o", out, "--max", "--ca", ca,
                             "--sni", "localhost"])
    ok(rc == 0 and js["ok"] == 12, "https with --sni localhost: 12 ok", (err, js))
    rc, js, err, _ = replay([rec, "--target", url, "-o", out, "--max", "--ca", ca,
                             "--sni", "wrong.example"])
    ok(rc == 3 and js["errors"]["tls"] == 12 and js["ok"] == 0 and
       "12 tls: certificate verification failed: hostname mismatch" in err,
       "https with a name the certificate lacks: 12 tls errors, exit 3 naming them", (err, js))
    rc, js, err, _ = replay([rec, "--target", url, "-o", out, "--max"])
    ok(rc == 3 and js["errors"]["tls"] == 12 and "12 tls: certificate verification failed" in err,
       "https, unknown CA: 12 tls errors, exit 3 naming them", (err, js))
    _, res, _, _ = dump(out)
    ok(res and "certificate" in res[0]["error_msg"], "tls error message names the cause",
       res[:1])
    rc, js, err, _ = replay([rec, "--target", url, "-o", out, "--max", "--insecure"])
    ok(rc == 0 and js["ok"] == 12, "https --insecure: 12 ok", (err, js))
    time.sleep(0.2)
    stop_nginx(ng)
    conns = {}
    with open(os.path.join(nd, "access.log")) as f:
        for line in f:
            cid, nreq, meth, uri, shadow = line.split()
            conns.setdefault(cid, []).append(uri)
    ok(len(conns) == 9 and all(len(v) == 4 for v in conns.values()),
       "https: keep-alive kept over TLS (3 connections per ok run)", conns)


def group_record():
    """Real traffic: curl -> server captured by tcpdump, `dyetap record`, then replay."""
    for tool in ("tcpdump", "curl"):
        if not shutil.which(tool):
            ok(True, "# SKIP %s not installed" % tool)
            return
    probe = subprocess.run([DYETAP, "record", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        ok(True, "# SKIP dyetap record not available in this build")
        return
    prod = LogServer()
    pcap = os.path.join(TMP, "curl.pcap")
    td = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-n", "-w", pcap,
                           "tcp port %d" % prod.port],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = td.stderr.readline()  # "listening on lo ..." once capturing
    if "listening" not in line:
        td.kill()
        ok(True, "# SKIP tcpdump cannot capture on lo: %s" % line.strip())
        return
    time.sleep(1.0)  # the filter is attached a moment after the banner
    u = prod.url()
    subprocess.run(["curl", "-s", "-o", "/dev/null", u + "/a", "-o", "/dev/null", u + "/b?x=1",
                    "-o", "/dev/null", u + "/c"], check=True)
    subprocess.run(["curl", "-s", "-H", "x-lane: blue", "-o", "/dev/null", u + "/d",
                    "-o", "/dev/null", u + "/e"], check=True)
    time.sleep(0.5)
    td.send_signal(signal.SIGINT)
    td.wait(5)
    prod.close()
    want = sorted([["/a", "/b?x=1", "/c"], ["/d", "/e"]])
    ok(sorted([[e["path"] for e in v] for v in prod.by_port().values()]) == want,
       "curl made 2 keep-alive connections (3 + 2 requests)")
    rec = os.path.join(TMP, "curl.dyt")
    r = subprocess.run([DYETAP, "record", "-r", pcap, "-w", rec], capture_output=True,
                       text=True)
    ok(r.returncode == 0, "dyetap record on the tcpdump capture", r.stderr)
    cand = LogServer()
    out = os.path.join(TMP, "curl-res.dyt")
    rc, js, err, _ = replay([rec, "--target", cand.url(), "-o", out, "--speed", "4x"])
    ok(rc == 0 and js and js["ok"] == 5, "replay of the recording: 5 ok", (err, js))
    seqs = sorted([[e["path"] for e in v] for v in cand.by_port().values()])
    ok(seqs == want, "candidate sees the same requests on the same connections", seqs)
    blue = [e for e in cand.log if e["path"] == "/d"]
    hdrs = blue[0]["headers"] if blue else []
    names = [h[0] for h in hdrs]
    ok(("x-lane", "blue") in hdrs and names[:3] == ["Host", "User-Agent", "Accept"] and
       names[-1] == "x-dyetap-shadow", "curl's headers kept in order, marker last", hdrs)
    cand.close()


def group_failures():
    rows = [(1, 0, "GET", "/a"), (1, 10, "GET", "/b"), (2, 5, "GET", "/c")]
    rec = mkrec("fail.dyt", rows)
    # Target down: refused.
    port = free_port()
    rc, js, err, el = replay([rec, "--target", "http://127.0.0.1:%d" % port, "-o",
                              os.path.join(TMP, "down.dyt"), "--max"])
    # every request failed: exit 3 (fail closed), the cause named with its count
    ok(rc == 3 and js["errors"]["refused"] == 3 and js["ok"] == 0 and el < 10 and
       "every request failed (3 of 3)" in err and "3 refused: connection refused" in err and
       js["error_causes"] == [{"count": 3, "kind": "refused", "message": "connection refused"}],
       "target down: 3 refused, no hang, exit 3 naming the cause", (rc, err, js))
    _, res, _, _ = dump(os.path.join(TMP, "down.dyt"))
    ok(len(res) == 3 and all(r["error"] == "refused" and r["response"] is None for r in res),
       "refused recorded per request in the results", res)
    # Accepts and never answers: timeout.
    srv = LogServer("hang")
    rc, js, err, el = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "hang.dyt"),
                              "--max", "--timeout", "300ms"])
    ok(rc == 3 and js["errors"]["timeout"] == 3 and el < 10 and "3 timeout:" in err,
       "silent target: 3 timeouts within bounds (%.1fs), exit 3" % el, (err, js))
    srv.close()
    # Resets: reset.
    srv = LogServer("reset")
    rc, js, err, el = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "rst.dyt"),
                              "--max"])
    ok(rc == 3 and js["errors"]["reset"] == 3 and "3 reset:" in err,
       "resetting target: 3 resets, exit 3", (err, js))
    srv.close()
    # Garbage: bad_response.
    srv = LogServer("garbage")
    rc, js, err, el = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "bad.dyt"),
                              "--max"])
    ok(rc == 3 and js["errors"]["bad_response"] == 3 and "3 bad_response:" in err,
       "garbage target: 3 bad_response, exit 3", (err, js))
    srv.close()
    # A silent listener that never accepts (backlog full is not reproducible):
    # covered by hang. Slow target under the timeout still answers.
    srv = LogServer("slow:0.2")
    rc, js, err, el = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "slow.dyt"),
                              "--max", "--timeout", "5s"])
    ok(rc == 0 and js["ok"] == 3 and js["latency_ms"]["p50"] >= 150,
       "slow target: ok, latency measured (p50 %.0f ms)" %
       (js["latency_ms"]["p50"] if js else -1), (err, js))
    srv.close()

    # Writes refused without --allow-writes; truncated bodies skipped.
    rows = [(1, 0, "GET", "/r"), (1, 1, "POST", "/w", "-", "payload"),
            (2, 2, "DELETE", "/d"), (3, 3, "PUT", "/t", "-", "cut", "trunc"),
            (3, 4, "PUT", "/n", "-", "short", "nobody"), (4, 5, "OPTIONS", "*")]
    rec = mkrec("writes.dyt", rows)
    srv = LogServer()
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "w1.dyt"),
                             "--max"])
    meths = sorted(e["method"] for e in srv.log)
    ok(rc == 0 and meths == ["GET", "OPTIONS"] and js["counters"]["skipped_writes"] == 4,
       "without --allow-writes only GET/OPTIONS reach the target, 4 skipped", (meths, js))
    srv.log.clear()
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "w2.dyt"),
                             "--max", "--allow-writes"])
    post = [e for e in srv.log if e["method"] == "POST"]
    ok(rc == 0 and js["ok"] == 4 and js["counters"]["skipped_truncated"] == 2 and
       len(post) == 1 and post[0]["body"] == "payload",
       "--allow-writes: POST body re-sent with Content-Length, cut bodies skipped",
       (js, srv.log))
    # Reads after a write not sent (docs/replay.md "Writes"): by path, the
    # written path, what lies under it and its parent collection; by
    # service, every later read; "send" sends them all. A read before the
    # write is never left out.
    rows = [(1, 5, "GET", "/dav/a"), (1, 10, "PUT", "/dav/a", "-", "doc"),
            (1, 20, "GET", "/dav/a?x=1"), (2, 21, "GET", "/dav/"), (2, 22, "GET", "/dav/a/x"),
            (3, 23, "GET", "/dav/b"), (3, 24, "GET", "/other")]
    arec = mkrec("afterw.dyt", rows)
    for mode, want in (("path", ["/dav/a", "/dav/b", "/other"]), ("service", ["/dav/a"]),
                       ("send", ["/dav/", "/dav/a", "/dav/a/x", "/dav/a?x=1", "/dav/b",
                                 "/other"])):
        srv.log.clear()
        rc, js, err, _ = replay([arec, "--target", srv.url(), "-o",
                                 os.path.join(TMP, "aw-%s.dyt" % mode), "--max",
                                 "--after-skipped-writes", mode])
        got = sorted(e["path"] for e in srv.log)
        ok(rc == 0 and got == want and
           js["counters"]["skipped_after_writes"] == 6 - len(want),
           "--after-skipped-writes %s: reads sent %s" % (mode, want), (got, err, js))
    # ... and diff counts the 2 cut requests as incomplete sessions: a gate
    # on incomplete trips, as for a session it compared no response of
    dj = os.path.join(TMP, "w2.json")
    d = subprocess.run([DYETAP, "diff", os.path.join(TMP, "w2.dyt"), "--json", dj,
                        "--fail-on", "incomplete>0"], capture_output=True, text=True)
    summ = json.load(open(dj)).get("summary", {}) if os.path.exists(dj) else {}
    acc = json.load(open(dj)).get("accounting", {}) if os.path.exists(dj) else {}
    ok(d.returncode == 1 and summ.get("incomplete") == 2 and summ.get("compared") == 4 and
       "2 incomplete" in d.stdout and acc.get("requests_cut") == 2 and
       "request cut by the capture, not sent: 2" in d.stdout,
       "diff: the 2 requests the capture cut are incomplete sessions, --fail-on incomplete>0 "
       "trips", (d.returncode, d.stdout[-600:], summ))
    # Response bodies the recorder cut (--max-body) are incomplete too, and
    # the report says so (no session flag does): nginx serving 5 files over
    # 8 bytes and a 304 (tests/golden/nginx-static)
    gold = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden",
                        "nginx-static", "input.pcap")
    crec, cres, cj = (os.path.join(TMP, n) for n in ("cut.dyt", "cut-res.dyt", "cut.json"))
    subprocess.run([DYETAP, "record", "-r", gold, "-w", crec, "--max-body", "8"],
                   capture_output=True, check=True)
    rc, js, err, _ = replay([crec, "--target", srv.url(), "-o", cres, "--max"])
    d = subprocess.run([DYETAP, "diff", cres, "--json", cj], capture_output=True, text=True)
    rep = json.load(open(cj)) if os.path.exists(cj) else {}
    ok(rc == 0 and rep.get("summary", {}).get("incomplete") == 5 and
       rep.get("accounting", {}).get("recorded_truncated") == 5 and
       "recorded body truncated (record --max-body): 5" in d.stdout,
       "diff: 5 responses the recorder cut to --max-body 8 are incomplete, named as such",
       (rc, err, d.stdout[-600:], rep.get("summary")))
    srv.close()

    # Usage and input errors exit 2.
    rc, _, err, _ = replay(["--target", "http://127.0.0.1:1", "-o", "x.dyt"])
    ok(rc == 2, "no input: exit 2", err)
    rc, _, err, _ = replay([os.path.join(TMP, "missing.dyt"), "--target",
                            "http://127.0.0.1:1", "-o", os.path.join(TMP, "x.dyt")])
    ok(rc == 2 and "missing" in err, "missing input: exit 2 with the file named", err)
    rc, _, err, _ = replay([rec, "--target", "ftp://x", "-o", os.path.join(TMP, "x.dyt")])
    ok(rc == 2, "bad target URL: exit 2", err)
    rc, _, err, _ = replay([rec, "--target", "http://127.0.0.1:1", "-o",
                            os.path.join(TMP, "x.dyt"), "--level", "0"])
    ok(rc == 2 and "--level" in err, "--level 0: exit 2 naming the option", err)
    # --diff's options are checked before anything is sent.
    for args, want in ((["--fail-on", "nonsense>1"], "--fail-on"),
                       (["--rules", os.path.join(TMP, "no-such-rules")], "--rules")):
        rc, _, err, el = replay([rec, "--target", "http://127.0.0.1:1", "-o",
                                 os.path.join(TMP, "x.dyt"), "--diff"] + args)
        ok(rc == 2 and want in err and not os.path.exists(os.path.join(TMP, "x.dyt")),
           "--diff %s bad: exit 2 before replaying" % want, err)
    before = open(rec, "rb").read()
    for opt in ("--html", "--report-json", "--junit"):
        rc, _, err, _ = replay([rec, "--target", "http://127.0.0.1:1", "-o",
                                os.path.join(TMP, "x.dyt"), "--diff", opt,
                                os.path.join(TMP, ".", os.path.basename(rec))])
        ok(rc == 2 and opt in err and "also an input" in err and
           open(rec, "rb").read() == before and not os.path.exists(os.path.join(TMP, "x.dyt")),
           "--diff %s naming the recording: exit 2 before replaying, recording intact" % opt,
           err)
    for m in ("", "GET,", "GET,,HEAD", "G T"):
        rc, _, err, _ = replay([rec, "--target", "http://127.0.0.1:1", "-o",
                                os.path.join(TMP, "x.dyt"), "--method", m])
        ok(rc == 2 and "--method" in err, "--method '%s': exit 2 naming the option" % m, err)
    rc, _, err, _ = replay([rec, "--target", "http://127.0.0.1:1", "-o",
                            "/nonexistent-dir/x.dyt"])
    ok(rc == 3, "unwritable output: exit 3", err)


def group_control():
    # Shards partition exactly.
    rows = []
    for c in range(1, 41):
        for i in range(2):
            rows.append((c, c + i, "GET", "/s%d/%d" % (c, i)))
    rec = mkrec("shard.dyt", rows)
    srv = LogServer()
    seen = []
    for k in range(3):
        out = os.path.join(TMP, "shard%d.dyt" % k)
        rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", out, "--max",
                                 "--shard", "%d/3" % k])
        s, _, _, _ = dump(out)
        seen.append([x["id"] for x in s])
        ok(rc == 0 and js["counters"]["skipped_shard"] == 80 - len(s),
           "shard %d/3: %d sessions, others counted as skipped_shard" % (k, len(s)), err)
    allids = sorted(sum(seen, []))
    ok(allids == list(range(1, 81)), "shards 0..2 of 3 partition the 80 sessions exactly",
       allids)
    # Each connection's requests land in one shard.
    ok(all(len(set(v)) == 1 for v in [[k for k in range(3) for x in seen[k]
                                       if (x - 1) // 2 == c] for c in range(40)]),
       "a connection never spans shards")
    # Threads: same results with 2 event loops.
    srv.log.clear()
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "thr.dyt"),
                             "--max", "--threads", "2"])
    ok(rc == 0 and js["ok"] == 80 and len(srv.log) == 80, "--threads 2: 80 ok", (err, js))
    # A faster zstd level for the results: the same records.
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "lvl.dyt"),
                             "--max", "--level", "-5"])
    s_lvl, r_lvl, _, _ = dump(os.path.join(TMP, "lvl.dyt"))
    s_thr, r_thr, _, _ = dump(os.path.join(TMP, "thr.dyt"))
    ok(rc == 0 and js["ok"] == 80 and sorted(x["id"] for x in s_lvl) ==
       sorted(x["id"] for x in s_thr) and len(r_lvl) == 80 and
       all(r["response"]["status"] == 200 for r in r_lvl),
       "--level -5: 80 sessions and results, readable", (err, js and js["ok"]))
    # A concurrency limit below the recorded connections: flows wait for a
    # slot, idle connections are evicted, and a target connection still
    # never mixes two recorded connections.
    srv.log.clear()
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "c3.dyt"),
                             "--max", "-c", "3"])
    mixed = [v for v in srv.by_port().values()
             if len(set(e["path"].split("/")[1] for e in v)) != 1]
    ok(rc == 0 and js["ok"] == 80 and not mixed and js["counters"]["connects"] >= 40,
       "-c 3 with 40 recorded connections: 80 ok, no connection mixes two",
       (err, js and js["counters"], mixed[:2]))
    # Filters.
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "flt.dyt"),
                             "--max", "--path", "/s1*"])
    ok(rc == 0 and js["ok"] == 22 and js["counters"]["skipped_filter"] == 58,
       "--path glob selects 22 of 80", js)
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "lp.dyt"),
                             "--max", "--loop", "2", "--path", "/s2/*"])
    s, r, _, _ = dump(os.path.join(TMP, "lp.dyt"))
    ok(rc == 0 and js["ok"] == 4 and len(set(x["id"] for x in s)) == 4,
       "--loop 2: each pass replayed, session ids unique", (js, [x["id"] for x in s]))
    srv.close()

    # Pacing: 1x vs 2x over a 1.2 s recording (loose bounds).
    rows = [(c, t, "GET", "/p%d" % t) for c, t in ((1, 0), (2, 400), (1, 800), (2, 1200))]
    rec = mkrec("pace.dyt", rows)
    srv = LogServer()
    rc1, js1, err1, el1 = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "p1.dyt")])
    rc2, js2, err2, el2 = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "p2.dyt"),
                                  "--speed", "2x"])
    ok(rc1 == 0 and 1.1 <= el1 < 4.0, "1x takes about the recorded 1.2 s (%.2f s)" % el1, err1)
    ok(rc2 == 0 and 0.55 <= el2 < el1 * 0.8, "2x takes about half (%.2f s)" % el2, err2)
    ok(js1 and js1["lateness_ms"]["p99"] < 100, "lateness measured and small (p99 %.3f ms)" %
       (js1["lateness_ms"]["p99"] if js1 else -1))
    rc3, js3, err3, el3 = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "p3.dyt"),
                                  "--rate", "10"])
    ok(rc3 == 0 and 0.25 <= el3 < 2.0, "--rate 10: 4 requests over ~0.3 s (%.2f s)" % el3, err3)
    # --rate is the total over the threads, however the connections split:
    # one recorded connection (one thread busy) and 20 (all busy).
    for conns in (1, 20):
        rrec = mkrec("rate%d.dyt" % conns, [(1 + i % conns, i, "GET", "/q%d" % i)
                                            for i in range(20)])
        rc, js, err, _ = replay([rrec, "--target", srv.url(), "-o",
                                 os.path.join(TMP, "rt.dyt"), "--rate", "20", "--threads", "4"])
        ok(rc == 0 and js["ok"] == 20 and 0.7 <= js["elapsed_s"] <= 1.6,
           "--rate 20 --threads 4, %d connection(s): 20 requests in %.2f s (~0.95)" %
           (conns, js["elapsed_s"] if js else -1), (err, js and js["achieved_rps"]))
    # Time window: the recording starts at 1764158400 s = 2025-11-26T12:00:00Z.
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "w.dyt"),
                             "--max", "--since", "1764158400.5"])
    ok(rc == 0 and js["ok"] == 2 and js["counters"]["skipped_filter"] == 2,
       "--since (Unix seconds) keeps the last 2", (err, js))
    # Paced, the window starts at its first session (800 ms into the
    # recording), not at the recording's start: the 2 requests take ~0.4 s.
    rc, js, err, el = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "w.dyt"),
                              "--since", "1764158400.5"])
    ok(rc == 0 and js["ok"] == 2 and 0.3 <= js["elapsed_s"] < 0.7 and el < 1.5,
       "--since at 1x: the schedule starts at the first selected session (%.2f s)" %
       (js["elapsed_s"] if js else -1), (err, el))
    rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "w.dyt"),
                             "--max", "--until", "2025-11-26T12:00:00.5Z"])
    ok(rc == 0 and js["ok"] == 2 and js["counters"]["skipped_filter"] == 2,
       "--until (ISO 8601) keeps the first 2", (err, js))
    # On a terminal: a progress line on stderr with an ETA (script gives a pty).
    if shutil.which("script"):
        cmd = "%s replay %s --target %s -o %s --rate 5" % (DYETAP, rec, srv.url(),
                                                          os.path.join(TMP, "tty.dyt"))
        t = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                           text=True, timeout=20)
        lines = [x for x in t.stdout.replace("\r", "\n").splitlines() if "  eta " in x]
        ok(t.returncode == 0 and lines and all("req/s" in x for x in lines) and
           any("eta ?" not in x for x in lines) and "replay done" in t.stdout, "terminal: progress line with rate and ETA",
           t.stdout[-500:])
    else:
        ok(True, "# SKIP script (util-linux) not installed")
    # A recording in completion order (a slow request written after faster
    # ones that started later) is replayed in request-time order, on time.
    # A response recorded without its request (request time 0) in between
    # is skipped and moves neither the start nor the order.
    ooo = mkrec("ooo.dyt", [(1, 1500, "GET", "/late-written"), (2, 0, "GET", "/first"),
                            (4, 100, "GET", "/noreq", "-", "-", "noreq"),
                            (3, 700, "GET", "/second"), (2, 800, "GET", "/first-2")])
    srv.log.clear()
    rc, js, err, el = replay([ooo, "--target", srv.url(), "-o", os.path.join(TMP, "ooo-r.dyt")])
    order = [e["path"] for e in srv.log]
    ok(rc == 0 and order == ["/first", "/second", "/first-2", "/late-written"] and
       js["lateness_ms"]["p99"] < 200 and 1.3 < el < 5 and
       js["counters"]["skipped_unsupported"] == 1,
       "out-of-order recording: sent in request-time order, lateness p99 %.1f ms" %
       (js["lateness_ms"]["p99"] if js else -1), (err, order, js and js["lateness_ms"]))
    rc, js, err, _ = replay([ooo, "--target", srv.url(), "-o", os.path.join(TMP, "ooo-m.dyt"),
                             "--max"])
    sess, _, _, _ = dump(os.path.join(TMP, "ooo-m.dyt"))
    order = [x["request"]["target"] for x in sess]
    ok(rc == 0 and order == ["/first", "/second", "/first-2", "/late-written"],
       "out-of-order recording, --max: queued (and filed) in request-time order", (err, order))
    # Endless loop bounded by --duration.
    rc, js, err, el = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "d.dyt"),
                              "--rate", "40", "--loop", "0", "--duration", "1s"])
    ok(rc == 0 and 30 <= js["sent"] <= 45 and el < 4,
       "--loop 0 --duration 1s --rate 40: about 40 sent (%d), stops" % (js["sent"] if js else -1),
       (err, js))
    # Endless loop where the filters take nothing: one pass, not a busy spin.
    rc, js, err, el = replay([rec, "--target", srv.url(), "-o", os.path.join(TMP, "d0.dyt"),
                              "--max", "--loop", "0", "--method", "PUT", "--allow-writes"],
                             timeout=20)
    ok(rc == 3 and js["sent"] == 0 and js["counters"]["skipped_filter"] == 4 and el < 5 and
       "no request was sent: 4 sessions read, all skipped (filter 4," in err,
       "--loop 0 with nothing passing the filters: one pass (4 skipped), stops in %.1f s, "
       "exit 3 (nothing to compare)" % el, (rc, err, js and js["counters"]["skipped_filter"]))
    # ... and --shard alone leaving a shard empty is no failure
    runs = []
    for k in range(8):
        rc, js, err, el = replay([rec, "--target", srv.url(), "-o",
                                  os.path.join(TMP, "d1-%d.dyt" % k), "--max", "--shard", "%d/8" % k])
        runs.append((rc, js["sent"] if js else -1, js["counters"]["skipped_shard"] if js else -1))
    ok(all(r[0] == 0 for r in runs) and sum(r[1] for r in runs) == 4 and
       any(r[1] == 0 and r[2] == 4 for r in runs),
       "--shard K/8 over 2 connections: every shard exits 0, the empty ones too; 4 sent in all",
       runs)
    # ... and an empty recording is named as such, not as sessions skipped
    empty = mkrec("empty.dyt", [])
    rc, js, err, el = replay([empty, "--target", srv.url(), "-o", os.path.join(TMP, "d2.dyt")])
    ok(rc == 3 and js and js["sent"] == 0 and
       "no request was sent: the recordings hold no session" in err and "all skipped" not in err,
       "an empty recording: exit 3, stderr says it holds no session", (rc, err))
    srv.close()

    # SIGINT: stops cleanly, results so far are readable.
    rows = [(1 + i % 3, i * 100, "GET", "/i%d" % i) for i in range(100)]
    rec = mkrec("int.dyt", rows)
    srv = LogServer()
    out = os.path.join(TMP, "int-res.dyt")
    p = subprocess.Popen([DYETAP, "replay", rec, "--target", srv.url(), "-o", out, "--json",
                          "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        so, se = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        so, se = p.communicate()
    el = time.monotonic() - t0
    js = json.loads(so) if p.returncode == 0 and so else None
    ok(p.returncode == 0 and el < 3 and js and js["interrupted"],
       "SIGINT: exits 0 within %.1f s, summary says interrupted" % el, se)
    s, r, st, drc = dump(out)
    ok(drc == 0 and st["has_index"] and 3 <= len(r) < 100 and len(r) == js["sent"],
       "SIGINT: results file complete and readable (%d results)" % len(r), st)

    # The output is an input under another name: refused before the
    # recording is truncated.
    before = open(rec, "rb").read()
    link = os.path.join(TMP, "int-link.dyt")
    os.symlink(rec, link)
    for other in (os.path.join(TMP, ".", "int.dyt"), link):
        rc, js, err, _ = replay([rec, "--target", srv.url(), "-o", other, "--max"])
        ok(rc == 2 and "also an input" in err and open(rec, "rb").read() == before,
           "-o %s (the input by another name): exit 2, recording intact" %
           os.path.basename(other), (rc, err))

    # Reading the inputs before the first send (the guard and the count, one
    # pass) shows its own progress line on a terminal, and Ctrl-C there stops
    # with 130, nothing sent and no results file. Four copies of a 300k-session
    # recording keep that pass long enough to interrupt it.
    big = os.path.join(TMP, "big.dyt")
    subprocess.run([TOOL, "mkrec", big], check=True, text=True, input="".join(
        "%d\t%d\tGET\t/b%d\t-\t-\t-\t-\n" % (1 + i % 100, i, i) for i in range(300000)))
    out = os.path.join(TMP, "scan-res.dyt")
    srv.log.clear()
    mfd, sfd = os.openpty()
    p = subprocess.Popen([DYETAP, "replay", big, big, big, big, "--target", srv.url(),
                          "-o", out, "--max"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=sfd)
    os.close(sfd)
    seen, deadline = b"", time.monotonic() + 60
    while b"reading the recordings: " not in seen and time.monotonic() < deadline:
        try:
            chunk = os.read(mfd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    scanning = b"reading the recordings: " in seen
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    try:
        while True:
            chunk = os.read(mfd, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    os.close(mfd)
    text = seen.decode(errors="replace").replace("\r", "\n")
    counts = [int(n) for n in re.findall(r"reading the recordings: (\d+) sessions", text)]
    ok(scanning and counts and counts[0] > 0 and counts == sorted(counts),
       "terminal: 'reading the recordings: N sessions' while the inputs are read (%s)" %
       counts[:3], text[-300:])
    ok(p.returncode == 130 and not os.path.exists(out) and not srv.log and
       "nothing was sent" in text,
       "Ctrl-C while reading the inputs: exit 130, nothing sent, no results file",
       (p.returncode, os.path.exists(out), len(srv.log), text[-300:]))
    srv.close()


{"fidelity": group_fidelity, "failures": group_failures, "control": group_control,
 "tls": group_tls, "record": group_record}[GROUP]()
shutil.rmtree(TMP, ignore_errors=True)
sys.exit(finish())
