#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Traffic for the express upgrade case (README.md beside this file): every
endpoint of app.js three times, spread over three keep-alive connections.
The app keeps no state, so order between connections does not matter.
Usage: client.py --port PORT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from traffic import main, step  # noqa: E402

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
REQUESTS = [
    ("GET", "/api/health", None, {}),
    ("GET", "/api/items", None, {}),
    ("GET", "/api/items/2", None, {}),
    ("GET", "/api/items/9", None, {}),
    ("GET", "/api/search?filter[tag]=news&page=2", None, {}),
    ("GET", "/api/search?q=tea&page=1", None, {}),
    ("POST", "/api/forms", "address[city]=Lyon&qty=2", FORM),
    ("POST", "/api/forms", "name=tea&qty=2", FORM),
    ("GET", "/api/echo", None, {}),
    ("GET", "/api/whoami", None, {}),
    ("POST", "/api/items", {"name": "juice", "price": 3}, {}),
    ("GET", "/api/ping", None, {}),
    ("GET", "/api/lookup?name=tea", None, {}),
    ("GET", "/api/cancel", None, {"Referer": "http://127.0.0.1/shop/cart"}),
    ("GET", "/api/old-items", None, {}),
    ("GET", "/files/docs/readme.txt", None, {}),
    ("GET", "/static/app.js", None, {}),
    ("GET", "/static/style.css", None, {}),
    ("GET", "/static/.well-known/security.txt", None, {}),
    ("GET", "/nope", None, {}),
]
CONNS = ("a", "b", "c")
plan = [step(CONNS[(i + rnd) % 3], m, t, b, h)
        for rnd in range(3) for i, (m, t, b, h) in enumerate(REQUESTS)]

if __name__ == "__main__":
    sys.exit(main(plan))
