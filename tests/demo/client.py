#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Drives the demo shop with realistic keep-alive traffic.

Opens several persistent HTTP/1.1 connections (http.client, like a real
client library) and sends a deterministic mix of requests; about half carry
the lane header `x-lane: blue` (colored), the rest are uncolored. Prints one
summary line. Loopback only.

Usage: client.py --port PORT [--connections 4] [--requests 60]
"""
import argparse
import http.client
import random
import sys


def paths(rng, n):
    out = []
    for i in range(n):
        k = rng.randrange(7)
        if k == 0:
            out.append(("GET", f"/api/users/{rng.randrange(1, 60)}"))
        elif k == 1:
            out.append(("GET", f"/api/orders/{rng.randrange(1, 40)}"))
        elif k == 2:
            out.append(("GET", "/api/search?q=" + rng.choice(["product", "Product%203", "x", "duct"])))
        elif k == 3:
            out.append(("GET", "/api/products"))
        elif k == 4:
            out.append(("GET", "/api/report.txt"))
        elif k == 5:
            out.append(("GET", "/health"))
        else:
            out.append(("HEAD", f"/api/users/{rng.randrange(1, 60)}"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--requests", type=int, default=60, help="per connection")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    ok = colored = 0
    for c in range(a.connections):
        conn = http.client.HTTPConnection(a.host, a.port, timeout=10)
        for method, path in paths(rng, a.requests):
            hdrs = {"User-Agent": "demo-client/1.0", "Accept": "application/json"}
            if rng.random() < 0.5:
                hdrs["x-lane"] = "blue"
                colored += 1
            if rng.random() < 0.3:
                hdrs["x-user-id"] = str(rng.randrange(1000))
            conn.request(method, path, headers=hdrs)
            resp = conn.getresponse()
            resp.read()
            ok += 1
        conn.close()
    print(f"client: {ok} requests on {a.connections} connections, {colored} colored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
