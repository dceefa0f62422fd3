#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Traffic for the koa upgrade case (README.md beside this file): every
endpoint of app.js three times, spread over three keep-alive connections.
The app keeps no state, so order between connections does not matter.
Usage: client.py --port PORT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from traffic import main, step  # noqa: E402

REQUESTS = [
    ("GET", "/api/health", None, {}),
    ("GET", "/api/notes", None, {}),
    ("GET", "/api/notes/1", None, {}),
    ("GET", "/api/notes/9", None, {}),
    ("GET", "/api/search?q=milk&tag=a&tag=b", None, {}),
    ("GET", "/api/search?q=caf%E9&page=", None, {}),
    ("GET", "/api/search?__proto__=admin&q=1", None, {}),
    ("GET", "/api/draft", None, {}),
    ("GET", "/api/cancel", None, {"Referer": "http://127.0.0.1/notes/board"}),
    ("GET", "/api/moved", None, {}),
    ("GET", "/api/nope", None, {}),
]
CONNS = ("a", "b", "c")
plan = [step(CONNS[(i + rnd) % 3], m, t, b, h)
        for rnd in range(3) for i, (m, t, b, h) in enumerate(REQUESTS)]

if __name__ == "__main__":
    sys.exit(main(plan))
