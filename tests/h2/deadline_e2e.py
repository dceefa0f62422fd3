#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gRPC deadlines in HTTP/2 replay (docs/http2.md "Replay").

The recording is fixtures/grpc-deadline.pcap: python3-grpcio's client
made 6 GetItem calls (ids 1..6) one after another on one channel, each
with a 0.5 s deadline (grpc-timeout 500m), all answered in time.

gRPC (PROTOCOL-HTTP2.md, doc/deadlines.md): a client whose deadline
passes ends the call with status DEADLINE_EXCEEDED (4), whatever the
server does; a server may also end it so itself. A call made after the
previous one ended has its deadline from then.

(a) A candidate that answers call 4 after 1 s and does not enforce
    deadlines (a raw h2c server below, answering each call with the
    recorded answer's fields and bytes): the replay ends call 4 at its
    deadline (RST_STREAM CANCEL; a timeout result "grpc deadline
    exceeded", counted in h2_grpc_deadline) long before the answer, and
    diff reports exactly one difference: grpc-status 0 -> 4 "Deadline
    Exceeded" on GetItem, no replay error, data complete. Before, the
    late answer was compared as OK: a build that breaks every client's
    deadline passed the gate.
(b) The same server answering in time: nothing differs, no deadline.
(c) The real service (grpc_shop.py, python3-grpcio) slow in call 4 only:
    grpcio's server ends the call itself at its deadline. Calls 5 and 6
    waited for call 4's end (the recording's client made them after it),
    so their deadlines run from then: only call 4 is DEADLINE_EXCEEDED
    (before, the wait was taken off their grpc-timeout and all three
    failed, where grpcio's client has one failure).
(d) Recorded live (root, tcpdump on lo): grpcio's client gives up on call
    2 at its 0.5 s deadline (RST_STREAM CANCEL, no answer: the server of
    (a) ignores deadlines). Replayed three times to the real service slow
    in call 2: the replay cancels the call as recorded, or grpcio's
    server ends it first with DEADLINE_EXCEEDED at the deadline it was
    sent; either is the call cancelled as recorded, never "data
    incomplete" (before, the second outcome was, at random).
(e) Recorded live (root, tcpdump on lo, the real service as production):
    call 1, then calls 2 and 3 at once (futures) after it ended, each
    with a 0.45 s deadline. Replayed to the real service slow (0.3 s) in
    calls 1 and 3: calls 2 and 3 wait for call 1's end, so both have
    their deadlines from then and call 3 answers in time. Nothing
    differs (before, only the first of them, the head of its
    connection's queue, had; call 3 lost the 0.3 s to its grpc-timeout
    and was a false DEADLINE_EXCEEDED).

(f) Recorded live: 3 calls at once, each with a 0.4 s deadline. Replayed
    to a target that sends its SETTINGS only after 1 s: one stream may go
    before them (docs/http2.md "Replay"), the other two wait for them and
    their deadlines pass while they wait: a gRPC client fails such a call
    without sending it, and so does the replay (the target sees one
    request); all three are DEADLINE_EXCEEDED, none a replay error.

  deadline_e2e.py DYETAP FIXTURES
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from tap_util import LoopbackServer, finish, free_port, ok, stop_all  # noqa: E402
from crafted_e2e import PREFACE, block, frame, read_preface, take_frame  # noqa: E402

DYETAP, FIX = sys.argv[1], sys.argv[2]
PCAP = os.path.join(FIX, "grpc-deadline.pcap")
SYS_PY = "/usr/bin/python3"


def dy(*args):
    return subprocess.run([DYETAP] + list(args), capture_output=True, text=True, timeout=120)


def raw(body):
    """A body of `dyetap cat --json` as bytes (text, or {"base64": ...})."""
    return base64.b64decode(body["base64"]) if isinstance(body, dict) else body.encode("latin-1")


def answers(rec):
    """Recorded answers by request body: (header fields, body, trailers)."""
    out = {}
    for line in dy("cat", rec, "--json").stdout.splitlines():
        s = json.loads(line)
        q, a = s["request"], s["response"]
        out[raw(q["body"])] = (a["headers"], raw(a["body"]), a.get("trailers", []))
    return out


class IgnoringServer(LoopbackServer):
    """h2c (prior knowledge): answers each request, once its body ended,
    with the recorded answer to that body: HEADERS, DATA, trailers. The
    answer to a call whose id (protobuf field 1 of its message) is in
    @slow goes @delay seconds later. No deadline is looked at."""

    def __init__(self, table, slow=(), delay=0.0, settings_delay=0.0):
        self.table, self.slow, self.delay = table, set(slow), delay
        self.settings_delay = settings_delay  # its SETTINGS that late
        self.resets, self.errors, self.unknown, self.requests = [], [], 0, 0
        super().__init__()

    def answer(self, c, wlock, sid, body):
        hdr, data, trl = self.table[body]
        out = frame(1, 4, sid, block([tuple(f) for f in hdr]))
        out += frame(0, 0, sid, data) + frame(1, 5, sid, block([tuple(f) for f in trl]))
        try:
            with wlock:
                c.sendall(out)
        except OSError:
            pass

    def serve(self, c, cid):
        wlock, bodies, timers = threading.Lock(), {}, []
        try:
            buf = read_preface(c)
            if buf is None:
                return
            time.sleep(self.settings_delay)
            try:
                with wlock:
                    c.sendall(frame(4, 0, 0, b""))
            except OSError:
                pass  # the client is gone: what it sent is still read below
            while True:
                while True:
                    fr, buf = take_frame(buf)
                    if fr is None:
                        break
                    ftype, flags, sid, payload = fr
                    if ftype == 4 and not flags & 1:
                        try:
                            with wlock:
                                c.sendall(frame(4, 1, 0, b""))
                        except OSError:
                            pass  # gone: its frames are still read
                    elif ftype == 3:
                        with self.lock:
                            self.resets.append((sid, int.from_bytes(payload[:4], "big")))
                    elif ftype == 0:
                        pad = payload[0] if flags & 0x8 else 0
                        bodies[sid] = bodies.get(sid, b"") + \
                            payload[1 if flags & 0x8 else 0:len(payload) - pad]
                    if ftype == 1:
                        with self.lock:
                            self.requests += 1
                    if ftype in (0, 1) and flags & 1:  # END_STREAM: the request ended
                        body = bodies.pop(sid, b"")
                        if body not in self.table:
                            with self.lock:
                                self.unknown += 1
                            continue
                        call_id = body[6] if len(body) > 6 and body[5] == 0x08 else 0
                        if call_id in self.slow:
                            t = threading.Timer(self.delay, self.answer,
                                                (c, wlock, sid, body))
                            t.start()
                            timers.append(t)
                        else:
                            self.answer(c, wlock, sid, body)
                d = c.recv(65536)
                if not d:
                    return
                buf += d
        except OSError:
            return
        except Exception as e:  # noqa: BLE001 (reported by the checks)
            with self.lock:
                self.errors.append(repr(e))
        finally:
            for t in timers:
                t.cancel()
            c.close()


def capture(tmp, name, port, argv):
    """Run @argv while tcpdump writes tmp/@name.pcap (lo, tcp port @port):
    (the pcap's path, the command's CompletedProcess)."""
    pcap = os.path.join(tmp, name + ".pcap")
    tlog = open(os.path.join(tmp, name + "-tcpdump.log"), "w")
    td = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w", pcap,
                           "tcp port %d" % port], stdout=subprocess.DEVNULL, stderr=tlog)
    try:
        for _ in range(50):
            if "listening" in open(tlog.name).read():
                break
            time.sleep(0.1)
        time.sleep(0.3)
        c = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        time.sleep(1)
    finally:
        td.send_signal(2)
        td.wait(timeout=10)
        tlog.close()
    return pcap, c


def shop(tmp, name, *extra):
    """grpc_shop.py's baseline service with @extra options, once it is ready:
    (process, its log file, port)."""
    port = free_port()
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen([SYS_PY, os.path.join(HERE, "grpc_shop.py"), "serve", str(port),
                          "--variant", "baseline", *extra], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(50):
        if "ready" in open(log.name).read():
            break
        time.sleep(0.1)
    return p, log, port


def slow_shop(tmp, name, slow_id):
    """The service 1 s slow in call @slow_id."""
    return shop(tmp, name, "--delay", "1.0", "--delay-ids", str(slow_id))


def replay(tmp, rec, name, port):
    res = os.path.join(tmp, name + ".dyt")
    t0 = time.monotonic()
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "-o", res,
           "--allow-writes", "--json", "--quiet")
    took = time.monotonic() - t0
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    results = {}
    for line in dy("cat", "--json", "--type", "result", "--no-body", res).stdout.splitlines():
        x = json.loads(line)
        results[x["session_id"]] = x
    rep = os.path.join(tmp, name + ".json")
    d = dy("diff", res, "--json", rep)
    report = json.load(open(rep)) if os.path.exists(rep) else {}
    return r, js, results, report, took, d


def statuses(report):
    """(location, pattern) of every cause not judged noise."""
    return [(c.get("location"), c.get("pattern")) for c in report.get("causes", [])
            if not c.get("noise")]


def main():
    if not os.path.exists(PCAP):
        print("1..0 # SKIP fixtures/grpc-deadline.pcap missing")
        return 0
    tmp = tempfile.mkdtemp(prefix="dyetap-deadline-")
    rec = os.path.join(tmp, "rec.dyt")
    r = dy("record", "-r", PCAP, "-w", rec)
    table = answers(rec) if r.returncode == 0 else {}
    timeouts = [f[1] for line in dy("cat", rec, "--json").stdout.splitlines()
                for f in json.loads(line)["request"]["headers"] if f[0] == "grpc-timeout"]
    ok(r.returncode == 0 and len(table) == 6 and len(timeouts) == 6 and
       all(t in ("500m", "501m", "499m") or t.endswith("u") for t in timeouts),
       "recording: 6 GetItem calls, each with a grpc-timeout of about 500 ms", (r.stderr, timeouts))

    # (a) a candidate that ignores deadlines, late in call 4
    srv = IgnoringServer(table, slow={4}, delay=1.0)
    r, js, res, report, took, d = replay(tmp, rec, "late", srv.port)
    ctr = js.get("counters", {})
    four = [x for x in res.values() if x.get("error") != "none"]
    summ = report.get("summary", {})
    ok(r.returncode != 2 and js.get("sent") == 6 and ctr.get("h2_grpc_deadline") == 1 and
       js.get("errors", {}).get("timeout") == 1 and len(four) == 1 and
       four[0].get("error") == "timeout" and
       four[0].get("error_msg", "").startswith("grpc deadline exceeded") and
       0.45e9 < four[0].get("latency_ns", 0) < 0.9e9,
       "a candidate that answers call 4 after 1 s: the replay ends the call at its 0.5 s deadline "
       "(timeout 'grpc deadline exceeded', h2_grpc_deadline 1)",
       (r.returncode, r.stderr[-300:], js.get("errors"), ctr, four))
    ok(len(srv.resets) >= 1 and all(code == 8 for _, code in srv.resets),
       "... and the target is told with RST_STREAM(CANCEL), as a gRPC client does",
       srv.resets)
    ok(d.returncode == 0 and summ.get("compared") == 6 and summ.get("replay_errors") == 0 and
       report.get("data_incomplete") is False and summ.get("status_changes") == 1 and
       summ.get("differing") == 1 and
       statuses(report) == [("grpc-status", "0 -> 4 Deadline Exceeded")],
       "diff: exactly one difference, grpc-status 0 -> 4 Deadline Exceeded; no replay error, "
       "data complete",
       (d.returncode, d.stderr[-300:], summ, statuses(report)))
    ok(srv.unknown == 0 and not srv.errors, "the server knew every request", (srv.unknown,
                                                                            srv.errors))

    # (b) the same server in time
    srv = IgnoringServer(table)
    r, js, res, report, took, d = replay(tmp, rec, "intime", srv.port)
    summ = report.get("summary", {})
    ok(r.returncode == 0 and js.get("ok") == 6 and
       js.get("counters", {}).get("h2_grpc_deadline", 0) == 0 and not srv.resets and
       summ.get("compared") == 6 and summ.get("differing") == 0 and not statuses(report),
       "the same server answering in time: 6 compared, nothing differs, no deadline passed",
       (r.returncode, js.get("counters"), summ, statuses(report), srv.resets))

    # (c) the real service, slow in call 4: grpcio's server ends it itself
    if not os.path.exists(SYS_PY) or subprocess.run(
            [SYS_PY, "-c", "import grpc"], capture_output=True).returncode:
        ok(True, "# SKIP python3-grpcio missing")
        return finish()
    p, log, port = slow_shop(tmp, "shop", 4)
    try:
        r, js, res, report, took, d = replay(tmp, rec, "grpcio", port)
        summ = report.get("summary", {})
        ok(r.returncode != 2 and js.get("sent") == 6 and summ.get("compared") == 6 and
           summ.get("replay_errors") == 0 and summ.get("status_changes") == 1 and
           summ.get("differing") == 1 and
           statuses(report) == [("grpc-status", "0 -> 4 Deadline Exceeded")],
           "grpcio slow in call 4: only call 4 is DEADLINE_EXCEEDED (calls 5 and 6, made after "
           "it ended, have their deadlines from then)",
           (r.returncode, r.stderr[-300:], js.get("errors"), summ, statuses(report)))
    finally:
        stop_all([p])
        log.close()
    given_up(tmp, table)
    behind_a_wait(tmp)
    past_deadline(tmp)
    return finish()


def given_up(tmp, table):
    """(d): a call its recorded client gave up on at its deadline."""
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        ok(True, "# SKIP live capture needs root and tcpdump")
        return
    srv = IgnoringServer(table, slow={2}, delay=1.5)
    pcap, c = capture(tmp, "given-up", srv.port,
                      [SYS_PY, os.path.join(HERE, "grpc_shop.py"), "call", str(srv.port),
                       "--calls", "3", "--deadline", "0.5"])
    rec = os.path.join(tmp, "given-up.dyt")
    r = dy("record", "-r", pcap, "-w", rec)
    sess = [json.loads(x) for x in dy("cat", rec, "--json", "--no-body").stdout.splitlines()]
    gave_up = [x for x in sess if "reset" in x.get("flags", []) and not x.get("response")]
    ok(r.returncode == 0 and "ok 2 errors 1" in c.stdout and len(sess) == 3 and
       len(gave_up) == 1 and gave_up[0].get("reset_code") == 8,
       "recorded: grpcio's client gave up on call 2 at its deadline (RST_STREAM CANCEL, no "
       "answer), calls 1 and 3 answered", (c.stdout, r.stderr[-300:], sess))
    p, log, port = slow_shop(tmp, "shop2", 2)
    try:
        seen = []
        for i in range(3):
            r, js, res, report, took, d = replay(tmp, rec, "given-up-%d" % i, port)
            summ = report.get("summary", {})
            seen.append((r.returncode, summ.get("compared"), summ.get("cancelled"),
                         summ.get("incomplete"), summ.get("replay_errors"),
                         summ.get("differing"), report.get("data_incomplete")))
        ok(all(x == (0, 2, 1, 0, 0, 0, False) for x in seen),
           "replayed 3 times to grpcio slow in call 2: call 2 cancelled as recorded each time "
           "(by the replay, or by the server's DEADLINE_EXCEEDED first), 2 compared, nothing "
           "incomplete or differing", seen)
    finally:
        stop_all([p])
        log.close()


CLIENT_E = """
import sys, grpc
sys.path.insert(0, sys.argv[2])
import grpc_shop
Req, Item = grpc_shop.load_messages(None)
with grpc.insecure_channel("127.0.0.1:" + sys.argv[1]) as ch:
    rpc = ch.unary_unary("/shop.Shop/GetItem", request_serializer=lambda m: m.SerializeToString(),
                         response_deserializer=Item.FromString)
    rpc(Req(id=1), timeout=0.6)
    fs = [rpc.future(Req(id=i), timeout=0.45) for i in (2, 3)]
    print("ok", sum(1 for f in fs if f.result()))
"""


def behind_a_wait(tmp):
    """(e): calls queued behind a call that waits for an earlier stream."""
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        ok(True, "# SKIP live capture needs root and tcpdump")
        return
    procs = []
    try:
        ports = []
        for name, extra in (("prod", []), ("slow", ["--delay", "0.3", "--delay-ids", "1,3"])):
            p, log, port = shop(tmp, "shop-" + name, *extra)
            procs.append(p)
            ports.append(port)
        pcap, c = capture(tmp, "behind", ports[0], [SYS_PY, "-c", CLIENT_E, str(ports[0]), HERE])
        rec = os.path.join(tmp, "behind-rec.dyt")
        r = dy("record", "-r", pcap, "-w", rec)
        n = len(dy("cat", rec).stdout.splitlines())
        ok(r.returncode == 0 and "ok 2" in c.stdout and n == 3,
           "recorded: call 1, then calls 2 and 3 at once, all answered", (c.stdout, c.stderr[-300:],
                                                                          r.stderr[-300:], n))
        r, js, res, report, took, d = replay(tmp, rec, "behind", ports[1])
        summ = report.get("summary", {})
        ok(r.returncode == 0 and js.get("ok") == 3 and summ.get("compared") == 3 and
           summ.get("differing") == 0 and not statuses(report),
           "replayed to the service slow in calls 1 and 3: calls 2 and 3 waited for call 1, "
           "both have their deadlines from its end; call 3 answers in time, nothing differs",
           (r.returncode, r.stderr[-300:], summ, statuses(report),
            [(x.get("lateness_ns"), x.get("latency_ns")) for x in res.values()]))
    finally:
        stop_all(procs)


def past_deadline(tmp):
    """(f): calls whose deadline passes before they can be sent."""
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        ok(True, "# SKIP live capture needs root and tcpdump")
        return
    p, log, port = slow_shop(tmp, "shop-f", 0)
    try:
        pcap, c = capture(tmp, "three", port,
                          [SYS_PY, os.path.join(HERE, "grpc_shop.py"), "call", str(port),
                           "--calls", "3", "--parallel", "3", "--deadline", "0.4"])
    finally:
        stop_all([p])
        log.close()
    rec = os.path.join(tmp, "three.dyt")
    r = dy("record", "-r", pcap, "-w", rec)
    table = answers(rec) if r.returncode == 0 else {}
    ok(r.returncode == 0 and "ok 3" in c.stdout and len(table) == 3,
       "recorded: 3 calls at once, answered", (c.stdout, r.stderr[-300:], len(table)))
    srv = IgnoringServer(table, settings_delay=1.0)
    r, js, res, report, took, d = replay(tmp, rec, "three-res", srv.port)
    msgs = sorted(x.get("error_msg", "") for x in res.values())
    unsent = [m for m in msgs if "before it could be sent" in m]
    for _ in range(30):  # the server reads what came once its 1 s is over
        if srv.requests:
            break
        time.sleep(0.1)
    time.sleep(0.2)
    summ = report.get("summary", {})
    ok(len(res) == 3 and all(m.startswith("grpc deadline exceeded") for m in msgs) and
       len(unsent) == 2 and srv.requests == 1 and
       js.get("counters", {}).get("h2_grpc_deadline") == 3,
       "a target slow to send its SETTINGS: the 2 calls that waited for them past their "
       "deadline are not sent (the target saw 1 request), all 3 DEADLINE_EXCEEDED",
       (msgs, srv.requests, js.get("counters", {}).get("h2_grpc_deadline")))
    ok(summ.get("compared") == 3 and summ.get("replay_errors") == 0 and
       summ.get("status_changes") == 3 and
       statuses(report) == [("grpc-status", "0 -> 4 Deadline Exceeded")],
       "diff: three times grpc-status 0 -> 4 Deadline Exceeded, no replay error",
       (summ, statuses(report)))


if __name__ == "__main__":
    sys.exit(main())
