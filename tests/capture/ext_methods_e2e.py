#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Extension methods are recorded and replayed as sent (RFC 9110 section 9.1).

The golden capture tests/golden/ext-methods (curl sending CCM_POST,
PROPFIND, X-MS-ENUMATTS, BREW, GET and the lowercase token `get` to nginx
on one keep-alive connection) is recorded by `dyetap record` and replayed
with `dyetap replay --allow-writes` to a Python HTTP/1.1 server on
127.0.0.1 that logs the request line and body it receives; the server must
receive every method exactly as curl sent it, in order, with CCM_POST's
8-byte body, and the replay must count no request as skipped.

Usage: ext_methods_e2e.py DYETAP CASE_DIR
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import tests.tap_util as tap  # noqa: E402

SENT = [("CCM_POST", "/a.txt", b"ccm body"), ("PROPFIND", "/dir/", b""),
        ("X-MS-ENUMATTS", "/a.txt", b""), ("BREW", "/b.json", b""), ("GET", "/a.txt", b""),
        ("get", "/a.txt", b"")]


class Logger(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log = []
    lock = threading.Lock()

    def __getattr__(self, name):
        if name.startswith("do_"):  # any method the request names
            return self._any
        raise AttributeError(name)

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with self.lock:
            self.log.append((self.command, self.path, body))
        out = b"seen\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


def main():
    dyetap, case = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as d:
        rec = os.path.join(d, "rec.dyt")
        p = subprocess.run([dyetap, "record", "-r", os.path.join(case, "input.pcap"), "-w", rec],
                           capture_output=True, text=True)
        tap.ok(p.returncode == 0, "record the ext-methods capture", p.stderr)
        lines = subprocess.run([dyetap, "cat", "--json", rec], capture_output=True,
                               text=True).stdout.splitlines()
        got = [(s["request"]["method"], s["request"]["target"], s["flags"])
               for s in map(json.loads, lines)]
        tap.ok(got == [(m, t, []) for m, t, _ in SENT],
               "every method recorded as sent, none flagged", got)
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Logger)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d" % srv.server_address[1]
        out = os.path.join(d, "res.dyt")
        p = subprocess.run([dyetap, "replay", rec, "--target", url, "--allow-writes", "--max",
                            "-o", out, "--json"], capture_output=True, text=True, timeout=60)
        tap.ok(p.returncode == 0, "replay with --allow-writes", p.stderr)
        try:
            st = json.loads(p.stdout)
        except ValueError:
            st = {}
        skipped = {k: v for k, v in st.items() if "skipped" in k and v}
        tap.ok(not skipped, "replay skipped nothing", skipped)
        srv.shutdown()
        tap.ok(Logger.log == SENT, "the server received every method, target and body as sent",
               Logger.log)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
