#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The verdict end to end (issue 16): record -> replay -> diff with the real
programs against real HTTP servers on 127.0.0.1, each change of the verdict
shown red where it must be red and green where it must be green.

Groups (one meson test each):
  failclosed  every request refused / a self-signed TLS target: replay exits 3
              naming the causes, a gate over 0 compared pairs trips ("no
              evidence"); against the real baseline build the gate holds
  exclusions  replay --lane / --shard: exclusions shown, never data_incomplete;
              a results file cut short: data_incomplete names it
  custody     (root) a live `record -i lo` with a 1 MB kernel buffer under big
              responses: the kernel drops reach the diff report; a quiet
              capture: data complete
  candidates  two named targets get one verdict each (JSON, JUnit, HTML, gates);
              a second unnamed target is refused
  shards      the Kubernetes Indexed Job of docs/replay-shards-job.yaml run as
              local processes (JOB_COMPLETION_INDEX set as Kubernetes sets it):
              the merge equals the unsharded report; a missing shard, a shard of
              another recording
  secrets     a hostile candidate answering with secrets, and a recording full
              of them: no secret in any file or report with redaction, all of
              them without (the control)
  wellformed  every code point class from a candidate through the JSON, JUnit,
              HTML and terminal renderings, parsed by Python's json and xml
              modules and xmllint
  writers     two writers of one file: the second fails at once
  fulldisk    (root) record and replay onto a small tmpfs: the count printed is
              the count lost
  sizes       --max-body takes the k/M/G suffixes everywhere
  volatile    without a secondary, a random 32-character token is judged
              volatile noise (green), but a one-character change in a
              1 000-character base64 field is real (red: docs/diff.md "Likely
              noise" judges only values up to 256 characters by their look)

usage: verdict_e2e.py DYETAP SOURCE_ROOT GROUP    (TAP output)
"""
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

DYETAP, ROOT, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(ROOT, "tests", "capture"))
import gen_pcap as g  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, free_port, ok, serve_http  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dyetap-verdict-")
DEMO = os.path.join(ROOT, "tests", "demo")
DEMO_PCAP = os.path.join(DEMO, "demo.pcap")


def path(name):
    return os.path.join(TMP, name)


def run(*args, timeout=120, env=None):
    p = subprocess.run([DYETAP] + list(args), capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def load(name):
    with open(path(name), encoding="utf-8") as f:
        return json.load(f)


def record_demo(name, *extra):
    out = path(name)
    rc, _, err = run("record", "-r", DEMO_PCAP, "-w", out, "--color",
                     "blue=header:x-lane=blue", *extra)
    ok(rc == 0, "record the demo capture into %s" % name, err)
    return out


def wait_port(port):
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class Demo:
    """The demo shop (tests/demo/service.py), baseline or candidate build."""

    def __init__(self, build):
        self.port = free_port(avoid=(demo_prod_port(),))
        self.p = subprocess.Popen([sys.executable, os.path.join(DEMO, "service.py"), "--build",
                                   build, "--port", str(self.port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise RuntimeError("demo service did not start")
        self.url = "http://127.0.0.1:%d" % self.port

    def close(self):
        self.p.kill()
        self.p.wait()


_prod = []


def demo_prod_port():
    """The recorded production server's port (a target must not be it)."""
    if not _prod:
        rc, out, _ = run("cat", "--json", "--type", "session", DEMO_PCAP_REC())
        first = json.loads(out.splitlines()[0]) if rc == 0 and out else {"dst": ":0"}
        _prod.append(int(first["dst"].rsplit(":", 1)[1]))
    return _prod[0]


_rec = []


def DEMO_PCAP_REC():
    if not _rec:
        out = path("demo-probe.dyt")
        subprocess.run([DYETAP, "record", "-r", DEMO_PCAP, "-w", out], capture_output=True)
        _rec.append(out)
    return _rec[0]


def det_handler(variant):
    """A deterministic shop: every answer depends on the request only (no
    Date, no ids), so two runs answer byte for byte the same."""

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            p = self.path.split("?")[0]
            if p.endswith(".txt"):
                body, ct = ("daily report\nrefunds: %d\nend\n" % (4 if variant else 3)).encode(), \
                    "text/plain"
            else:
                body = json.dumps({"path": p, "v": variant, "items": [1, 2, len(p)]}).encode()
                ct = "application/json"
            self.send_response_only(200)
            self.send_header("Content-Type", ct)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_HEAD = answer

    return H


def strip_run(rep):
    """A report without what differs between two runs of the same replay:
    latency, the input names and each file's own counters."""
    rep = json.loads(json.dumps(rep))

    def scrub(o):
        if isinstance(o, dict):
            o.pop("latency", None)
            for v in o.values():
                scrub(v)
        elif isinstance(o, list):
            for v in o:
                scrub(v)
    for k in ("inputs", "scope", "shards", "exclusions"):
        rep.pop(k, None)
    rep["accounting"].pop("counters", None)
    scrub(rep)
    return rep


# ---------------------------------------------------------------------------

def group_failclosed():
    rec = record_demo("rec.dyt")
    dead = free_port(avoid=(demo_prod_port(),))
    res = path("refused.dyt")
    rc, out, err = run("replay", rec, "-t", "http://127.0.0.1:%d" % dead, "-o", res, "--max", "-q")
    ok(rc == 3 and "every request failed (240 of 240)" in err and
       "240 refused: connection refused" in err,
       "every request refused: replay exits 3 and names the cause with its count", (rc, err))
    rc, out, err = run("diff", res, "--fail-on", "diff_rate>0.1%", "--json", path("r.json"),
                       "--junit", path("r.xml"))
    rep = load("r.json") if os.path.exists(path("r.json")) else {}
    gate = (rep.get("gates") or [{}])[0]
    ok(rc == 1 and "no evidence: 0 responses compared" in out and gate.get("tripped") and
       gate.get("no_evidence") and rep["candidates"][0]["verdict"] == "fail",
       "red: a gate over 0 compared pairs trips, 'no evidence'", (rc, out[:600]))
    ok(rep.get("data_incomplete") and any("240 replayed requests failed (refused: 240)" in r
                                          for r in rep.get("incomplete_reasons", [])),
       "the report names the failed requests", rep.get("incomplete_reasons"))
    junit = open(path("r.xml"), encoding="utf-8").read() if os.path.exists(path("r.xml")) else ""
    ok('message="no evidence: 0 responses compared"' in junit,
       "JUnit names the gate's failure 'no evidence'", junit[:400])

    base = Demo("baseline")
    try:
        res = path("base.dyt")
        rc, out, err = run("replay", rec, "-t", base.url, "-o", res, "--max", "-q")
        ok(rc == 0 and "every request failed" not in err, "green: replay against the real "
           "baseline build exits 0", (rc, err))
        rc, out, err = run("diff", res, "--fail-on", "diff_rate>0.1%",
                           "--fail-on", "data_incomplete>0")
        ok(rc == 0 and "compared 240 responses" in out and "0 differ" in out and
           "no evidence" not in out,
           "green: the same build, volatile fields noise: the gates hold, exit 0", (rc, out[:500]))
    finally:
        base.close()

    # TLS with a self-signed certificate: every request fails as tls.
    cert, key = path("cert.pem"), path("key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-subj", "/CN=localhost", "-days", "1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        ok(True, "# SKIP openssl cannot make a certificate")
        return
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), det_handler(0))
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.handle_error = lambda *a: None
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rc, out, err = run("replay", rec, "-t", "https://127.0.0.1:%d" % srv.server_address[1],
                           "-o", path("tls.dyt"), "--max", "-q")
        norm = err.replace("self signed", "self-signed")
        ok(rc == 3 and re.search(r"\n  240 tls: certificate verification failed: self-signed "
                                 r"certificate", norm) is not None,
           "self-signed HTTPS target: exit 3, '240 tls: ... self-signed certificate'", (rc, err))
    finally:
        srv.shutdown()


def group_exclusions():
    rec = record_demo("rec.dyt")
    base = Demo("baseline")
    try:
        res = path("blue.dyt")
        rc, _, err = run("replay", rec, "-t", base.url, "--lane", "blue", "-o", res, "--max", "-q")
        ok(rc == 0, "replay --lane blue", err)
        rc, out, err = run("diff", res, "--fail-on", "data_incomplete>0", "--json", path("b.json"))
        rep = load("b.json") if os.path.exists(path("b.json")) else {}
        ex = {e["name"]: e["value"] for e in rep.get("exclusions", [])}
        ok(rc == 0 and not rep.get("data_incomplete") and ex.get("skipped_filter") == 108 and
           rep["summary"]["compared"] == 132,
           "green: a filtered replay (--lane blue): 108 excluded, shown, data complete, the "
           "docs' data_incomplete gate holds", (rc, out[:400], ex))
        ok("excluded by choice (not a loss):" in out and "skipped_filter = 108" in out,
           "the terminal shows the exclusion as such", out[:400])
        res = path("shard.dyt")
        rc, _, err = run("replay", rec, "-t", base.url, "--shard", "1/3", "-o", res, "--max", "-q")
        rc, out, err = run("diff", res, "--fail-on", "data_incomplete>0", "--json", path("s.json"))
        rep = load("s.json") if os.path.exists(path("s.json")) else {}
        ex = {e["name"]: e["value"] for e in rep.get("exclusions", [])}
        ok(rc == 0 and not rep.get("data_incomplete") and ex.get("skipped_shard", 0) > 0 and
           any("shard 1/3" in line for line in rep.get("scope", [])),
           "green: one shard alone: its scope said, the other shards an exclusion", (rc, ex))
        # a loss beside the exclusion: the results file cut short
        data = open(path("blue.dyt"), "rb").read()
        open(path("cut.dyt"), "wb").write(data[: len(data) * 2 // 3])
        rc, out, err = run("diff", path("cut.dyt"), "--fail-on", "data_incomplete>0",
                           "--json", path("c.json"))
        rep = load("c.json") if os.path.exists(path("c.json")) else {}
        ok(rc == 1 and rep.get("data_incomplete") and
           any("cut short" in r for r in rep.get("incomplete_reasons", [])) and
           not any("skipped_filter" in r for r in rep.get("incomplete_reasons", [])),
           "red: a cut results file is a loss and named; the filter stays an exclusion",
           rep.get("incomplete_reasons"))
        # mirror: lane selection is an exclusion too, and each lane a verdict
        out = path("mirror.dyt")
        rc, _, err = run("mirror", "-r", DEMO_PCAP, "--color", "blue=header:x-lane=blue",
                         "--lane", "blue=" + base.url, "-w", out)
        ok(rc == 0, "mirror the demo capture's blue lane to the baseline build", err)
        rc, out_t, _ = run("diff", out, "--fail-on", "data_incomplete>0", "--json",
                           path("m.json"))
        rep = load("m.json") if os.path.exists(path("m.json")) else {}
        ex = {e["name"]: e["value"] for e in rep.get("exclusions", [])}
        ok(rc == 0 and not rep.get("data_incomplete") and ex.get("skipped_lane") == 108 and
           [c["role"] for c in rep.get("candidates", [])] == ["blue"] and
           rep["summary"]["compared"] == 132,
           "green: a mirror's unshadowed lane (108 uncolored) is an exclusion, the blue lane "
           "its own verdict", (rc, ex, out_t[:300]))
    finally:
        base.close()


def group_custody():
    if os.geteuid() != 0:
        print("1..0 # SKIP live capture on lo needs root")
        sys.exit(0)
    big = b"x" * (2 << 20)

    class Big(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            body = big if self.path.startswith("/big") else b"small\n"
            self.send_response_only(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv, port = serve_http(Big)
    try:
        def capture(name, buffer_mb, paths, rounds, threads):
            out = path(name)
            p = subprocess.Popen([DYETAP, "record", "-i", "lo", "tcp port %d" % port, "-w", out,
                                  "--buffer-mb", str(buffer_mb)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)

            def client():
                import http.client
                for _ in range(rounds):
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    for pth in paths:
                        c.request("GET", pth)
                        c.getresponse().read()
                    c.close()
            ts = [threading.Thread(target=client) for _ in range(threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            time.sleep(1.0)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=60)
            return out, err

        rec, err = capture("drops.dyt", 1, ["/big"] * 8, 6, 6)
        rc, out, _ = run("info", "--json", rec)
        ctr = json.loads(out).get("counters", {}) if rc == 0 else {}
        drops = ctr.get("src_kernel_drops", 0)
        if not ok(drops > 0, "a 1 MB buffer under 2 MiB answers: the kernel dropped %d packets"
                  % drops, err):
            return
        cand, cport = serve_http(Big)
        res = path("drops-res.dyt")
        run("replay", rec, "-t", "http://127.0.0.1:%d" % cport, "-o", res, "--max", "-q")
        rc, out, _ = run("diff", res, "--fail-on", "data_incomplete>0", "--json", path("d.json"),
                         "--junit", path("d.xml"), "--html", path("d.html"))
        rep = load("d.json") if os.path.exists(path("d.json")) else {}
        line = "recording %s: src_kernel_drops = %d" % (rec, drops)
        ok(rc == 1 and rep.get("data_incomplete") and line in rep.get("incomplete_reasons", []),
           "red: the capture's kernel drops reach the diff report: '%s'" % line,
           rep.get("incomplete_reasons"))
        ok(rep.get("recordings") and rep["recordings"][0]["file"] == rec and
           len(rep["recordings"][0]["id"]) == 32,
           "the report names the recording replayed and its id", rep.get("recordings"))
        for f, what in (("d.xml", "JUnit"), ("d.html", "HTML")):
            text = open(path(f), encoding="utf-8").read()
            ok("src_kernel_drops = %d" % drops in text, "%s names the kernel drops" % what)
        ok(line in out, "so does the terminal")
        cand.shutdown()

        rec, _ = capture("quiet.dyt", 64, ["/small"] * 5, 2, 2)
        rc, out, _ = run("info", "--json", rec)
        ctr = json.loads(out).get("counters", {}) if rc == 0 else {}
        cand, cport = serve_http(Big)
        res = path("quiet-res.dyt")
        run("replay", rec, "-t", "http://127.0.0.1:%d" % cport, "-o", res, "--max", "-q")
        rc, out, _ = run("diff", res, "--fail-on", "data_incomplete>0", "--json", path("q.json"))
        rep = load("q.json") if os.path.exists(path("q.json")) else {}
        ok(ctr.get("src_kernel_drops", -1) == 0 and rc == 0 and not rep.get("data_incomplete") and
           rep["summary"]["compared"] == 20,
           "green: a quiet capture, no drop: 20 compared, data complete", (rc, ctr, out[:300]))
        cand.shutdown()
    finally:
        srv.shutdown()


def group_candidates():
    rec = record_demo("rec.dyt")
    v2, v3, sec = Demo("baseline"), Demo("candidate"), Demo("baseline")
    try:
        res = path("two.dyt")
        rc, _, err = run("replay", rec, "-t", "v2=" + v2.url, "-t", "v3=" + v3.url,
                         "--baseline", sec.url, "-o", res, "--max", "-q")
        ok(rc == 0, "replay to two named candidates and a baseline", err)
        rc, out, err = run("diff", res, "--fail-on", "differing>0", "--json", path("two.json"),
                           "--junit", path("two.xml"), "--html", path("two.html"))
        rep = load("two.json") if os.path.exists(path("two.json")) else {}
        cands = {c["role"]: c for c in rep.get("candidates", [])}
        ok(rc == 1 and set(cands) == {"v2", "v3"}, "one verdict per candidate, a gate trips: "
           "exit 1", (rc, list(cands)))
        c2, c3 = cands.get("v2", {}), cands.get("v3", {})
        ok(c2.get("verdict") == "pass" and c2["summary"]["compared"] == 240 and
           c2["summary"]["differing"] == 0 and c2.get("target") == v2.url and
           not any(g["tripped"] for g in c2["gates"]),
           "green: v2 (the baseline build) passes its gate on its 240 pairs", c2.get("summary"))
        sigs3 = {(d["endpoint"], d["location"]) for d in c3.get("differences", [])
                 if not d["noise"]}
        ok(c3.get("verdict") == "fail" and c3["summary"]["compared"] == 240 and
           ("GET /api/search", "status") in sigs3 and all(g["tripped"] for g in c3["gates"]),
           "red: v3 (the changed build) fails its gate with its own differences", c3.get("summary"))
        ok(rep["summary"]["compared"] == 480 and
           {d["candidate"] for d in rep["differences"]} <= {"v2", "v3"},
           "the top level adds both up, every difference names its candidate")
        suites = ET.parse(path("two.xml")).getroot().findall("testsuite")
        props = [{p.get("name"): p.get("value") for p in s.find("properties")} for s in suites]
        ok([p["candidate"] for p in props] == ["v2", "v3"] and
           [p["verdict"] for p in props] == ["pass", "fail"],
           "JUnit: one testsuite per candidate", props)
        html = open(path("two.html"), encoding="utf-8").read()
        ok('id="candidates"' in html and 'id="summary"' in html and 'id="summary-1"' in html,
           "HTML: a verdict table and a section per candidate")
        rc, out, err = run("replay", rec, "-t", v2.url, "-t", v3.url, "-o", path("x.dyt"), "-q")
        ok(rc == 2 and "two targets have no role" in err and "-t v2=" in err and
           not os.path.exists(path("x.dyt")),
           "a second unnamed target is refused, saying how to name it", err)
        res = path("same.dyt")
        run("replay", rec, "-t", "v2=" + v2.url, "-t", "v4=" + sec.url, "--baseline", v2.url,
            "-o", res, "--max", "-q")
        rc, out, _ = run("diff", res, "--fail-on", "differing>0")
        ok(rc == 0 and out.count("== candidate") == 2 and "fail ==" not in out,
           "green: two candidates of the baseline build both pass, exit 0", out[:400])
    finally:
        for d in (v2, v3, sec):
            d.close()


def manifest_script():
    """The container command of docs/replay-shards-job.yaml and its SHARDS."""
    text = open(os.path.join(ROOT, "docs", "replay-shards-job.yaml"), encoding="utf-8").read()
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.strip() == "args:")
    body_indent = None
    script = []
    for ln in lines[i + 2:]:
        if not ln.strip():
            continue
        ind = len(ln) - len(ln.lstrip())
        if body_indent is None:
            body_indent = ind
        if ind < body_indent:
            break
        script.append(ln[body_indent:])
    shards = int(re.search(r'name: SHARDS\s+value: "(\d+)"', text).group(1))
    completions = int(re.search(r"completions: (\d+)", text).group(1))
    return "\n".join(script) + "\n", shards, completions, "completionMode: Indexed" in text


def group_shards():
    rec = record_demo("rec.dyt")
    srv, port = serve_http(det_handler(1))
    url = "http://127.0.0.1:%d" % port
    script, shards, completions, indexed = manifest_script()
    ok(indexed and shards == completions and "$JOB_COMPLETION_INDEX/$SHARDS" in script,
       "the manifest is an Indexed Job whose pods take shard $JOB_COMPLETION_INDEX of "
       "$SHARDS (= completions, %d)" % completions)
    try:
        rc, _, err = run("replay", rec, "-t", "candidate=" + url, "-o", path("all.dyt"), "--max",
                         "-q")
        ok(rc == 0, "the unsharded replay", err)
        results = path("results")
        os.mkdir(results)
        env = dict(os.environ, PATH=os.path.dirname(DYETAP) + os.pathsep + os.environ["PATH"],
                   SHARDS=str(shards), RECORDING=rec, TARGET=url, RESULTS=results)
        pods = [subprocess.Popen(["/bin/sh", "-c", script],
                                 env=dict(env, JOB_COMPLETION_INDEX=str(k)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for k in range(shards)]
        outs = [p.communicate(timeout=120) for p in pods]
        files = sorted(os.listdir(results))
        ok(all(p.returncode == 0 for p in pods) and
           files == ["shard-%d-of-%d.dyt" % (k, shards) for k in range(shards)],
           "%d pods ran as local processes, each wrote its shard to the shared volume" % shards,
           (files, [o[1][-200:] for o in outs]))
        shard_files = [os.path.join(results, f) for f in files]
        rc1, _, _ = run("diff", path("all.dyt"), "--json", path("all.json"),
                        "--fail-on", "data_incomplete>0")
        rc2, out2, err2 = run("diff", *shard_files, "--json", path("merged.json"),
                              "--fail-on", "data_incomplete>0")
        a, m = load("all.json"), load("merged.json")
        ok(rc2 == 0 and m["summary"]["compared"] == a["summary"]["compared"] == 240 and
           m["shards"]["merged"] and m["shards"]["present"] == list(range(shards)),
           "the merge compares the sum of the shards, 240 = the unsharded run", (rc2, err2))
        sa, sm = strip_run(a), strip_run(m)
        diffkeys = [k for k in sa if sa.get(k) != sm.get(k)]
        ok(sa == sm, "green: the merged report equals the unsharded one (all but latency, "
           "inputs and each file's counters)", diffkeys)
        ok(not m["data_incomplete"] and not m["exclusions"],
           "every shard present: the shards' exclusions cancel out, data complete",
           m["exclusions"])
        # one shard missing: its sessions are unreplayed, named
        missing = shard_files[1]
        rc, out, _ = run("diff", *[f for f in shard_files if f != missing],
                         "--json", path("miss.json"), "--fail-on", "data_incomplete>0")
        mi = load("miss.json")
        info = json.loads(run("info", "--json", shard_files[0])[1])
        per = None
        rd = subprocess.run([DYETAP, "cat", "--json", "--type", "session", missing],
                            capture_output=True, text=True)
        per = len(rd.stdout.splitlines())
        reason = "shard 1/%d is missing from the merge: its %d sessions were not replayed" % (
            shards, per)
        ok(rc == 1 and mi["data_incomplete"] and reason in mi["incomplete_reasons"] and
           mi["summary"]["unreplayed"] == per and mi["summary"]["compared"] == 240 - per,
           "red: a missing shard is %d unreplayed sessions, named" % per,
           (rc, mi["incomplete_reasons"], info["meta"]["shard"]))
        # a shard of another recording: refused, clearly
        rec2 = record_demo("rec2.dyt")
        run("replay", rec2, "--shard", "1/%d" % shards, "-t", "candidate=" + url,
            "-o", path("other.dyt"), "--max", "-q")
        rc, out, err = run("diff", shard_files[0], path("other.dyt"))
        ok(rc == 2 and "only shards of one recording merge into one report" in err and
           "rec2.dyt" in err, "shards of two recordings: exit 2, both named", err)
        rc, out, err = run("diff", shard_files[0], shard_files[0])
        ok(rc == 2 and "given twice" in err, "one shard given twice: exit 2", err)
    finally:
        srv.shutdown()


SECRETS_REC = [b"REQSEKRIT%d" % i for i in range(1, 7)] + [b"PRODSEKRIT1", b"PRODSEKRIT2"]
SECRETS_CAND = [b"CANDSEKRIT%d" % i for i in range(1, 7)]


def secret_pcap(port):
    """A capture full of secrets, in the places issue 16 found them escaping.
    "Authorization : Bearer" (a blank before the colon, accepted by lenient
    parsers) rides its own request: replay refuses to send such a header
    (skipped_unsafe), so it can only leak from the recording."""
    c = g.Conv(cli="127.0.0.1", cport=46001, srv="127.0.0.1", sport=port).handshake()
    c.send(True, g.req(b"POST", b"/login?TOKEN=REQSEKRIT1&q=1", b"user=al&password=REQSEKRIT2",
                       b"Cookie: sid=REQSEKRIT4\r\n"
                       b"Referer: http://bob:REQSEKRIT5@shop.test/?access_token=REQSEKRIT6\r\n"
                       b"Content-Type: application/x-www-form-urlencoded\r\n"))
    body = b'{"user":{"name":"al","password":"PRODSEKRIT2"},"ok":true}'
    c.send(False, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Set-Cookie: sid=PRODSEKRIT1; Path=/\r\nContent-Length: %d\r\n\r\n%s"
           % (len(body), body))
    c.send(True, g.req(b"GET", b"/me", extra=b"Authorization : Bearer REQSEKRIT3\r\n"))
    c.send(False, g.resp(200, b"hello\n"))
    c.send(True, g.req(b"GET", b"/me2"))
    c.send(False, g.resp(200, b"hello\n"))
    p = path("secrets.pcap")
    g.write_pcap(p, 1, g.frame(c.close(), 1))
    return p


class Hostile(http.server.BaseHTTPRequestHandler):
    """A candidate that answers every request with secrets of its own."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = (b'{"data":{"access_token":"CANDSEKRIT1","deep":{"Password":"CANDSEKRIT2"}},'
                b'"ok":true}')
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Set-Cookie: sid=CANDSEKRIT3; HttpOnly\r\n"
                         b"Location: /next?token=CANDSEKRIT4\r\n"
                         b"X-Api-Key : CANDSEKRIT5\r\n"
                         b"Authorization: Basic CANDSEKRIT6\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    do_GET = do_POST = answer


def everything(files):
    """Every byte a user could read: the files as written, their records as
    `dyetap cat` prints them, and the decompressed record bytes."""
    blob = b""
    for f in files:
        data = open(f, "rb").read()
        blob += data
        if f.endswith(".dyt"):
            blob += subprocess.run([DYETAP, "cat", "--json", f], capture_output=True).stdout
            blob += subprocess.run(["zstd", "-d", "-c", "-q", f], capture_output=True).stdout
    return blob


def group_secrets():
    srv, port = serve_http(Hostile)
    prod = free_port(avoid=(port,))
    pcap = secret_pcap(prod)
    url = "http://127.0.0.1:%d" % port
    try:
        rec = path("plain.dyt")
        rc, _, err = run("record", "-r", pcap, "-w", rec)
        ok(rc == 0, "a recording made without redaction", err)
        # control: nothing redacted anywhere, every secret is there
        run("replay", rec, "-t", url, "-o", path("ctl.dyt"), "--max", "-q", "--allow-writes")
        run("diff", path("ctl.dyt"), "--json", path("ctl.json"), "--quiet")
        blob = everything([rec, path("ctl.dyt"), path("ctl.json")])
        found = [s for s in SECRETS_REC + SECRETS_CAND if s in blob]
        ok(len(found) == len(SECRETS_REC + SECRETS_CAND),
           "red (control): without redaction every secret reaches the recording, the results "
           "and the report",
           [s for s in SECRETS_REC + SECRETS_CAND if s not in blob])
        # replay --redact-defaults, diff with nothing to say: no secret anywhere
        res = path("red.dyt")
        rc, out, err = run("replay", rec, "-t", url, "-o", res, "--max", "--allow-writes",
                           "--redact-defaults", "-q")
        ok(rc == 0, "replay --redact-defaults against the hostile candidate", err)
        outs = [path("red.json"), path("red.xml"), path("red.html")]
        rc, term, _ = run("diff", res, "--json", outs[0], "--junit", outs[1], "--html", outs[2])
        blob = everything([res] + outs) + term.encode()
        leaked = [s for s in SECRETS_REC + SECRETS_CAND if s in blob]
        ok(not leaked, "green: no secret in the results file, the JSON, JUnit and HTML reports "
           "or the terminal", leaked)
        meta = json.loads(run("info", "--json", res)[1])["meta"]
        ok("url:userinfo:mask" in meta["redactions"] and "form:password:mask" in meta["redactions"],
           "the results metadata lists the rules applied", meta["redactions"])
        ok(all(os.stat(f).st_mode & 0o077 == 0 for f in [res] + outs),
           "the results file and every report are mode 0600")
        # a recording redacted at record time: its rules travel with the
        # results and are applied to the candidate's answers, unasked
        rec2 = path("redacted.dyt")
        run("record", "-r", pcap, "-w", rec2, "--redact-defaults")
        res2 = path("carried.dyt")
        rc, _, err = run("replay", rec2, "-t", url, "-o", res2, "--max", "--allow-writes", "-q")
        rc, term, _ = run("diff", res2, "--json", path("carried.json"))
        blob = everything([rec2, res2, path("carried.json")]) + term.encode()
        leaked = [s for s in SECRETS_REC + SECRETS_CAND if s in blob]
        ok(rc == 0 and not leaked, "green: record --redact-defaults leaves no secret in the "
           "recording ('Authorization : Bearer' included), and its rules redact the "
           "candidate's answers without any --redact to replay or diff", leaked)
        # diff --redact-defaults over the unredacted control results
        rc, term, _ = run("diff", path("ctl.dyt"), "--redact-defaults", "--json",
                          path("ctl2.json"), "--html", path("ctl2.html"))
        blob = everything([path("ctl2.json"), path("ctl2.html")]) + term.encode()
        leaked = [s for s in SECRETS_REC + SECRETS_CAND if s in blob]
        ok(not leaked, "green: diff --redact-defaults keeps the secrets of unredacted results "
           "out of its reports", leaked)
    finally:
        srv.shutdown()


# Every class of code point a candidate may answer with, as UTF-8 (or not).
CLASSES = [
    ("C0 controls", b"a\x01b\x08c\x0bd\x0ce\x1bf\x1fg"),
    ("tab, CR", b"h\ti\rj"),
    ("DEL", b"k\x7fl"),
    ("C1 controls", "m\u0085n\u009fo".encode()),
    ("last BMP before surrogates", "\ud7ff".encode()),
    ("private use", "\ue000".encode()),
    ("replacement char", "\ufffd".encode()),
    ("U+FFFE", b"\xef\xbf\xbe"),
    ("U+FFFF", b"\xef\xbf\xbf"),
    ("U+FDD0 nonchar", "\ufdd0".encode()),
    ("astral", "\U00010000\U0001f600\U0010ffff".encode()),
    ("encoded surrogate", b"\xed\xa0\x80"),
    ("overlong", b"\xc0\xaf"),
    ("invalid bytes", b"\xff\xfe\x80"),
    ("markup", b"<x> & ]]> \"'"),
]


class Weird(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"line one\n" + b"\n".join(b"%s: %s" % (n.encode(), v) for n, v in CLASSES) + b"\n"
        hdr = b"".join(v for _, v in CLASSES if b"\r" not in v and b"\n" not in v)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Weird: %s\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (hdr, len(body), body))


def group_wellformed():
    srv, port = serve_http(Weird)
    prod = free_port(avoid=(port,))
    c = g.Conv(cli="127.0.0.1", cport=46002, srv="127.0.0.1", sport=prod).handshake()
    for i in range(3):
        c.send(True, g.req(b"GET", b"/w%d" % i))
        c.send(False, g.resp(200, b"line one\nplain text\n", b"X-Weird: plain\r\n"))
    pcap = path("weird.pcap")
    g.write_pcap(pcap, 1, g.frame(c.close(), 1))
    try:
        rec = path("weird.dyt")
        run("record", "-r", pcap, "-w", rec)
        res = path("weird-res.dyt")
        rc, _, err = run("replay", rec, "-t", "http://127.0.0.1:%d" % port, "-o", res, "--max",
                         "-q")
        ok(rc == 0, "replay to a candidate answering every code point class", err)
        p = subprocess.run([DYETAP, "diff", res, "--json", path("w.json"), "--junit",
                            path("w.xml"), "--html", path("w.html"), "--fail-on",
                            "differing>1000"], capture_output=True, timeout=60)
        rc, term = p.returncode, p.stdout
        ok(rc == 0, "diff renders all four reports", p.stderr[:300])
        try:
            rep = json.load(open(path("w.json"), encoding="utf-8"))
            jok = rep["summary"]["compared"] == 3 and rep["differences"]
        except ValueError as e:
            jok = False
            print("# " + str(e))
        ok(jok, "JSON: Python's json module parses it (strict UTF-8)")
        raw = open(path("w.xml"), "rb").read()
        try:
            ET.fromstring(raw)
            xok = True
        except ET.ParseError as e:
            xok = False
            print("# " + str(e))
        ok(xok, "JUnit: Python's xml parser accepts it")
        r = subprocess.run(["xmllint", "--noout", path("w.xml")], capture_output=True, text=True)
        ok(r.returncode == 0, "JUnit: xmllint accepts it", r.stderr[:400])
        ok(b"\xef\xbf\xbe" not in raw and b"\xef\xbf\xbf" not in raw and b"\x1b" not in raw,
           "JUnit: U+FFFE, U+FFFF and C0 controls replaced (XML 1.0 forbids them)")
        ok(b"\xf0\x9f\x98\x80" in raw and b"\xee\x80\x80" in raw,
           "JUnit: characters XML allows are kept (astral, private use)")
        html = open(path("w.html"), "rb").read()
        try:
            text = html.decode("utf-8")
            import html.parser as hp
            hp.HTMLParser().feed(text)
            hok = True
        except (UnicodeDecodeError, ValueError) as e:
            hok = False
            print("# " + str(e))
        ok(hok and b"\xef\xbf\xbf" not in html, "HTML: valid UTF-8, parsed, no U+FFFF")
        # (xmllint quotes 80 bytes around each complaint, cutting characters:
        # decode its messages leniently)
        r = subprocess.run(["xmllint", "--html", "--noout", path("w.html")],
                           capture_output=True)
        xerr = r.stderr.decode("utf-8", "replace")
        ok("encoding error" not in xerr and "Char 0x" not in xerr,
           "HTML: xmllint's HTML parser finds no bad character", xerr[-300:])
        try:
            tt = term.decode("utf-8")
            tok = "compared 3 responses" in tt and not re.search("[\x00-\x08\x0b-\x1f\x7f"
                                                               "\x80-\x9f]", tt)
        except UnicodeError:
            tok = False
        ok(tok, "terminal: valid UTF-8 without control characters (no escape sequence from "
           "a candidate reaches the terminal)")
    finally:
        srv.shutdown()


def group_writers():
    rec = record_demo("rec.dyt")
    base = Demo("baseline")
    try:
        out = path("one.dyt")
        first = subprocess.Popen([DYETAP, "replay", rec, "-t", base.url, "-o", out, "--rate", "60",
                                  "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while not os.path.exists(out + ".partial") and time.time() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        rc, _, err = run("record", "-r", DEMO_PCAP, "-w", out)
        took = time.monotonic() - t0
        ok(rc == 2 and "is being written by another process" in err and took < 5,
           "a second writer (record) of the same file fails at once (%.1fs, exit 2)" % took, err)
        rc, _, err = run("replay", rec, "-t", base.url, "-o", out, "-q")
        ok(rc == 2 and "is being written by another process" in err,
           "so does a second replay to it", err)
        first.communicate(timeout=60)
        rc, js, err = run("info", "--json", out)
        info = json.loads(js) if rc == 0 else {}
        ok(first.returncode == 0 and info.get("state") == "complete" and
           info.get("results") == 240 and info.get("sessions") == 240,
           "the first writer's file is whole: 240 sessions, 240 results, complete", err)
        rc, _, err = run("record", "-r", DEMO_PCAP, "-w", out)
        ok(rc == 0, "once the first is done, the file may be written again", err)
    finally:
        base.close()


def group_fulldisk():
    if os.geteuid() != 0:
        print("1..0 # SKIP mounting a small tmpfs needs root")
        sys.exit(0)
    mnt = path("small")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("1..0 # SKIP cannot mount a tmpfs: " + r.stderr.strip())
        sys.exit(0)
    try:
        # 8 sessions of incompressible 600 KB answers: 4.8 MB for a 2 MiB disk
        f = []
        for i in range(8):
            c = g.Conv(cli="127.0.0.1", cport=45100 + i, srv="127.0.0.1", sport=80).handshake()
            c.send(True, g.req(b"GET", b"/big%d" % i))
            c.send(False, g.resp(200, os.urandom(600000)))
            f += g.frame(c.close(), 1)
        pcap = path("big.pcap")
        g.write_pcap(pcap, 1, f)
        out = os.path.join(mnt, "rec.dyt")
        rc, _, err = run("record", "-r", pcap, "-w", out)
        m = re.search(r"(\d+) sessions could not be written to " + re.escape(out), err)
        lost = int(m.group(1)) if m else -1
        rc2, js, ierr = run("info", "--json", out)
        kept = json.loads(js).get("sessions", -1) if rc2 == 0 else -1
        ok(rc == 3 and lost > 0 and kept > 0 and lost + kept == 8,
           "record on a full disk: %d lost printed + %d in %s.partial = the 8 sessions"
           % (lost, kept, out), (rc, err[-600:], ierr[-200:]))
        ok(not os.path.exists(out) and os.path.exists(out + ".partial"),
           "the file never got its name: it stays .partial")
        # replay: the results of a recording with big answers onto the full disk
        os.unlink(out + ".partial")
        rec = path("big.dyt")
        run("record", "-r", pcap, "-w", rec)

        class Big(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                body = os.urandom(600000)
                self.send_response_only(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        srv, port = serve_http(Big)
        try:
            res = os.path.join(mnt, "res.dyt")
            rc, _, err = run("replay", rec, "-t", "http://127.0.0.1:%d" % port, "-o", res,
                             "--max", "-q")
            m = re.search(r"(\d+) of the (\d+) records \(sessions and results\) are not in the "
                          r"results file", err)
            rc2, js, _ = run("info", "--json", res)
            got = json.loads(js).get("records", -1) if rc2 == 0 else -1
            ok(rc == 3 and m is not None and got >= 0 and
               int(m.group(2)) - int(m.group(1)) == got,
               "replay on a full disk: offered - lost printed = the %d records in the file"
               % got, (rc, err[-500:]))
        finally:
            srv.shutdown()
    finally:
        subprocess.run(["umount", mnt], capture_output=True)


def group_sizes():
    rec = record_demo("rec.dyt")
    base = Demo("baseline")
    try:
        for v in ("1k", "64KiB", "1M"):
            rc, _, err = run("replay", rec, "-t", base.url, "-o", path("s.dyt"), "--max", "-q",
                             "--max-body", v)
            ok(rc == 0, "replay --max-body %s is taken" % v, err)
        rc, _, err = run("replay", rec, "-t", base.url, "-o", path("s.dyt"), "--max", "-q",
                         "--max-body", "1kk")
        ok(rc == 2 and "k, M or G suffix" in err, "a bad size says which suffixes work", err)
    finally:
        base.close()


BLOB = __import__("base64").b64encode(bytes((i * 37 + 11) % 256 for i in range(750))).decode()


def token():
    """A random 32-character token mixing upper case, lower case and digits."""
    return "Aa1" + __import__("secrets").token_hex(15)[:29].upper().replace("0", "x")


def vol_body(i, blob):
    return json.dumps({"id": i, "blob": blob, "nonce": token()}).encode()


def vol_handler(blob):
    class H(http.server.BaseHTTPRequestHandler):
        """A candidate answering /doc/N with the blob given and a fresh nonce."""
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            body = vol_body(int(self.path.rsplit("/", 1)[1]), blob)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    return H


def group_volatile():
    prod = free_port()
    c = g.Conv(cli="127.0.0.1", cport=46002, srv="127.0.0.1", sport=prod).handshake()
    for i in range(1, 7):
        c.send(True, g.req(b"GET", b"/doc/%d" % i))
        body = vol_body(i, BLOB)
        c.send(False, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    g.write_pcap(path("vol.pcap"), 1, g.frame(c.close(), 1))
    rec = path("vol.dyt")
    rc, _, err = run("record", "-r", path("vol.pcap"), "-w", rec)
    ok(rc == 0, "volatile: a recording of 6 JSON answers with a 1000-character blob and a "
       "random nonce", err)
    changed = BLOB[:500] + ("B" if BLOB[500] != "B" else "C") + BLOB[501:]
    for name, blob, want_rc in (("green", BLOB, 0), ("red", changed, 1)):
        srv, port = serve_http(vol_handler(blob))
        try:
            res = path("vol-%s.dyt" % name)
            rc, _, err = run("replay", rec, "-t", "http://127.0.0.1:%d" % port, "-o", res, "-q")
            ok(rc == 0, "volatile %s: replayed to a real HTTP server" % name, err)
            rc, out, err = run("diff", res, "--json", "-", "--quiet", "--fail-on", "differing>0")
            rep = json.loads(out) if out.startswith("{") else {}
            real = {(d["location"], d["kind"]): d["count"] for d in rep.get("differences", [])
                    if not d["noise"]}
            noise = {(d["location"], d["kind"]): d["count"] for d in rep.get("differences", [])
                     if d["noise"]}
            ok(noise.get(("body:$.nonce", "value_changed")) == 6,
               "volatile %s: the nonce (32 characters, random) is noise in all 6" % name,
               (noise, real))
            if name == "green":
                ok(rc == 0 and not real, "volatile green: nothing real, the gate holds", (rc, real))
            else:
                ok(rc == 1 and real == {("body:$.blob", "value_changed"): 6},
                   "volatile red: the blob's one changed character (of 1000) is real in all 6, "
                   "the gate trips", (rc, real, err[-300:]))
        finally:
            srv.shutdown()


GROUPS = {
    "failclosed": group_failclosed, "exclusions": group_exclusions, "custody": group_custody,
    "candidates": group_candidates, "shards": group_shards, "secrets": group_secrets,
    "wellformed": group_wellformed, "writers": group_writers, "fulldisk": group_fulldisk,
    "sizes": group_sizes, "volatile": group_volatile,
}

try:
    GROUPS[GROUP]()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(finish())
