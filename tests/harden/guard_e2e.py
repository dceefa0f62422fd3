#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of the production guard, loop protection and redaction
in mirror and the fast path.

usage: guard_e2e.py DYETAP SOURCE_ROOT GROUP      (TAP output)

guard   A capture of GET requests to a real HTTP server on 127.0.0.1:P1
        (packets built with tests/capture/gen_pcap.py, so no root is
        needed) is recorded. `dyetap replay` to http://127.0.0.1:P1 or
        http://localhost:P1 (also as --baseline) is refused with exit 2,
        a message naming the target, the endpoint and the override, and no
        results file; to another server on 127.0.0.1:P2 it runs; with
        --i-know-this-is-production it runs against P1 and P1 sees the
        requests. `dyetap mirror -r` with the lane target P1 drops every
        colored request as lane_blue_dropped_production (P1 sees none);
        with P2 or with the flag they are sent. Loop protection: with
        --no-shadow-header and the flag, still nothing reaches P1 (counted
        lane_blue_dropped_loop); captured requests carrying the marker
        header are never sent (dropped_loop).
fpguard The same guard and loop protection in dyetap-fastpath (FASTPATH in
        the environment) on net_pcap reading the capture.
redact  `dyetap mirror -r ... -w --redact-defaults --redact json:$.secret`
        with a lane server answering with secrets: the lane receives the
        request unredacted (the shadow copy is the production request), the
        -w file (cat --json) and report.json hold none of the secrets, the
        sessions and results are flagged or counted as redacted, and
        `dyetap info` lists the redactions.
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

DYETAP, ROOT, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(ROOT, "tests", "capture"))
import gen_pcap as g  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, free_port, ok, serve_http  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dyetap-guard-")




LANE_BODY = b'{"access_token": "RESP-SECRET-T1", "secret": "RESP-SECRET-T2", "n": 1}'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.log.append((self.path, dict((k.lower(), v) for k, v in self.headers.items())))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "sid=RESP-SECRET-C1; Path=/")
        self.send_header("Content-Length", str(len(LANE_BODY)))
        self.end_headers()
        self.wfile.write(LANE_BODY)

    def log_message(self, *a):
        pass


def server():
    return serve_http(Handler)


def make_pcap(port, n_conns, n_reqs, extra=b"", name=None):
    """n_conns keep-alive connections to 127.0.0.1:port, n_reqs colored GETs each."""
    frames = []
    for c in range(n_conns):
        conv = g.Conv(cli="127.0.0.1", cport=41000 + c, srv="127.0.0.1", sport=port).handshake()
        for i in range(n_reqs):
            conv.send(True, g.req(b"GET", b"/item/%d/%d?token=REQ-SECRET-Q1" % (c, i),
                                  extra=b"x-lane: blue\r\n" + extra))
            conv.send(False, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Set-Cookie: sid=PROD-SECRET-C2\r\nContent-Length: %d\r\n\r\n"
                      % len(LANE_BODY) + LANE_BODY)
        frames += g.frame(conv.close(), 1)
    path = os.path.join(TMP, name or "cap-%d.pcap" % port)
    g.write_pcap(path, 1, frames)
    return path


def run(args, timeout=30):
    return subprocess.run([DYETAP] + args, capture_output=True, text=True, timeout=timeout)


def mirror_json(args):
    r = run(["mirror"] + args + ["--json", "--drain-timeout", "3s"])
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        return r, {}


def group_guard():
    prod, p1 = server()
    other, p2 = server()
    pcap = make_pcap(p1, 2, 3)
    rec = os.path.join(TMP, "rec.dyt")
    r = run(["record", "-r", pcap, "-w", rec, "--color", "blue=header:x-lane=blue"])
    ok(r.returncode == 0, "recorded 6 sessions whose server is 127.0.0.1:%d" % p1, r.stderr)
    out = os.path.join(TMP, "res.dyt")
    for args, what in ((["--target", "http://127.0.0.1:%d" % p1], "the recorded address:port"),
                       (["--target", "http://localhost:%d" % p1], "a name resolving to it"),
                       (["--target", "http://127.0.0.1:%d" % p2, "--baseline",
                         "http://127.0.0.1:%d" % p1], "the recorded server as --baseline")):
        r = run(["replay", rec, "-o", out, "--max", "-q"] + args)
        ok(r.returncode == 2 and "refusing to replay to production" in r.stderr and
           "127.0.0.1:%d" % p1 in r.stderr and "--i-know-this-is-production" in r.stderr and
           "session 1 " in r.stderr,
           "replay to %s is refused with exit 2 and a message naming it" % what,
           (r.returncode, r.stderr))
        ok(not os.path.exists(out), "no results file written")
    ok(not prod.log, "the production server received nothing", prod.log)
    r = run(["replay", rec, "-o", out, "--max", "-q", "--json",
             "--target", "http://127.0.0.1:%d" % p2])
    js = json.loads(r.stdout) if r.returncode == 0 else {}
    ok(r.returncode == 0 and js.get("ok") == 6 and len(other.log) == 6,
       "replay to another port of 127.0.0.1 runs without the flag (6 ok)", (r.stderr, js))
    r = run(["replay", rec, "-o", out, "--max", "-q", "--json", "--i-know-this-is-production",
             "--target", "http://127.0.0.1:%d" % p1])
    js = json.loads(r.stdout) if r.returncode == 0 else {}
    ok(r.returncode == 0 and js.get("ok") == 6 and len(prod.log) == 6 and
       "production guard off" in r.stderr,
       "--i-know-this-is-production replays to the recorded server (6 ok) and says so",
       (r.returncode, r.stderr, js))

    # mirror: the lane target is the captured server
    prod.log.clear()
    other.log.clear()
    base = ["-r", pcap, "--color", "blue=header:x-lane=blue"]
    r, c = mirror_json(base + ["--lane", "blue=http://127.0.0.1:%d" % p1])
    ok(r.returncode == 0 and c.get("mirror_colored") == 6 and
       c.get("lane_blue_dropped_production") == 6 and c.get("lane_blue_mirrored") == 0 and
       not prod.log,
       "mirror to the captured server: 6 of 6 dropped as lane_blue_dropped_production",
       (r.stderr, {k: v for k, v in c.items() if k.startswith(("lane_", "mirror_c"))}))
    ok(r.stderr.count("lane_blue_dropped_production") == 1 and
       "--i-know-this-is-production" in r.stderr,
       "mirror warns once, naming the counter and the override", r.stderr)
    r, c = mirror_json(base + ["--lane", "blue=http://127.0.0.1:%d" % p2])
    ok(r.returncode == 0 and c.get("lane_blue_dropped_production") == 0 and
       c.get("lane_blue_ok") == 6 and len(other.log) == 6,
       "mirror to another port: nothing dropped, 6 sent", (r.stderr, c))
    r, c = mirror_json(base + ["--lane", "blue=http://127.0.0.1:%d" % p1,
                               "--i-know-this-is-production"])
    ok(r.returncode == 0 and c.get("lane_blue_dropped_production") == 0 and
       c.get("lane_blue_ok") == 6 and len(prod.log) == 6,
       "mirror with --i-know-this-is-production sends to the captured server", (r.stderr, c))

    # Loop protection: without a marker header, traffic to the lane's own
    # target could be mirror's own copies: never shadowed to it, flag or not.
    prod.log.clear()
    r, c = mirror_json(base + ["--lane", "blue=http://127.0.0.1:%d" % p1,
                               "--i-know-this-is-production", "--no-shadow-header"])
    ok(r.returncode == 0 and c.get("lane_blue_dropped_loop") == 6 and
       c.get("lane_blue_mirrored") == 0 and not prod.log and
       r.stderr.count("lane_blue_dropped_loop") == 1,
       "mirror --no-shadow-header to the captured server: 6 of 6 dropped as loop, warned once",
       (r.stderr, {k: v for k, v in c.items() if k.startswith("lane_")}))
    # Captured requests that carry the marker are shadow copies: never sent again.
    marked = make_pcap(free_port(avoid=(p1, p2)), 2, 3, b"X-Dyetap-Shadow: 1\r\n", "marked.pcap")
    other.log.clear()
    r, c = mirror_json(["-r", marked, "--color", "blue=header:x-lane=blue",
                        "--lane", "blue=http://127.0.0.1:%d" % p2])
    ok(r.returncode == 0 and c.get("lane_blue_colored") == 6 and
       c.get("lane_blue_dropped_loop") == 6 and not other.log,
       "mirror: 6 captured requests carrying the marker: none sent, 6 dropped as loop",
       (r.stderr, c))


FP_EAL = ["--no-huge", "-m", "256", "--no-pci", "--no-telemetry", "--no-shconf",
          "--log-level=*:warning", "--lcores", "0@0,1@1,2@0"]


def fastpath(pcap, app):
    """dyetap-fastpath on net_pcap reading @pcap: (process, final JSON counters)."""
    cmd = [os.environ["FASTPATH"]] + FP_EAL + ["--vdev", "net_pcap0,rx_pcap=" + pcap, "--",
                                                "--rx", "0", "--exit-idle", "400", "--json",
                                                "--drain-timeout", "3s"] + app
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    js = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            js = json.loads(line)
    return r, js


def group_fpguard():
    if not os.environ.get("FASTPATH"):
        print("1..0 # SKIP built without DPDK")
        return
    prod, p1 = server()
    other, p2 = server()
    pcap = make_pcap(p1, 2, 3)
    color = ["--color", "blue=header:x-lane=blue"]

    def blue(js):
        return js.get("shadow", {}).get("lanes", {}).get("blue", {})
    r, js = fastpath(pcap, color + ["--lane", "blue=http://127.0.0.1:%d" % p1])
    b = blue(js)
    ok(r.returncode == 0 and b.get("colored") == 6 and b.get("dropped_production") == 6 and
       b.get("mirrored") == 0 and not prod.log,
       "fast path, lane = the captured server: 0 requests reach it, 6 dropped as production",
       (r.stderr, b, prod.log))
    ok(r.stderr.count("shadow_blue_dropped_production") == 1 and
       "--i-know-this-is-production" in r.stderr and "127.0.0.1:%d" % p1 in r.stderr,
       "the fast path warns once, naming the server, the counter and the override", r.stderr)
    r, js = fastpath(pcap, color + ["--lane", "blue=http://localhost:%d" % p1])
    ok(r.returncode == 0 and blue(js).get("dropped_production") == 6 and not prod.log,
       "the same when the lane names the server as localhost", (r.stderr, blue(js)))
    r, js = fastpath(pcap, color + ["--lane", "blue=http://127.0.0.1:%d" % p1,
                                    "--i-know-this-is-production"])
    ok(r.returncode == 0 and blue(js).get("ok") == 6 and len(prod.log) == 6 and
       blue(js).get("dropped_production") == 0 and "production guard off" in r.stderr,
       "--i-know-this-is-production: the 6 are sent to the captured server, and it says so",
       (r.stderr, blue(js), len(prod.log)))
    r, js = fastpath(pcap, color + ["--lane", "blue=http://127.0.0.1:%d" % p2])
    ok(r.returncode == 0 and blue(js).get("ok") == 6 and len(other.log) == 6,
       "a lane on another port of the same address gets the 6", (r.stderr, blue(js)))
    prod.log.clear()
    r, js = fastpath(pcap, color + ["--lane", "blue=http://127.0.0.1:%d" % p1,
                                    "--i-know-this-is-production", "--no-shadow-header"])
    ok(r.returncode == 0 and blue(js).get("dropped_loop") == 6 and not prod.log and
       "--no-shadow-header" in r.stderr,
       "--no-shadow-header: traffic to the lane's own target is never shadowed (loop)",
       (r.stderr, blue(js)))
    marked = make_pcap(free_port(avoid=(p1, p2)), 2, 3, b"x-dyetap-shadow: 1\r\n", "m.pcap")
    other.log.clear()
    r, js = fastpath(marked, color + ["--lane", "blue=http://127.0.0.1:%d" % p2])
    ok(r.returncode == 0 and blue(js).get("dropped_loop") == 6 and not other.log,
       "captured requests carrying the marker are never shadowed (loop, 6)", (r.stderr, blue(js)))


def group_redact():
    lane, lport = server()
    # production (the captured server) is another port that is not running
    pcap = make_pcap(free_port(), 2, 2, b"Authorization: Bearer REQ-SECRET-A1\r\n")
    rec = os.path.join(TMP, "mir.dyt")
    rdir = os.path.join(TMP, "rep")
    os.mkdir(rdir)
    r, c = mirror_json(["-r", pcap, "--color", "blue=header:x-lane=blue",
                        "--lane", "blue=http://127.0.0.1:%d" % lport, "-w", rec,
                        "--report-dir", rdir, "--redact-defaults",
                        "--redact", "json:$.secret", "--redact", "query:token:drop"])
    ok(r.returncode == 0 and c.get("lane_blue_ok") == 4, "mirror ran: 4 shadow answers",
       (r.stderr, c))
    hdrs = [h for _, h in lane.log]
    ok(len(hdrs) == 4 and all(h.get("authorization") == "Bearer REQ-SECRET-A1" for h in hdrs) and
       all("REQ-SECRET-Q1" in p for p, _ in lane.log),
       "the lane received the production request unredacted (Authorization, query)",
       lane.log[:1])
    cat = run(["cat", "--json", rec])
    secrets = ["REQ-SECRET-A1", "REQ-SECRET-Q1", "RESP-SECRET-T1", "RESP-SECRET-T2",
               "RESP-SECRET-C1", "PROD-SECRET-C2"]
    leaked = [s for s in secrets if s in cat.stdout]
    ok(cat.returncode == 0 and cat.stdout and not leaked, "-w file holds no secret (%s)" % leaked)
    lines = [json.loads(x) for x in cat.stdout.splitlines() if x.strip()]
    ses = [x for x in lines if "request" in x]
    ok(len(ses) == 4 and all("redacted" in x.get("flags", []) for x in ses),
       "the 4 recorded sessions are flagged redacted", ses[:1])
    ok("[redacted]" in cat.stdout and "access_token" in cat.stdout,
       "values are masked, keys kept")
    rep = open(os.path.join(rdir, "report.json")).read()
    leaked = [s for s in secrets if s in rep]
    ok(not leaked, "report.json holds no secret (%s)" % leaked)
    ok(c.get("redact_sessions") == 4 and c.get("mirror_results_redacted") == 4 and
       c.get("mirror_results_redact_errors") == 0,
       "counters: redact_sessions 4, mirror_results_redacted 4", c)
    # control: without --redact the same run stores and reports the secrets
    lane.log.clear()
    rec2 = os.path.join(TMP, "plain.dyt")
    rdir2 = os.path.join(TMP, "rep2")
    os.mkdir(rdir2)
    r, c = mirror_json(["-r", pcap, "--color", "blue=header:x-lane=blue",
                        "--lane", "blue=http://127.0.0.1:%d" % lport, "-w", rec2,
                        "--report-dir", rdir2])
    plain = run(["cat", "--json", rec2]).stdout
    rep2 = open(os.path.join(rdir2, "report.json")).read()
    shown = ["REQ-SECRET-Q1", "RESP-SECRET-T1", "RESP-SECRET-T2"]
    ok(all(s in plain for s in secrets) and all(s in rep2 for s in shown),
       "control: without --redact the file holds every secret, report.json the query and "
       "JSON ones (it masks Authorization, Cookie, Set-Cookie by itself)")
    info = run(["info", "--json", rec])
    meta = json.loads(info.stdout) if info.returncode == 0 else {}
    red = json.dumps(meta)
    ok("header:authorization:mask" in red and "json:$.secret:mask" in red and
       "query:token:drop" in red, "info lists the redactions in the file metadata", red[:800])




def main():
    try:
        {"guard": group_guard, "redact": group_redact, "fpguard": group_fpguard}[GROUP]()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
