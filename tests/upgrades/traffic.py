# SPDX-License-Identifier: MIT
"""The client side of the upgrade corpus: drives a fixed request plan at a
server on 127.0.0.1 with Python's http.client over a few keep-alive
connections.

A plan is a list of steps (connection, method, target, body, headers).
Steps run one after the other, in plan order, each on its own persistent
connection (opened at its first use, kept alive until the end), so the
traffic is the same on every run: same requests, same connections, same
order. A short pause between steps keeps the capture's timestamps in plan
order. Each case's client.py builds its plan and calls main(plan).
"""
import argparse
import http.client
import json
import sys
import time


def step(conn, method, target, body=None, headers=None):
    """One request of a plan. @body: a dict/list (sent as JSON), bytes or str."""
    return (conn, method, target, body, dict(headers or {}))


def run(plan, port, pause=0.005, verbose=False):
    """Sends @plan to 127.0.0.1:@port; returns the list of statuses."""
    conns = {}
    statuses = []
    try:
        for conn, method, target, body, headers in plan:
            c = conns.get(conn)
            if c is None:
                c = conns[conn] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            data = None
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                headers.setdefault("Content-Type", "application/json")
            elif isinstance(body, str):
                data = body.encode()
            elif body is not None:
                data = body
            c.request(method, target, body=data, headers=headers)
            r = c.getresponse()
            payload = r.read()
            statuses.append(r.status)
            if verbose:
                print(f"{conn} {method} {target} -> {r.status} {len(payload)} bytes")
            if r.will_close:
                c.close()
                del conns[conn]
            time.sleep(pause)
    finally:
        for c in conns.values():
            c.close()
    return statuses


def main(plan):
    ap = argparse.ArgumentParser(description="send the case's request plan to 127.0.0.1:PORT")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--list", action="store_true", help="print the plan and exit")
    a = ap.parse_args()
    if a.list:
        for conn, method, target, body, _ in plan:
            print(conn, method, target, json.dumps(body) if body is not None else "")
        return 0
    run(plan, a.port, verbose=a.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main([]))
