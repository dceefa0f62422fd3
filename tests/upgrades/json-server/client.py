#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Traffic for the json-server upgrade case (README.md beside this file).

Three keep-alive connections. Connection "state" does every request whose
answer depends on writes (the /posts collection, POST, PATCH, PUT, DELETE)
in a fixed order, so a replay gives every server the same history whatever
the timing between connections. Connections "r1" and "r2" only read
resources that no request writes (comments, profile, posts 1 and 2); /db
and `_expand=post` include written posts, so they go on "state" too.
Usage: client.py --port PORT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from traffic import main, step  # noqa: E402

S = "state"
plan = [
    # Reads of the collection, as documented for 0.17.
    step(S, "GET", "/posts"),
    step(S, "GET", "/posts?_sort=views&_order=desc"),
    step(S, "GET", "/posts?_page=1&_limit=3"),
    step(S, "GET", "/posts?_page=1&_per_page=3"),
    step(S, "GET", "/posts?_start=1&_end=3"),
    step(S, "GET", "/posts?title_like=server"),
    step(S, "GET", "/posts?q=search"),
    step(S, "GET", "/posts?views_gte=100"),
    step(S, "GET", "/posts?author=alice"),
    step(S, "GET", "/posts?_embed=comments"),
    step(S, "GET", "/comments?_expand=post"),
    step(S, "GET", "/db"),
]
for rnd in range(3):
    plan += [
        step("r1", "GET", "/profile"),
        step("r2", "GET", "/posts/1"),
        step("r1", "GET", "/comments"),
        step("r2", "GET", "/comments/2"),
        step("r1", "GET", "/posts/2?_embed=comments"),
        step("r2", "GET", "/comments?postId=1"),
        step("r1", "GET", "/posts/1/comments"),
        step("r2", "GET", "/posts/404"),
    ]
plan += [
    # Writes, each followed by a read of what it wrote.
    step(S, "POST", "/posts", {"title": "a new post", "author": "frank", "views": 0}),
    step(S, "GET", "/posts/9"),
    step(S, "PATCH", "/posts/3", {"views": 301}),
    step(S, "GET", "/posts/3"),
    step(S, "PUT", "/posts/4", {"title": "full-text search, revised", "author": "alice", "views": 80}),
    step(S, "GET", "/posts/4"),
    step(S, "DELETE", "/posts/5"),
    step(S, "GET", "/posts/5"),
    step(S, "GET", "/posts?views_gte=100"),
    step(S, "GET", "/comments?_expand=post"),
    step(S, "GET", "/db"),
]

if __name__ == "__main__":
    sys.exit(main(plan))
