#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile files (docs/replay.md "Unsafe requests", docs/format.md "Work
limits"), made by tests/harden/gen_hostile_dyt.c.

usage: hostile_e2e.py DYETAP GEN_HOSTILE_DYT SOURCE_ROOT GROUP      (TAP output)

replay  `dyetap replay` to a raw TCP server on 127.0.0.1 that keeps every
        byte it receives: a target holding CR LF and a second request line,
        a NUL in a header value and a blank before a colon are never sent
        (skipped_unsafe 3, the server sees only the clean request, no
        DELETE), also with --allow-writes; a recorded "Content-Length : 5"
        goes out as one "Content-Length: 5".
store   `dyetap info` on a decompression bomb (frames of 64 MiB of empty
        maps at ~30000x) and a record bomb (frames just under the ratio
        cap, a million one-byte records each): the work is bounded by the
        counts `info --json` reports (bytes decompressed <= the ratio cap
        times the bytes read, records decoded <= the record cap), the limits
        are named, and raising them with the options and the environment
        reads further. Timestamps -5e18 and +5e18 ns in one file: `info`
        and `diff` compute their spans without overflow (UBSan is silent).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

DYETAP, GEN, ROOT, GROUP = sys.argv[1:5]
sys.path.insert(0, os.path.join(ROOT, "tests"))
from tap_util import LoopbackServer, finish, ok  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dyetap-hostile-")


def path(name):
    return os.path.join(TMP, name)


def gen(*args):
    subprocess.run([GEN] + list(args), check=True)


class RawServer(LoopbackServer):
    """Every byte received, kept; a 200 with "ok" for each request head
    (and its Content-Length body) on keep-alive connections."""

    def __init__(self):
        self.received = b""
        self.heads = []
        super().__init__()

    def serve(self, c, _n):
        buf = b""
        with c:
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                with self.lock:
                    self.received += d
                buf += d
                while b"\r\n\r\n" in buf:
                    head, rest = buf.split(b"\r\n\r\n", 1)
                    n = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            n = int(v.strip() or b"0")
                    if len(rest) < n:
                        break
                    buf = rest[n:]
                    with self.lock:
                        self.heads.append(head)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self):
        self.sock.close()


def replay(rec, srv, *extra):
    r = subprocess.run([DYETAP, "replay", rec, "--target", "http://127.0.0.1:%d" % srv.port,
                        "-o", path("out.dyt"), "--json", "-q"] + list(extra),
                       capture_output=True, text=True, timeout=60)
    try:
        js = json.loads(r.stdout)
    except ValueError:
        js = {}
    return r, js.get("counters", {})


def group_replay():
    gen("split", path("split.dyt"))
    for extra in ([], ["--allow-writes"]):
        srv = RawServer()
        r, c = replay(path("split.dyt"), srv, *extra)
        srv.close()
        ok(r.returncode == 0 and c.get("skipped_unsafe") == 3 and c.get("sent") == 1 and
           c.get("ok") == 1,
           "%s: CR LF target, NUL value, blank before a colon skipped_unsafe 3; the clean "
           "GET sent" % (" ".join(extra) or "defaults"), (r.stderr, c))
        ok(len(srv.heads) == 1 and srv.heads[0].startswith(b"GET /ok HTTP/1.1\r\n") and
           b"DELETE" not in srv.received and b"\0" not in srv.received and
           b"X-Note" not in srv.received,
           "the server received only 'GET /ok', no DELETE, no NUL (%d bytes)"
           % len(srv.received), srv.received[:400])
    r = subprocess.run([DYETAP, "replay", path("split.dyt"), "--target",
                        "http://127.0.0.1:9", "-o", path("o.dyt"), "-q"],
                       capture_output=True, text=True, timeout=60)
    ok("unsafe 3" in r.stdout, "the summary line names the unsafe skips", r.stdout)

    gen("framing", path("framing.dyt"))
    srv = RawServer()
    r, c = replay(path("framing.dyt"), srv, "--allow-writes")
    srv.close()
    lens = [[ln for ln in h.split(b"\r\n")[1:] if b"content-length" in ln.lower()]
            for h in srv.heads]
    ok(r.returncode == 0 and c.get("ok") == 2 and c.get("skipped_unsafe") == 0 and
       lens == [[b"Content-Length: 5"], [b"Content-Length: 5"]],
       "'Content-Length : 5' (alone, and beside 'content-length: 5') goes out as one "
       "'Content-Length: 5'", (lens, c, r.stderr))
    ok(srv.received.count(b"hello") == 2 and b"Content-Length :" not in srv.received,
       "both bodies sent once, the spaced spelling never", srv.received[:300])


def info(p, *extra, env=None):
    r = subprocess.run([DYETAP, "info", p, "--json"] + list(extra), capture_output=True,
                       text=True, timeout=120, env=env)
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        return r, {}


def group_store():
    # A decompression bomb: 20 frames of 64 MiB of empty maps.
    gen("bomb", path("bomb.dyt"), "20", "64")
    size = os.path.getsize(path("bomb.dyt"))
    r, j = info(path("bomb.dyt"))
    ok(r.returncode == 0 and j.get("frames_over_ratio") == 20 and j.get("sessions") == 1 and
       j.get("state") == "damaged",
       "20 frames of 64 MiB in a %d-byte file: refused by the ratio cap, the clean session "
       "read" % size, (r.stderr, {k: j.get(k) for k in ("frames_over_ratio", "sessions")}))
    ok(j.get("raw_bytes", 1 << 40) <= 4096 * size and j.get("skipped_records") == 0,
       "work bound: %d bytes decompressed <= 4096 x the file" % j.get("raw_bytes", -1))
    ok("--max-frame-ratio" in r.stderr, "the warning names the option to raise", r.stderr)

    # Raised: a small bomb then decompresses, and meets the record cap.
    gen("bomb", path("small.dyt"), "2", "4")
    r, j = info(path("small.dyt"), "--max-frame-ratio", "none")
    ok(r.returncode == 0 and j.get("frames_over_ratio") == 0 and j.get("record_cap_hit") and
       j.get("skipped_records") + j.get("sessions") == j.get("max_records") == 1000000,
       "--max-frame-ratio none: the frames are read, up to the record cap (1000000)",
       (r.stderr, {k: j.get(k) for k in ("skipped_records", "max_records", "frames")}))
    ok("--max-records" in r.stderr, "the warning names --max-records", r.stderr)
    env = dict(os.environ, DYETAP_MAX_FRAME_RATIO="none", DYETAP_MAX_RECORDS="none")
    r, j = info(path("small.dyt"), env=env)
    ok(r.returncode == 0 and j.get("skipped_records") == 8 << 20 and
       not j.get("record_cap_hit") and j.get("state") == "unfinished",
       "both limits off through the environment: all 8 Mi records walked",
       (r.stderr, {k: j.get(k) for k in ("skipped_records", "state")}))
    r = subprocess.run([DYETAP, "info", path("small.dyt"), "--max-records", "0"],
                       capture_output=True, text=True)
    ok(r.returncode == 2 and "--max-records" in r.stderr, "--max-records 0 is a usage error",
       r.stderr)

    # A record bomb under the ratio cap: a million one-byte records a frame.
    gen("records", path("records.dyt"), "20")
    size = os.path.getsize(path("records.dyt"))
    r, j = info(path("records.dyt"))
    walked = j.get("skipped_records", 1 << 40) + j.get("sessions", 0)
    ok(r.returncode == 0 and j.get("frames_over_ratio") == 0 and j.get("record_cap_hit") and
       walked == j.get("max_records") == max(1000000, size),
       "20 Mi one-byte records in %d bytes: read up to the record cap (%d)" % (size, walked),
       (r.stderr, j.get("max_records"), j.get("frames")))
    r2 = subprocess.run([DYETAP, "cat", path("records.dyt"), "--json"], capture_output=True,
                        text=True, timeout=120)
    ok(r2.returncode == 0 and len(r2.stdout.splitlines()) == 1 and
       "record cap" in r2.stderr, "cat reads the same way and says why it stopped", r2.stderr)


def group_extreme():
    gen("extreme", path("extreme.dyt"))
    r = subprocess.run([DYETAP, "info", path("extreme.dyt")], capture_output=True, text=True)
    ok(r.returncode == 0 and "runtime error" not in r.stderr and "time span:" in r.stdout,
       "info: a time span of 1e19 ns without overflow", r.stderr)
    r = subprocess.run([DYETAP, "diff", path("extreme.dyt"), "--json", path("d.json")],
                       capture_output=True, text=True)
    ok(r.returncode in (0, 1) and "runtime error" not in r.stderr,
       "diff: a response 1e19 ns after its request without overflow", r.stderr)


try:
    {"replay": group_replay, "store": group_store, "extreme": group_extreme}[GROUP]()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(finish())
