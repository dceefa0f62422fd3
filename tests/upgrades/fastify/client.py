#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Traffic for the fastify upgrade case (README.md beside this file): every
endpoint of app.js three times, spread over three keep-alive connections.
The app keeps no state, so order between connections does not matter.
Usage: client.py --port PORT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from traffic import main, step  # noqa: E402

JSON = {"Content-Type": "application/json"}
REQUESTS = [
    ("GET", "/api/health", None, {}),
    ("GET", "/api/items", None, {}),
    ("GET", "/api/items/2", None, {}),
    ("GET", "/api/items/9", None, {}),
    ("POST", "/api/items", {"name": "pin", "qty": 5}, {}),
    ("GET", "/api/search;lang=en", None, {}),
    ("GET", "/api/search?q=bolt", None, {}),
    ("GET", "/api/route-info", None, {}),
    ("GET", "/api/whoami", None, {}),
    ("GET", "/api/client", None, {}),
    ("GET", "/api/timing", None, {}),
    ("GET", "/api/old-items", None, {}),
    # A client that always sends its JSON content type, even without a body
    # (and without Content-Length: with "Content-Length: 0" 4.x refuses it too).
    ("DELETE", "/api/items/3", None, JSON),
    ("GET", "/api/nope", None, {}),
]
CONNS = ("a", "b", "c")
plan = [step(CONNS[(i + rnd) % 3], m, t, b, h)
        for rnd in range(3) for i, (m, t, b, h) in enumerate(REQUESTS)]

if __name__ == "__main__":
    sys.exit(main(plan))
