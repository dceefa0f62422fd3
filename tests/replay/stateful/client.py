#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Client traffic with writes against json-server (tests/replay/stateful).

Usage: client.py PORT [WORKERS] [OPS]

WORKERS threads (default 4), each on its own keep-alive connection
(http.client), make OPS requests (default 24) with 1-8 ms pauses; then
one more phase that makes a race certain when replaying without causal
order. Random choices come from fixed seeds, so the requests are the same
on every run; only their timing differs.

Requests that touch shared state (creating and deleting items, listing
them, the shared counter) hold a lock exclusively; requests on a worker's
own item hold it shared, so they overlap with other workers' own-item
requests. The lock is released only after the whole response was read:
every request whose result depends on an earlier one started after that
earlier one's response ended, which is the happens-before that
`dyetap replay --order causal` takes from the capture. Requests that
overlap touch different items, so their order does not matter.

Last phase: worker 0's connection sets the counter with PATCH, then two
connections opened only afterwards read the counter and the item list as
their first request. Replayed at --max without causal order, those two
reads go out at once, before the PATCH (worker 0's connection has its
whole history to send first), and read the old state.
Prints the number of requests made.
"""
import http.client
import json
import random
import sys
import threading
import time

PORT = int(sys.argv[1])
WORKERS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
OPS = int(sys.argv[3]) if len(sys.argv) > 3 else 24


class RWLock:
    def __init__(self):
        self.cv = threading.Condition()
        self.readers = 0
        self.writer = False

    def shared(self):
        with self.cv:
            while self.writer:
                self.cv.wait()
            self.readers += 1

    def unshare(self):
        with self.cv:
            self.readers -= 1
            self.cv.notify_all()

    def exclusive(self):
        with self.cv:
            while self.writer or self.readers:
                self.cv.wait()
            self.writer = True

    def unexclusive(self):
        with self.cv:
            self.writer = False
            self.cv.notify_all()


LOCK = RWLock()
COUNT = [0]
COUNT_LOCK = threading.Lock()


def call(conn, method, path, body=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body, sort_keys=True).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    out = r.read()
    with COUNT_LOCK:
        COUNT[0] += 1
    if r.status >= 400:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, out[:200]))
    return json.loads(out) if out else None


def excl(conn, method, path, body=None):
    LOCK.exclusive()
    try:
        return call(conn, method, path, body)
    finally:
        LOCK.unexclusive()


def shared(conn, method, path, body=None):
    LOCK.shared()
    try:
        return call(conn, method, path, body)
    finally:
        LOCK.unshare()


def worker(w, conns):
    rnd = random.Random(1000 + w)
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    conns[w] = conn
    own = excl(conn, "POST", "/items", {"name": "w%d-own" % w, "qty": 0, "owner": w})["id"]
    extra = []
    for i in range(OPS):
        time.sleep(rnd.uniform(0.001, 0.008))
        op = rnd.choice(["get", "get", "patch", "put", "note", "list", "post", "delete",
                         "count"])
        if op == "get":
            shared(conn, "GET", "/items/%d" % own)
        elif op == "patch":
            shared(conn, "PATCH", "/items/%d" % own, {"qty": rnd.randint(1, 99)})
        elif op == "put":
            shared(conn, "PUT", "/items/%d" % own,
                   {"name": "w%d-own-%d" % (w, i), "qty": rnd.randint(1, 99), "owner": w})
        elif op == "note":
            shared(conn, "GET", "/notes/%d" % rnd.randint(1, 4))
        elif op == "list":
            excl(conn, "GET", "/items?owner=%d" % rnd.choice([w, -1]))
        elif op == "post":
            extra.append(excl(conn, "POST", "/items",
                              {"name": "w%d-%d" % (w, i), "qty": i, "owner": w})["id"])
        elif op == "delete" and extra:
            excl(conn, "DELETE", "/items/%d" % extra.pop(0))
        else:
            LOCK.exclusive()  # read-modify-write of the shared counter
            try:
                v = call(conn, "GET", "/counters/1")["value"]
                call(conn, "PATCH", "/counters/1", {"value": v + 1})
            finally:
                LOCK.unexclusive()


def main():
    conns = [None] * WORKERS
    ts = [threading.Thread(target=worker, args=(w, conns)) for w in range(WORKERS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    # The race: a write on an old connection, then reads on new ones.
    time.sleep(0.005)
    call(conns[0], "PATCH", "/counters/1", {"value": 1000})
    time.sleep(0.005)
    late = [http.client.HTTPConnection("127.0.0.1", PORT, timeout=10) for _ in range(2)]
    call(late[0], "GET", "/counters/1")
    time.sleep(0.002)
    call(late[1], "GET", "/items")
    for c in conns + late:
        c.close()
    print(COUNT[0])


if __name__ == "__main__":
    main()
