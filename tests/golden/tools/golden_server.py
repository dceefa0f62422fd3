#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/1.1 origin server used by tests/golden/make-golden.sh to produce real traffic.

Built on the standard library's http.server (ThreadingHTTPServer +
SimpleHTTPRequestHandler), with protocol_version HTTP/1.1 so connections stay
open between requests (keep-alive) and Expect: 100-continue is answered.
Extra paths on top of the static files under --root:

  GET  /chunked    Transfer-Encoding: chunked, 4 chunks and a trailer field
  POST /echo       reads the Content-Length body, answers "received N bytes"
  GET  /nolength   HTTP/1.0 style answer: no Content-Length, body ends at close

Usage: golden_server.py --port P [--host 127.0.0.1] --root DIR
Prints "ready" on stdout once listening. Stops on SIGTERM/SIGINT.
References: RFC 9112 section 6 (message body length), section 7.1 (chunked),
Python http.server documentation.
"""
import argparse
import http.server
import signal
import socket
import sys

CHUNKS = [b"first chunk of the body\n", b"x" * 1000 + b"\n", b"third\n", b"y" * 4096]


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("golden_server: " + (fmt % args) + "\n")

    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Chunk-Count")
            self.end_headers()
            for c in CHUNKS:
                self.wfile.write(b"%x\r\n" % len(c) + c + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Chunk-Count: %d\r\n\r\n" % len(CHUNKS))
            return
        if self.path == "/nolength":
            body = b"this body is delimited by the connection close\n" * 20
            self.close_connection = True
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            self.wfile.flush()
            self.wfile.write(body)
            return
        super().do_GET()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        left = n
        while left > 0:
            got = self.rfile.read(min(left, 65536))
            if not got:
                break
            left -= len(got)
        body = b"received %d bytes\n" % (n - left)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    a = ap.parse_args()

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in a.host else socket.AF_INET

    def handler(*args, **kw):
        return Handler(*args, directory=a.root, **kw)

    srv = Server((a.host, a.port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        srv.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
