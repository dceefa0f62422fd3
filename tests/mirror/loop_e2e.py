#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Loop protection live on lo: dyetap's shadow copies are never shadowed again.

usage: loop_e2e.py DYETAP GROUP          (TAP output; root)

In a network namespace of its own (created and deleted here, so its lo
carries nothing but this test's traffic), two real HTTP/1.1 servers A and
B listen on 127.0.0.1; lane blue's target is B. One keep-alive client
sends 5 requests with `x-lane: blue` to A while the capture runs on lo.
The capture then also sees the 5 shadow copies going to B (they carry
`x-lane: blue` too, and the marker `x-dyetap-shadow: 1`): they must not be
shadowed again, so B receives exactly 5 and each copy is counted
`dropped_loop` on the lane.

mirror     dyetap mirror -i lo; stopped with SIGINT once B has its 5.
fastpath   dyetap-fastpath on net_pcap iface=lo (FASTPATH in the
           environment); it must end by itself (--exit-idle) once the
           traffic stops.

More live checks share the namespace set-up:
kernel-drops  dyetap mirror -i lo --buffer-mb 1 under a flood of 1400-byte
           UDP datagrams: the kernel drops packets (src_kernel_drops > 0)
           and mirror says so on stderr, as dyetap record does.
slow-lane  the capture thread keeps capturing while the lane is slow: wrk
           keep-alive load (every request colored) on production server A
           for 3 s, captured once by `dyetap record -i lo` (the anchor) and
           once by `dyetap mirror -i lo` whose lane target B answers each
           request only after 300 ms, with --sender-queue 1 so that the
           queue to the sender thread overflows (and 30 requests pipelined
           in one packet at the end, which the capture thread classifies
           back to back). mirror runs with record's block timeout
           (--block-ms 20), so both have the same kernel buffering and the
           comparison is about the capture thread's work; mirror's default
           of 1 ms retires a block every millisecond, which bounds how long
           a descheduled capture thread may stall (docs/mirror.md
           "Capture"). With DYETAP_TEST_LIGHT_LOAD=1 (tests/tsan.sh)
           wrk is paced to ~1k requests/s. Asserted: mirror's kernel
           drops are no more than record's, no gap sessions, every request
           wrk completed is a complete session; the requests the queue
           could not take are counted mirror_sender_queue_full (> 0) and
           the lane's accounting closes: classified = queued + queue_full,
           colored = mirrored + every drop.

Skips cleanly without root, without `ip`, or (fastpath) without DPDK;
slow-lane also without wrk.
"""
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

DYETAP, GROUP = os.path.abspath(sys.argv[1]), sys.argv[2]
INSIDE = len(sys.argv) > 3 and sys.argv[3] == "--inside"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, ok, serve_http  # noqa: E402

EAL = ["--no-huge", "-m", "256", "--no-pci", "--no-telemetry", "--no-shconf",
       "--log-level=*:warning", "--lcores", "0@0,1@1,2@0"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.log.append((self.path, dict((k.lower(), v) for k, v in self.headers.items())))
        body = b"ok %s\n" % self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def send_five(port):
    """5 GETs with the lane header on one keep-alive connection to 127.0.0.1:port."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(5):
        c.request("GET", "/item/%d" % i, headers={"x-lane": "blue", "x-user-id": str(i)})
        c.getresponse().read()
    c.close()


def wait_for(cond, secs):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def lines_of(pipe, sink):
    for line in iter(pipe.readline, ""):
        sink.append(line)


def start(cmd, err):
    """Popen @cmd; its stderr lines go to @err from a thread (returned too)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = threading.Thread(target=lines_of, args=(p.stderr, err), daemon=True)
    t.start()
    return p, t


def finish_run(p, t, timeout):
    """Wait for @p (killed after @timeout s), then for its last stderr lines: stdout."""
    try:
        out = p.stdout.read() if p.wait(timeout) is not None else ""
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        out = p.stdout.read()
    t.join(10)
    return out


def check_lane(a, b, lane, name):
    ok(len(a.log) == 5, "%s: A served the 5 requests" % name, len(a.log))
    ok(len(b.log) == 5, "%s: B, the lane's target, received exactly 5" % name,
       [p for p, _ in b.log][:10])
    ok(all(h.get("x-dyetap-shadow") == "1" for _, h in b.log) and
       sorted(p for p, _ in b.log) == sorted(p for p, _ in a.log),
       "%s: the copies are A's requests, each with the marker" % name)
    ok(lane.get("mirrored") == 5 and lane.get("dropped_loop") == 5 and lane.get("colored") == 10,
       "%s: 10 colored requests seen on lo, 5 mirrored, the 5 copies counted dropped_loop"
       % name, lane)


def inside_mirror():
    a, pa = serve_http(Handler)
    b, pb = serve_http(Handler)
    err = []
    rep = tempfile.mkdtemp(prefix="loop-rep-")
    p, t = start([DYETAP, "mirror", "-i", "lo", "--color", "blue=header:x-lane=blue",
                  "--lane", "blue=http://127.0.0.1:%d" % pb, "--json", "--drain-timeout", "2s",
                  "--diff", "--report-dir", rep],
                 err)
    try:
        ready = wait_for(lambda: any("capturing on lo" in l for l in err), 20)
        ok(ready, "mirror: capturing on lo", "".join(err))
        send_five(pa)
        wait_for(lambda: len(b.log) >= 5, 10)
        time.sleep(1.5)  # a loop would keep copying: give it time to show
    finally:
        p.send_signal(signal.SIGINT)
        out = finish_run(p, t, 30)
    js = json.loads(out) if out.strip().startswith("{") else {}
    ok(p.returncode == 0, "mirror: SIGINT ends it cleanly", "".join(err))
    lane = {k[len("lane_blue_"):]: v for k, v in js.items() if k.startswith("lane_blue_")}
    check_lane(a, b, lane, "mirror")
    try:
        with open(os.path.join(rep, "report.json")) as f:
            r = json.load(f)
    except (OSError, ValueError):
        r = {}
    ok(r.get("data_incomplete") is False and r["summary"]["compared"] == 5,
       "mirror: the report compares the 5 and is complete: the copies dropped by loop "
       "protection are not production's requests, no loss",
       (r.get("data_incomplete"), r.get("incomplete_reasons")))
    shutil.rmtree(rep, ignore_errors=True)


def inside_fastpath():
    fp = os.environ.get("FASTPATH")
    if not fp:
        print("1..0 # SKIP built without DPDK")
        return
    a, pa = serve_http(Handler)
    b, pb = serve_http(Handler)
    err = []
    cmd = [fp] + EAL + ["--vdev", "net_pcap0,iface=lo", "--", "--rx", "0",
                        "--color", "blue=header:x-lane=blue",
                        "--lane", "blue=http://127.0.0.1:%d" % pb,
                        "--exit-idle", "2000", "--stats-every", "1", "--json",
                        "--drain-timeout", "2s"]
    p, t = start(cmd, err)
    # A trickle of UDP datagrams until the port's counters show them: then
    # the fast path is receiving on lo (and --exit-idle is not yet due).
    stop = threading.Event()

    def trickle():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while not stop.is_set():
            s.sendto(b"x", ("127.0.0.1", 9))
            time.sleep(0.1)
    threading.Thread(target=trickle, daemon=True).start()

    def receiving():
        for line in err:
            if line.startswith("{") and json.loads(line).get("rx", 0) > 0:
                return True
        return False
    try:
        ready = wait_for(receiving, 30)
        ok(ready, "fastpath: receiving on lo", "".join(err)[-2000:])
        stop.set()
        send_five(pa)
        t0 = time.time()
        out = finish_run(p, t, 40)
        secs = time.time() - t0
    finally:
        stop.set()
        if p.poll() is None:
            p.kill()
            p.wait()
    ok(p.returncode == 0 and secs < 30,
       "fastpath: --exit-idle ends it once the traffic stops (%.1f s)" % secs,
       "".join(e for e in err if not e.startswith("{"))[-2000:])
    js = {}
    for line in out.splitlines():
        if line.startswith("{"):
            js = json.loads(line)
    lane = js.get("shadow", {}).get("lanes", {}).get("blue", {})
    check_lane(a, b, lane, "fastpath")


def inside_kernel_drops():
    err = []
    p, t = start([DYETAP, "mirror", "-i", "lo", "--buffer-mb", "1",
                  "--color", "blue=header:x-lane=blue", "--lane", "blue=http://127.0.0.1:1",
                  "--json", "--drain-timeout", "0"], err)
    try:
        ok(wait_for(lambda: any("capturing on lo" in l for l in err), 20),
           "kernel-drops: capturing on lo", "".join(err))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0, payload = time.time(), b"x" * 1400
        while time.time() - t0 < 1.0:
            for _ in range(100):
                s.sendto(payload, ("127.0.0.1", 9))
    finally:
        p.send_signal(signal.SIGINT)
        out = finish_run(p, t, 30)
    js = json.loads(out) if out.strip().startswith("{") else {}
    drops = js.get("src_kernel_drops", 0)
    ok(p.returncode == 0 and drops > 0, "kernel-drops: the flood overflows a 1 MiB buffer (%d)"
       % drops, "".join(err))
    ok(any("warning: the kernel dropped %d packets" % drops in l and "--buffer-mb" in l
           for l in err), "kernel-drops: mirror warns with the count and what to do",
       "".join(err))


class LoadHandler(Handler):
    """Handler with TCP_NODELAY: headers and body are two writes, and with
    Nagle on the body would wait for the client's delayed ACK (40 ms)."""
    disable_nagle_algorithm = True


class SlowHandler(Handler):
    """Answers each request after 300 ms (a slow lane target)."""

    def do_GET(self):
        time.sleep(0.3)
        Handler.do_GET(self)


# Under ThreadSanitizer (tests/tsan.sh) everything runs 5-15 times slower:
# the load is then paced (2 connections, each 2 ms after every answer), so
# that what is checked is the threads' hand-over, not the machine's speed.
LIGHT = os.environ.get("DYETAP_TEST_LIGHT_LOAD") == "1"
PACE_LUA = "function delay() return 2 end\n"
BURST = 30  # under the 32 pipelined requests a connection may have pending (txn)


def wrk_load(port, secs):
    """wrk keep-alive load, every request colored blue: the requests it completed."""
    cmd = ["wrk", "-t1", "-c2", "-d%ds" % secs, "-H", "x-lane: blue"]
    if LIGHT:
        lua = os.path.join(tempfile.gettempdir(), "dyetap-pace-%d.lua" % os.getpid())
        with open(lua, "w") as f:
            f.write(PACE_LUA)
        cmd += ["-s", lua]
    r = subprocess.run(cmd + ["http://127.0.0.1:%d/item" % port],
                       capture_output=True, text=True, timeout=secs + 30)
    for line in r.stdout.splitlines():
        words = line.split()
        if len(words) > 2 and words[1:3] == ["requests", "in"]:
            return int(words[0])
    return -1


def burst(port):
    """BURST colored GETs pipelined in one write on one connection: they reach
    the capture in one packet, so the capture thread classifies them back to
    back. Returns the responses read."""
    c = socket.create_connection(("127.0.0.1", port), 10)
    c.sendall(b"".join(b"GET /burst/%d HTTP/1.1\r\nHost: a\r\nx-lane: blue\r\n\r\n" % i
                       for i in range(BURST)))
    got, end = b"", time.time() + 20
    while got.count(b"HTTP/1.1 200") < BURST and time.time() < end:
        data = c.recv(65536)
        if not data:
            break
        got += data
    c.close()
    return got.count(b"HTTP/1.1 200")


def capture_under_load(cmd, port, name):
    """Run @cmd (a capture on lo) around 3 s of wrk load: (counters, wrk count, stderr)."""
    err = []
    p, t = start(cmd, err)
    try:
        ok(wait_for(lambda: any("capturing on lo" in l for l in err), 20),
           "slow-lane: %s is capturing on lo" % name, "".join(err))
        n = wrk_load(port, 3)
        n += burst(port)
        time.sleep(0.5)
    finally:
        p.send_signal(signal.SIGINT)
        out = finish_run(p, t, 60)
    js = json.loads(out) if out.strip().startswith("{") else {}
    ok(p.returncode == 0 and js, "slow-lane: %s ends cleanly on SIGINT" % name, "".join(err))
    return js, n, err


def inside_slow_lane():
    if not shutil.which("wrk"):
        print("1..0 # SKIP wrk missing (tests/setup.sh)")
        return
    a, pa = serve_http(LoadHandler)
    b, pb = serve_http(SlowHandler)
    flt = ["tcp", "port", str(pa)]
    tmp = tempfile.mkdtemp(prefix="dyetap-slowlane-")
    try:
        rec, n_rec, _ = capture_under_load(
            [DYETAP, "record", "-i", "lo", "-w", os.path.join(tmp, "r.dyt"), "--json"] + flt,
            pa, "record -i")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mir, n_mir, err = capture_under_load(
        [DYETAP, "mirror", "-i", "lo", "--color", "blue=header:x-lane=blue",
         "--lane", "blue=http://127.0.0.1:%d" % pb, "--sender-queue", "1",
         "--block-ms", "20",
         "--drain-timeout", "1s", "--json"] + flt, pa, "mirror -i")
    g = mir.get
    ok(n_rec > 0 and n_mir > 0, "slow-lane: wrk completed requests (record %d, mirror %d)"
       % (n_rec, n_mir))
    ok(g("src_kernel_drops", -1) <= rec.get("src_kernel_drops", 0),
       "slow-lane: mirror's kernel drops (%s) are no more than record's (%s)"
       % (g("src_kernel_drops"), rec.get("src_kernel_drops")))
    ok(g("txn_gap_sessions", -1) == 0 and rec.get("txn_gap_sessions", -1) == 0,
       "slow-lane: no gap sessions (mirror %s, record %s)"
       % (g("txn_gap_sessions"), rec.get("txn_gap_sessions")))
    ok(g("txn_sessions_complete", 0) >= n_mir,
       "slow-lane: every request wrk completed is a complete session (%s >= %d)"
       % (g("txn_sessions_complete"), n_mir))
    lane = {k[len("lane_blue_"):]: v for k, v in mir.items() if k.startswith("lane_blue_")}
    drops = {k[len("dropped_"):]: v for k, v in lane.items() if k.startswith("dropped_")}
    queued, full = g("mirror_sender_queued", -1), g("mirror_sender_queue_full", -1)
    classified = lane.get("colored", 0) - sum(
        drops.get(k, 0) for k in ("paused", "loop", "production", "incomplete",
                                  "write_refused", "unsupported"))
    ok(full > 0, "slow-lane: the full queue to the sender thread is counted (%d)" % full,
       "".join(err))
    ok(queued >= 0 and queued + full == classified,
       "slow-lane: classified %d = queued %d + queue_full %d" % (classified, queued, full))
    ok(drops.get("queue_full", 0) >= full,
       "slow-lane: the lane's dropped_queue_full (%s) includes them" % drops.get("queue_full"))
    ok(lane.get("colored", 0) >= n_mir and
       lane.get("colored") == lane.get("mirrored", 0) +
       sum(v for k, v in drops.items() if k != "stopped"),
       "slow-lane: colored = mirrored + every drop", lane)
    ok(len(b.log) > 0 and lane.get("mirrored", 0) > 0,
       "slow-lane: the slow target received shadow requests (%d)" % len(b.log))


def outside():
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("1..0 # SKIP needs root and iproute2 (a network namespace of its own)")
        return 0
    if GROUP == "fastpath" and not os.environ.get("FASTPATH"):
        print("1..0 # SKIP built without DPDK")
        return 0
    ns = "dtloop-%x" % (os.getpid() & 0xFFFFFF)
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode:
        print("1..0 # SKIP cannot create a network namespace")
        return 0
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                            DYETAP, GROUP, "--inside"], timeout=170)
        return r.returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main():
    if not INSIDE:
        sys.exit(outside())
    {"mirror": inside_mirror, "fastpath": inside_fastpath,
     "kernel-drops": inside_kernel_drops, "slow-lane": inside_slow_lane}[GROUP]()
    sys.exit(finish())


if __name__ == "__main__":
    main()
