#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Same-build replay of stateful traffic: json-server, real writes, diff.

Usage: stateful_e2e.py DYETAP TESTTOOL CACHE_DIR

The committed capture tests/replay/stateful/jsonserver.pcap (see the
README there) holds client.py's traffic with json-server 0.17.4: writes
and reads on several keep-alive connections. It is recorded with
`dyetap record`, then replayed with --allow-writes to a fresh json-server
of the same version on another port, its state reset before every run by
--before (server.sh restart: the pristine db.json, a new process), and
diffed with `dyetap diff`:
  - default order (causal, the recording has writes) at --max, --speed 1
    and --speed 4, five runs each, and --threads 2 at --max: 0 differences,
    0 noise, every request answered;
  - --order pace at --max, five runs: differences in at least one run, the
    race that causal order prevents.
As root with tcpdump, a fresh capture is made too (capture.sh) and replayed
once at --max in causal order: 0 differences.

json-server is installed with `npm ci` from the committed package.json and
package-lock.json into CACHE_DIR (in the build directory, ignored by git),
once; without npm, or when the npm registry does not answer, the test
skips.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, free_port, ok  # noqa: E402

DYETAP, TOOL, CACHE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stateful")
VERSION = "0.17.4"
PCAP_REQUESTS = 115  # client.py's count when the committed capture was made (README)


def skip(why):
    print("1..0 # SKIP %s" % why)
    sys.exit(0)


def install():
    """The json-server CLI script, installed into CACHE once."""
    bin_ = os.path.join(CACHE, "node_modules", "json-server", "lib", "cli", "bin.js")
    pkg = os.path.join(CACHE, "node_modules", "json-server", "package.json")
    try:
        if json.load(open(pkg))["version"] == VERSION:
            return bin_
    except (OSError, ValueError, KeyError):
        pass
    if not shutil.which("npm") or not shutil.which("node"):
        skip("node and npm are not installed (tests/setup.sh)")
    try:
        ping = subprocess.run(["npm", "ping"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        ping = None
    if not ping or ping.returncode:
        skip("the npm registry does not answer (npm ping): json-server cannot be installed")
    os.makedirs(CACHE, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(HERE, f), CACHE)
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                       cwd=CACHE, capture_output=True, text=True, timeout=600)
    if p.returncode or not os.path.exists(bin_):
        ok(False, "npm ci installs json-server %s" % VERSION, p.stdout + p.stderr)
        sys.exit(finish())
    return bin_


def sessions(rec):
    out = subprocess.run([TOOL, "dump", rec], capture_output=True, text=True, check=True)
    return [json.loads(x)["session"] for x in out.stdout.splitlines() if '"session"' in x[:12]]


def main():
    bin_ = install()
    tmp = tempfile.mkdtemp(prefix="dyetap-stateful-")
    state = os.path.join(tmp, "state")
    port = None
    try:
        rec = os.path.join(tmp, "rec.dyt")
        p = subprocess.run([DYETAP, "record", "-r", os.path.join(HERE, "jsonserver.pcap"),
                            "-w", rec], capture_output=True, text=True)
        ss = sessions(rec) if p.returncode == 0 else []
        methods = {}
        for s in ss:
            m = s["request"]["method"]
            methods[m] = methods.get(m, 0) + 1
        conns = len(set(s["conn_id"] for s in ss))
        complete = all(not s["flags"] for s in ss)
        ok(len(ss) == PCAP_REQUESTS and conns >= 5 and complete and
           all(methods.get(m, 0) > 0 for m in ("POST", "PUT", "PATCH", "DELETE", "GET")),
           "the capture records as %d complete sessions on %d connections %s" %
           (len(ss), conns, sorted(methods.items())), p.stderr)
        rec_port = int(ss[0]["dst"].rsplit(":", 1)[1]) if ss else 0
        port = free_port(avoid=(rec_port,))
        url = "http://127.0.0.1:%d" % port
        before = "sh %s restart %s %s %d" % (os.path.join(HERE, "server.sh"), bin_, state, port)

        def run(args):
            res = os.path.join(tmp, "res.dyt")
            r = subprocess.run([DYETAP, "replay", rec, "--target", url, "--allow-writes",
                                "--before", before, "-o", res, "--json", "-q"] + args,
                               capture_output=True, text=True, timeout=120)
            js = None
            try:
                js = json.loads(r.stdout)
            except ValueError:
                pass
            rep = os.path.join(tmp, "report.json")
            d = subprocess.run([DYETAP, "diff", res, "--json", rep, "--quiet"],
                               capture_output=True, text=True, timeout=120)
            summ = None
            if d.returncode == 0:
                summ = json.load(open(rep))["summary"]
            return r.returncode, js, summ, r.stderr + d.stderr

        for mode in (["--max"], ["--speed", "1"], ["--speed", "4"]):
            outcomes, bad = [], []
            for _ in range(5):
                rc, js, summ, err = run(mode)
                good = (rc == 0 and js and summ and js["order"] == "causal" and
                        js["sent"] == len(ss) and js["ok"] == len(ss) and
                        summ["compared"] == len(ss) and summ["differing"] == 0 and
                        summ["noise_groups"] == 0 and summ["noisy_only"] == 0)
                outcomes.append((summ or {}).get("differing"))
                if not good:
                    bad.append((rc, js and js.get("ok"), summ, err[-800:]))
            ok(not bad, "causal order, %s, 5 runs: 0 differences, 0 noise (differing per run %s)"
               % (" ".join(mode), outcomes), bad)
        outcomes, bad = [], []
        for _ in range(2):
            rc, js, summ, err = run(["--max", "--threads", "2"])
            outcomes.append((summ or {}).get("differing"))
            if not (rc == 0 and summ and summ["differing"] == 0 and summ["noise_groups"] == 0
                    and js["ok"] == len(ss)):
                bad.append((rc, summ, err[-800:]))
        ok(not bad, "causal order, --max --threads 2, 2 runs: 0 differences (per run %s)" %
           outcomes, bad)
        outcomes = []
        for _ in range(5):
            rc, js, summ, err = run(["--max", "--order", "pace"])
            outcomes.append((summ or {}).get("differing") if rc == 0 else ("rc", rc))
        ok(any(isinstance(x, int) and x > 0 for x in outcomes),
           "--order pace at --max, 5 runs: the race appears (differing per run %s)" %
           outcomes)

        if os.geteuid() == 0 and shutil.which("tcpdump"):
            pcap = os.path.join(tmp, "live.pcap")
            c = subprocess.run(["sh", os.path.join(HERE, "capture.sh"), pcap, bin_],
                               capture_output=True, text=True, timeout=120)
            live = os.path.join(tmp, "live.dyt")
            r = subprocess.run([DYETAP, "record", "-r", pcap, "-w", live], capture_output=True,
                               text=True) if c.returncode == 0 else c
            n = len(sessions(live)) if r.returncode == 0 else 0
            rec = live
            rc, js, summ, err = run(["--max"]) if n else (None, None, None, "")
            ok(c.returncode == 0 and n >= 100 and rc == 0 and summ and
               summ["differing"] == 0 and summ["compared"] == n,
               "a fresh capture (%d sessions) replays at --max in causal order with 0 "
               "differences" % n, (c.stdout, c.stderr, err, summ))
        else:
            print("# live re-capture not run: needs root and tcpdump")
    finally:
        if port:
            subprocess.run(["sh", os.path.join(HERE, "server.sh"), "stop", bin_, state,
                            str(port)])
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


sys.exit(main())
