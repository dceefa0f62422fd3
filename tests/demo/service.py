#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Demo shop service for dyetap, in two builds: baseline and candidate.

The demo and the end-to-end tests start it on loopback. Both builds answer
the same API; the candidate carries planted behavior changes, and both add
noise (a request id, timestamps, a Date header) that a good diff must not
report as a change.

Planted changes in the candidate (each must be reported by `dyetap diff`):
  1. GET /api/users/{id}      body:$.nickname           extra key
  2. GET /api/orders/{id}     body:$.total              number -> string
  3. GET /api/search?q=...    status                    500 when q has a digit
  4. GET /api/products        header:cache-control      max-age=60 -> no-store
  5. GET /api/report.txt      body:text                 one line changed
  6. GET /api/orders/{id}     body:$.items[*].qty       value change for odd ids (element 1)

Noise in both builds: $.request_id (uuid4), $.served_at (timestamp),
X-Request-Id header, Date header, and on /api/report.txt a "generated:" line.

Usage: service.py --build baseline|candidate --port PORT [--host 127.0.0.1]
       [--log FILE]   (one JSON line per request: conn, method, path, headers)
       [--allow-any-host]  (bind another address: network-namespace tests only)
"""
import argparse
import datetime
import json
import random
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BUILD = "baseline"
LOG = None
LOG_LOCK = threading.Lock()

USERS = {i: {"id": i, "name": f"user{i}", "email": f"user{i}@example.test",
             "plan": "pro" if i % 3 == 0 else "free"} for i in range(1, 101)}
PRODUCTS = [{"sku": f"SKU-{n:04d}", "name": f"Product {n}", "price": round(3.5 * n, 2)}
            for n in range(1, 11)]


def order(oid):
    items = [{"sku": p["sku"], "qty": 1 + (oid + k) % 3, "price": p["price"]}
             for k, p in enumerate(PRODUCTS[oid % 5: oid % 5 + 3])]
    if BUILD == "candidate" and oid % 2 == 1:
        items[1]["qty"] += 1                       # planted change 6
    total = round(sum(i["qty"] * i["price"] for i in items), 2)
    return {"id": oid, "status": "shipped" if oid % 4 else "pending", "items": items,
            "total": f"{total:.2f}" if BUILD == "candidate" else total}  # change 2


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-shop/1.0"
    # One write per response: headers and body in separate small writes
    # meet Nagle's algorithm and the client's delayed ACK (40 ms stalls).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # keep the terminal quiet
        pass

    def _log(self):
        if LOG is None:
            return
        rec = {"conn": self.client_address[1], "method": self.command, "path": self.path,
               "headers": [[k, v] for k, v in self.headers.items()]}
        with LOG_LOCK:
            LOG.write(json.dumps(rec) + "\n")
            LOG.flush()

    def _send(self, status, body, ctype="application/json", extra=None):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-Id", str(uuid.uuid4()))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status, obj, extra=None):
        obj = dict(obj)
        obj["request_id"] = str(uuid.uuid4())
        obj["served_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self._send(status, json.dumps(obj), extra=extra)

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self._log()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return self._json(400, {"error": "bad json"})
        self._json(201, {"created": True, "echo": doc})

    def do_GET(self):
        self._log()
        u = urlsplit(self.path)
        parts = [p for p in u.path.split("/") if p]
        if u.path == "/health":
            return self._send(200, "ok\n", "text/plain")
        if parts[:2] == ["api", "users"] and len(parts) == 3 and parts[2].isdigit():
            user = USERS.get(int(parts[2]))
            if not user:
                return self._json(404, {"error": "no such user"})
            user = dict(user)
            if BUILD == "candidate":
                user["nickname"] = user["name"].upper()    # planted change 1
            return self._json(200, user)
        if parts[:2] == ["api", "orders"] and len(parts) == 3 and parts[2].isdigit():
            return self._json(200, order(int(parts[2])))
        if u.path == "/api/search":
            q = parse_qs(u.query).get("q", [""])[0]
            if BUILD == "candidate" and any(c.isdigit() for c in q):
                return self._json(500, {"error": "search backend failed"})  # change 3
            hits = [p for p in PRODUCTS if q.lower() in p["name"].lower()]
            return self._json(200, {"q": q, "hits": hits})
        if u.path == "/api/products":
            cc = "no-store" if BUILD == "candidate" else "max-age=60"       # change 4
            return self._json(200, {"products": PRODUCTS}, extra={"Cache-Control": cc})
        if u.path == "/api/report.txt":
            lines = ["daily report", f"generated: {datetime.datetime.now().isoformat()}",
                     "orders: 42", "refunds: 3" if BUILD == "baseline" else "refunds: 4",
                     "end"]                                               # change 5
            return self._send(200, "\n".join(lines) + "\n", "text/plain")
        self._json(404, {"error": "not found"})


def main():
    global BUILD, LOG
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", choices=["baseline", "candidate"], required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log")
    ap.add_argument("--allow-any-host", action="store_true",
                    help="bind a non-loopback address (only inside a test's own "
                         "network namespace)")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "::1", "localhost") and not a.allow_any_host:
        sys.exit("demo service listens on loopback only")
    BUILD = a.build
    if a.log:
        LOG = open(a.log, "a", encoding="utf-8")
    random.seed(1)
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    print(f"demo-shop {BUILD} on http://{a.host}:{a.port}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
