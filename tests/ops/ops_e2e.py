#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Operations live on lo: pause and resume a lane, scrape /metrics.

usage: ops_e2e.py DYETAP GROUP          (TAP output; root)

In a network namespace of its own (created and deleted here, so its lo
carries nothing but this test's traffic), a production server A and a
lane target B (real HTTP/1.1 servers) listen on 127.0.0.1. The program
under test captures lo with `--control SOCK --metrics 127.0.0.1:PORT`:

  5 requests with `x-lane: blue` to A      -> B receives 5
  dyetap ctl SOCK pause blue               -> returns well under 100 ms
  5 more                                   -> B receives none; the lane
                                              counts 5 paused
  dyetap ctl SOCK resume blue, 5 more      -> B receives 5: 10 in all
  GET /metrics, parsed by Prometheus' own parser (python3-prometheus-client)
                                           -> dyetap_lane_mirrored_total
                                              {lane="blue"} 10,
                                              dyetap_lane_paused_total 5,
                                              dyetap_target_ok_total
                                              {lane="blue",target=B} 10
  reload of a changed --config FILE (lane green added with target C,
  blue's target moved to D, a rule for green), on a connection that
  goes on                                  -> the next blue request reaches
                                              D, the green one C; blue's
                                              counters go on, green's start
  reload of a broken config file           -> refused naming file and line
                                              (reply and log); nothing
                                              changes
  after the run, `dyetap cat` of the -w recording holds a session for
  every request A answered, before and after the reloads.

plus the socket's mode (0600), socat speaking the line protocol, `rate`,
`lanes`, `stats`, refusals (an unknown lane, an unknown command), and the
final counters agreeing with the scrape.

mirror     dyetap mirror -i lo
fastpath   dyetap-fastpath on net_pcap iface=lo (FASTPATH in the environment)

Skips cleanly without root, without `ip`, or (fastpath) without DPDK.
Runs with /usr/bin/python3: Debian's prometheus_client is installed there.
"""
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request

DYETAP, GROUP = os.path.abspath(sys.argv[1]), sys.argv[2]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSIDE = len(sys.argv) > 3 and sys.argv[3] == "--inside"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, ok, serve_http  # noqa: E402

EAL = ["--no-huge", "-m", "256", "--no-pci", "--no-telemetry", "--no-shconf",
       "--log-level=*:warning", "--lcores", "0@0,1@1,2@0"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.log.append(self.path)
        body = b"ok %s\n" % self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def send_five(port, tag):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(5):
        c.request("GET", "/%s/%d" % (tag, i), headers={"x-lane": "blue"})
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


def ctl(sock, *words):
    t0 = time.monotonic()
    r = subprocess.run([DYETAP, "ctl", sock] + list(words), capture_output=True, text=True,
                       timeout=20)
    return r, time.monotonic() - t0


def raw(sock, text):
    """@text to the control socket, the reply up to its empty line."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(text.encode())
    buf = b""
    while not buf.endswith(b"\n\n"):
        d = s.recv(4096)
        if not d:
            break
        buf += d
    s.close()
    return buf.decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def parse(text):
    """{(sample name, frozenset(labels)): value} by Prometheus' own parser."""
    from prometheus_client.parser import text_string_to_metric_families
    out, fams = {}, {}
    for fam in text_string_to_metric_families(text):
        fams[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out, fams


def blue(**kw):
    return frozenset(dict(lane="blue", **kw).items())


def tmp(ext):
    return "/tmp/dyetap-ops-%d.%s" % (os.getpid(), ext)


def write_conf(lanes):
    """The --config file both programs read: the rules file and the lanes."""
    with open(tmp("conf"), "w") as f:
        f.write("# written by tests/ops/ops_e2e.py\nrules %s\n" % tmp("rules"))
        for lane, port in lanes:
            f.write("lane %s=http://127.0.0.1:%d\n" % (lane, port))


SERVED = {}  # the production server's log, for the recording check after the run


def run(name, cmd, counters_of, extra=None):
    try:
        import prometheus_client.parser  # noqa: F401
    except ImportError:
        ok(False, "%s: prometheus_client in %s (tests/setup.sh installs "
           "python3-prometheus-client)" % (name, sys.executable))
        return
    a, pa = serve_http(Handler)
    b, pb = serve_http(Handler)
    SERVED["a"] = a.log
    sock = tmp("sock")
    rules = tmp("rules")
    with open(rules, "w") as f:
        f.write("# lane blue: the x-lane header\nblue=header:x-lane=blue\n")
    write_conf([("blue", pb)])
    mport = free_port()
    cmd = [c.replace("@SOCK@", sock).replace("@M@", str(mport)).replace("@CONF@", tmp("conf"))
           .replace("@REC@", tmp("dyt")) for c in cmd]
    err = []
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = threading.Thread(target=lines_of, args=(p.stderr, err), daemon=True)
    t.start()
    stop = threading.Event()

    def trickle():  # lo traffic the capture sees: it is receiving once counted
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while not stop.is_set():
            s.sendto(b"x", ("127.0.0.1", 9))
            time.sleep(0.1)
    threading.Thread(target=trickle, daemon=True).start()
    out = ""
    try:
        def receiving():
            if not os.path.exists(sock):
                return False
            r, _ = ctl(sock, "stats")
            if r.returncode:
                return False
            st = json.loads(r.stdout)
            return st.get("src_packets", st.get("rx", 0)) > 0
        ok(wait_for(receiving, 30), "%s: capturing on lo, control socket answers" % name,
           "".join(err)[-2000:])
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        ok(stat.S_ISSOCK(os.stat(sock).st_mode) and mode == 0o600,
           "%s: the control socket is owner-only (0600)" % name, oct(mode))

        send_five(pa, "one")
        ok(wait_for(lambda: len(b.log) >= 5, 10) and len(b.log) == 5,
           "%s: 5 colored requests reach the lane's target" % name, b.log)
        # B's 5 copies cross lo too (marker: dropped_loop); the capture may
        # still be on them: pause only once each is counted, or a late one
        # would count as paused (a drop too, but not the 5 checked below).
        ok(wait_for(lambda: counters_of(sock).get("dropped_loop", 0) >= 5, 10),
           "%s: the 5 copies seen on lo are counted dropped_loop" % name, counters_of(sock))

        # The protocol's own round trip (the dyetap ctl process adds its
        # start-up, slow under ASan): connect, "pause blue", the reply.
        t0 = time.monotonic()
        rep = raw(sock, "pause blue\n")
        secs = time.monotonic() - t0
        ok(rep == "ok\nlane blue paused\n\n", "%s: pause blue over the socket" % name, rep)
        ok(secs < 0.1, "%s: the pause is in force %.1f ms after it was sent" % (name, secs * 1000))
        r, _ = ctl(sock, "pause", "blue")
        ok(r.returncode == 0 and r.stdout == "lane blue paused\n",
           "%s: dyetap ctl pause blue (again: no change)" % name, r.stdout + r.stderr)
        r, _ = ctl(sock, "lanes")
        lanes = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
        ok(r.returncode == 0 and len(lanes) == 1 and lanes[0]["lane"] == "blue" and
           lanes[0]["state"] == "paused" and
           lanes[0]["targets"] == ["http://127.0.0.1:%d" % pb] and
           lanes[0]["mirrored"] == 5 and "queued" in lanes[0] and "rate" in lanes[0],
           "%s: lanes shows blue paused with its target and counters" % name, r.stdout)

        send_five(pa, "two")
        wait_for(lambda: counters_of(sock).get("paused", 0) >= 5, 10)
        time.sleep(0.5)
        ok(len(b.log) == 5, "%s: paused, the next 5 reach nothing" % name, b.log)
        c = counters_of(sock)
        # colored: A's 10 and the 5 copies B got (they carry x-lane too, and
        # the marker: dropped_loop); while paused nothing reaches B.
        ok(c.get("paused") == 5 and c.get("colored") == 15 and
           c.get("mirrored") == 5 and c.get("dropped_loop") == 5,
           "%s: ... counted paused 5, never queued" % name, c)

        r, _ = ctl(sock, "resume", "blue")
        ok(r.returncode == 0 and "running" in r.stdout, "%s: dyetap ctl resume blue" % name,
           r.stdout + r.stderr)
        send_five(pa, "three")
        ok(wait_for(lambda: len(b.log) >= 10, 10) and len(b.log) == 10 and
           sorted(b.log) == sorted(["/one/%d" % i for i in range(5)] +
                                   ["/three/%d" % i for i in range(5)]),
           "%s: resumed, 5 more reach it: 10 in all, none of the paused ones" % name, b.log)
        wait_for(lambda: counters_of(sock).get("ok", 0) >= 10, 10)

        ctype, text = scrape(mport)
        ok(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
           "%s: /metrics in the text exposition format 0.0.4" % name, ctype)
        try:
            m, fams = parse(text)
        except Exception as e:  # the parser's refusal is the finding
            m, fams = {}, {}
            ok(False, "%s: Prometheus' parser reads /metrics" % name, "%s\n%s" % (e, text))
        ok(m.get(("dyetap_lane_mirrored_total", blue())) == 10 and
           fams.get("dyetap_lane_mirrored") == "counter",
           "%s: scraped dyetap_lane_mirrored_total{lane=\"blue\"} 10" % name,
           [(k, v) for k, v in m.items() if "blue" in str(k)][:40])
        # lane_blue_paused -> dyetap_lane_paused_total{lane="blue"} (docs/operations.md)
        ok(m.get(("dyetap_lane_paused_total", blue())) == 5 and
           fams.get("dyetap_lane_paused") == "counter" and
           ("dyetap_lane_dropped_total", blue(reason="paused")) not in m and
           m.get(("dyetap_lane_ok_total", blue())) == 10 and
           m.get(("dyetap_lane_dropped_total", blue(reason="loop"))) == 10 and
           m.get(("dyetap_lane_colored_total", blue())) == 25,
           "%s: ... paused 5 (dyetap_lane_paused_total), ok 10, colored 25 (10 copies: loop)"
           % name, [(k, v) for k, v in m.items() if "blue" in str(k)][:40])
        burl = "http://127.0.0.1:%d" % pb
        ok(m.get(("dyetap_target_ok_total", blue(target=burl))) == 10 and
           m.get(("dyetap_target_sent_total", blue(target=burl))) == 10 and
           m.get(("dyetap_target_errors_total", blue(target=burl))) == 0 and
           m.get(("dyetap_target_active", blue(target=burl))) == 1,
           "%s: ... the target labelled: dyetap_target_ok_total{lane=\"blue\",target=B} 10"
           % name, [(k, v) for k, v in m.items() if "target" in k[0]])
        ok(m.get(("dyetap_lane_open", blue())) == 1 and fams.get("dyetap_lane_open") == "gauge",
           "%s: ... lane state gauge dyetap_lane_open 1 (running)" % name)
        ok(any(k[0] == "dyetap_build_info" and dict(k[1]).get("version") for k in m),
           "%s: ... build info with the version" % name)
        # The dashboard's metrics (dist/grafana) are served: mirror serves
        # all but the fast path's own, the fast path its own and the lanes'.
        dash = json.load(open(os.path.join(ROOT, "dist", "grafana", "dyetap-lanes.json")))
        want = set(n for pn in dash["panels"] for t in pn["targets"]
                   for n in re.findall(r"\b[a-z_][a-z0-9_]*(?=\{)", t["expr"]))
        want = set(n for n in want if n.startswith("dyetap_fp_") == (name == "fastpath") or
                   n.startswith(("dyetap_lane_", "dyetap_build_")))
        have = set(k[0] for k in m)
        ok(want and want <= have, "%s: the dashboard's %d metrics of it are in the scrape"
           % (name, len(want)), sorted(want - have))
        bad = [f for f in fams if not f.startswith("dyetap_")]
        ok(not bad and all(t in ("counter", "gauge") for t in fams.values()),
           "%s: every family named dyetap_..., typed counter or gauge" % name, bad)

        if shutil.which("socat"):
            r = subprocess.run(["socat", "-t", "2", "-", "UNIX-CONNECT:" + sock],
                               input="lanes\nbogus\n", capture_output=True, text=True,
                               timeout=20)
            parts = r.stdout.split("\n\n")
            ok(r.returncode == 0 and parts[0].startswith("ok\n{\"lane\":\"blue\"") and
               parts[1].startswith("error: unknown command 'bogus'"),
               "%s: socat speaks the line protocol (two commands, two replies)" % name,
               r.stdout + r.stderr)
        else:
            ok(False, "%s: socat installed (tests/setup.sh)" % name)

        r, _ = ctl(sock, "rate", "blue", "50/s")
        r2, _ = ctl(sock, "lanes", "blue")
        ok(r.returncode == 0 and json.loads(r2.stdout)["rate"] == 50,
           "%s: rate blue 50/s changes the lane's rate" % name, r.stdout + r2.stdout)
        r, _ = ctl(sock, "pause", "green")
        ok(r.returncode == 2 and "no lane 'green'" in r.stderr,
           "%s: an unknown lane is refused, exit 2" % name, r.stderr)
        r, _ = ctl(sock + ".none", "lanes")
        ok(r.returncode == 3 and "cannot connect" in r.stderr,
           "%s: no socket: exit 3, says what to check" % name, r.stderr)
        r, _ = ctl(sock, "rate", "blue", "0")
        for f in extra or []:
            f(name, sock, p, pa, a, b, err, mport)
    finally:
        stop.set()
        p.send_signal(signal.SIGINT)
        try:
            out = p.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[0]
        t.join(10)
    ok(p.returncode == 0, "%s: SIGINT ends it cleanly" % name, "".join(err)[-2000:])
    ok(not os.path.exists(sock), "%s: the socket file is removed at exit" % name)
    return out


def mirror_lane(sock):
    r, _ = ctl(sock, "stats")
    if r.returncode:
        return {}
    js = json.loads(r.stdout)
    return {k[len("lane_blue_"):]: v for k, v in js.items() if k.startswith("lane_blue_")}


def fastpath_lane(sock):
    r, _ = ctl(sock, "lanes", "blue")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def reload_checks(name, sock, p, pa, a, b, err, mport):
    """reload and SIGHUP recolor the next requests of a connection that goes on."""
    rules = sock.replace(".sock", ".rules")
    conn = http.client.HTTPConnection("127.0.0.1", pa, timeout=10)

    def get(path, lane):
        conn.request("GET", path, headers={"x-lane": lane})
        conn.getresponse().read()
    n0 = len(b.log)
    get("/before", "blue")
    ok(wait_for(lambda: len(b.log) == n0 + 1, 10), "reload: a blue request on a new connection")
    with open(rules, "w") as f:
        f.write("blue=header:x-lane=green\n")
    r, _ = ctl(sock, "reload")
    ok(r.returncode == 0 and r.stdout == "reloaded: 1 rules, lanes blue\n",
       "reload: dyetap ctl reload", r.stdout + r.stderr)
    get("/after-blue", "blue")
    get("/after-green", "green")
    ok(wait_for(lambda: len(b.log) == n0 + 2, 10) and b.log[-1] == "/after-green",
       "reload: the same connection's next requests are colored by the new rules", b.log[n0:])
    with open(rules, "w") as f:
        f.write("blue=header:x-lane=blue\nthis is not a rule\n")
    r, _ = ctl(sock, "reload")
    ok(r.returncode == 2 and (rules + ":2") in r.stderr and "nothing changed" in r.stderr,
       "reload: a bad rules file is refused naming file and line", r.stderr)
    get("/still-green", "green")
    ok(wait_for(lambda: len(b.log) == n0 + 3, 10), "reload: ... and the running rules stay",
       b.log[n0:])
    with open(rules, "w") as f:
        f.write("blue=header:x-lane=blue\n")
    p.send_signal(signal.SIGHUP)
    ok(wait_for(lambda: sum("reload: reloaded:" in x for x in err) == 2, 10),
       "reload: SIGHUP reloads too", "".join(err)[-500:])
    get("/hup-green", "green")
    get("/hup-blue", "blue")
    ok(wait_for(lambda: len(b.log) == n0 + 4, 10) and b.log[-1] == "/hup-blue",
       "reload: after SIGHUP blue is blue again, on the same connection", b.log[n0:])
    conn.close()
    time.sleep(0.5)
    st = json.loads(ctl(sock, "stats")[0].stdout)
    ok(st.get("mirror_reloads") == 2 and st.get("mirror_reload_errors") == 1,
       "reload: counted (mirror_reloads 2, mirror_reload_errors 1)",
       {k: v for k, v in st.items() if "reload" in k})
    # the /metrics scrape went over lo too: one more session
    want = len(a.log) + len(b.log) + st.get("ctl_scrapes", 0)
    ok(st.get("pipe_sessions") == want and st.get("pipe_sink_errors") == 0,
       "reload: no flow lost: a session for every request A, B and /metrics served (%d)"
       % want, {k: v for k, v in st.items() if k.startswith("pipe_")})


def config_reload_checks(name, sock, p, pa, a, b, err, mport):
    """reload of a changed --config: a new lane and a moved target, at once."""
    c, pc = serve_http(Handler)
    d, pd = serve_http(Handler)
    conn = http.client.HTTPConnection("127.0.0.1", pa, timeout=10)

    def get(path, lane):
        conn.request("GET", path, headers={"x-lane": lane})
        conn.getresponse().read()
    nb = len(b.log)
    get("/cfg-before", "blue")
    ok(wait_for(lambda: len(b.log) == nb + 1, 10),
       "%s: config: before the reload blue goes to B" % name, b.log[nb:])
    before = json.loads(ctl(sock, "lanes", "blue")[0].stdout or "{}")
    with open(tmp("rules"), "w") as f:
        f.write("blue=header:x-lane=blue\ngreen=header:x-lane=green\n")
    write_conf([("blue", pd), ("green", pc)])
    r, secs = ctl(sock, "reload")
    ok(r.returncode == 0 and r.stdout == "reloaded: 2 rules, lanes blue green\n",
       "%s: config: reload adds lane green and moves blue to D" % name, r.stdout + r.stderr)
    ok(any("reload: reloaded: 2 rules, lanes blue green" in x for x in err),
       "%s: config: ... and says so in the log" % name, "".join(err)[-500:])
    get("/cfg-blue", "blue")
    get("/cfg-green", "green")
    ok(wait_for(lambda: len(d.log) == 1 and len(c.log) == 1, 10) and
       d.log == ["/cfg-blue"] and c.log == ["/cfg-green"] and len(b.log) == nb + 1,
       "%s: config: the same connection's next requests reach D (blue) and C (green), "
       "B nothing more" % name, (b.log[nb:], c.log, d.log))
    r, _ = ctl(sock, "lanes")
    lanes = {x["lane"]: x for x in map(json.loads, r.stdout.splitlines()) if x}
    bl, gr = lanes.get("blue", {}), lanes.get("green", {})
    ok(bl.get("targets") == ["http://127.0.0.1:%d" % pd] and
       bl.get("mirrored") == before.get("mirrored", -1) + 1 and
       bl.get("paused") == before.get("paused", -1) and
       gr.get("state") == "running" and gr.get("mirrored") == 1 and gr.get("paused") == 0,
       "%s: config: blue's counters go on (mirrored %s + 1), green's start at 0" %
       (name, before.get("mirrored")), r.stdout)
    ctype, text = scrape(mport)
    m, fams = parse(text)
    green = frozenset(dict(lane="green", target="http://127.0.0.1:%d" % pc).items())
    ok(wait_for(lambda: parse(scrape(mport)[1])[0].get(("dyetap_target_ok_total", green)) == 1, 10),
       "%s: config: green's target counted with its target label" % name)
    m, fams = parse(scrape(mport)[1])
    ok(m.get(("dyetap_target_active", blue(target="http://127.0.0.1:%d" % b.server_port)))
       == 0 and m.get(("dyetap_target_ok_total",
                       blue(target="http://127.0.0.1:%d" % b.server_port))) == len(b.log) and
       m.get(("dyetap_target_active", blue(target="http://127.0.0.1:%d" % pd))) == 1,
       "%s: config: B stays in the scrape with its counts, no longer active; D is" % name,
       [(k, v) for k, v in m.items() if "target" in k[0]])

    # A broken file: refused with file and line, in the reply and the log; nothing changes.
    with open(tmp("conf"), "a") as f:
        f.write("bogus-option 1\n")
    line = len(open(tmp("conf")).read().splitlines())
    where = "%s:%d:" % (tmp("conf"), line)
    r, _ = ctl(sock, "reload")
    ok(r.returncode == 2 and where in r.stderr and "nothing changed" in r.stderr,
       "%s: config: a broken file is refused naming file and line" % name, r.stderr)
    ok(wait_for(lambda: any(where in x for x in err), 5),
       "%s: config: ... in the log too" % name, "".join(err)[-500:])
    get("/cfg-after-bad", "blue")
    ok(wait_for(lambda: len(d.log) == 2, 10) and d.log[-1] == "/cfg-after-bad" and
       len(b.log) == nb + 1, "%s: config: ... and blue still goes to D" % name, d.log)
    conn.close()


def recording_checks(name):
    """Every request A answered is a session of the -w recording (dyetap cat)."""
    r = subprocess.run([DYETAP, "cat", tmp("dyt"), "--json", "--no-body"], capture_output=True,
                       text=True, timeout=60)
    recs = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    paths = set(x["request"]["target"] for x in recs if "request" in x)
    served = SERVED.get("a", [])
    ok(r.returncode == 0 and served and set(served) <= paths and
       {"/one/0", "/three/4", "/cfg-before", "/cfg-blue", "/cfg-green",
        "/cfg-after-bad"} <= paths,
       "%s: dyetap cat: the recording holds all %d requests, before and after the reloads"
       % (name, len(served)), (r.returncode, sorted(set(served) - paths), sorted(paths)[:40],
                                r.stderr[-300:]))


def inside_mirror():
    out = run("mirror", [DYETAP, "mirror", "-i", "lo", "--config", "@CONF@", "-w", "@REC@",
                         "--control", "@SOCK@", "--metrics", "127.0.0.1:@M@", "--json",
                         "--drain-timeout", "2s"],
              mirror_lane, [reload_checks, config_reload_checks])
    js = json.loads(out) if out and out.strip().startswith("{") else {}
    drops = sum(v for k, v in js.items() if k.startswith("lane_blue_dropped_"))
    ok(js.get("lane_blue_mirrored") == 17 and js.get("lane_blue_paused") == 5 and
       "lane_blue_dropped_paused" not in js and
       js.get("lane_blue_colored") == 17 + 5 + drops and js.get("lane_green_mirrored") == 1 and
       js.get("mirror_reloads") == 3 and js.get("mirror_reload_errors") == 2 and
       js.get("ctl_commands", 0) > 5,
       "mirror: the final counters agree (blue mirrored 17, paused 5; green 1; reloads 3)",
       {k: v for k, v in js.items() if k.startswith(("lane_", "ctl_", "mirror_rel"))})
    recording_checks("mirror")


def inside_fastpath():
    fp = os.environ.get("FASTPATH")
    out = run("fastpath", [fp] + EAL + ["--vdev", "net_pcap0,iface=lo", "--", "--rx", "0",
                                        "--config", "@CONF@", "-w", "@REC@",
                                        "--control", "@SOCK@", "--metrics", "127.0.0.1:@M@",
                                        "--json", "--drain-timeout", "2s"],
              fastpath_lane, [config_reload_checks])
    js = {}
    for line in (out or "").splitlines():
        if line.startswith("{"):
            js = json.loads(line)
    lane = js.get("shadow", {}).get("lanes", {}).get("blue", {})
    drops = sum(v for k, v in lane.items() if k.startswith("dropped_"))
    green = js.get("shadow", {}).get("lanes", {}).get("green", {})
    ok(lane.get("mirrored") == 13 and lane.get("paused") == 5 and
       "dropped_paused" not in lane and lane.get("colored") == 13 + 5 + drops and
       green.get("mirrored") == 1 and js.get("reloads") == 1 and js.get("reload_errors") == 1,
       "fastpath: the final counters agree (blue mirrored 13, paused 5; green 1; reloads 1)",
       (lane, green, js.get("reloads"), js.get("reload_errors")))
    recording_checks("fastpath")


def outside():
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("1..0 # SKIP needs root and iproute2 (a network namespace of its own)")
        return 0
    if GROUP == "fastpath" and not os.environ.get("FASTPATH"):
        print("1..0 # SKIP built without DPDK")
        return 0
    ns = "dtops-%x" % (os.getpid() & 0xFFFFFF)
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
    {"mirror": inside_mirror, "fastpath": inside_fastpath}[GROUP]()
    sys.exit(finish())


if __name__ == "__main__":
    main()
