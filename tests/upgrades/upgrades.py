#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The harness of the upgrade corpus (tests/upgrades/README.md).

Each case is a directory tests/upgrades/CASE/ with case.json (versions,
how to start the old and the new server), the data files the server
starts from, client.py (the traffic), capture.pcap (that traffic captured
with tcpdump on lo against the old version) and expected-causes.json (the
behavior changes the projects' changelogs announce, written by hand).

Commands:
  capture CASE               (root, tcpdump) start the old version on a free
                             port of 127.0.0.1, run client.py against it while
                             tcpdump captures lo, write CASE/capture.pcap and
                             the port into case.json
  run CASE [--dyetap PATH] [--keep DIR] [--summary-json FILE]
                             record -> replay (candidate = new version,
                             secondary = a second old instance) -> diff --json,
                             then the same-build run (candidate = old too), and
                             print how the report compares with
                             expected-causes.json
  table [--dyetap PATH]      run every case, print the baseline table of
                             tests/upgrades/README.md (markdown)
  test CASE DYETAP           the same as TAP for meson: every expected cause is
                             matched, the same-build run shows no real
                             difference (and, once reports carry causes, the
                             causes stay within 1.5x the expected count)

Every server listens on 127.0.0.1 on a port that was free, never on the
capture's port (the production guard of `dyetap replay` would refuse it).
Every server instance starts from a fresh copy of the case's data files, so
old, new and the secondary see the same history.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
MAX_CAUSE_RATIO = 1.5

# ---------------------------------------------------------------- cases


def load_case(name):
    d = os.path.join(HERE, name)
    with open(os.path.join(d, "case.json"), encoding="utf-8") as f:
        case = json.load(f)
    exp = os.path.join(d, "expected-causes.json")
    case["expected"] = {"causes": []}
    if os.path.exists(exp):
        with open(exp, encoding="utf-8") as f:
            case["expected"] = json.load(f)
    case["name"] = name
    case["dir"] = d
    rules = os.path.join(d, "diff-rules.txt")
    case["rules"] = rules if os.path.exists(rules) else None
    return case


def all_cases():
    return sorted(n for n in os.listdir(HERE)
                  if os.path.exists(os.path.join(HERE, n, "case.json")))


def plan_length(case):
    r = subprocess.run([sys.executable] + [os.path.join(case["dir"], c) for c in case["client"]]
                       + ["--port", "1", "--list"], capture_output=True, text=True, check=True)
    return len(r.stdout.splitlines())


def setup(case):
    """(True, "") when both versions are installed, (False, reason) to skip."""
    r = subprocess.run(["sh", os.path.join(HERE, "setup.sh"), case["name"]],
                       capture_output=True, text=True, timeout=900)
    if r.returncode == 77:
        return False, r.stdout.strip().replace("SKIP: ", "")
    if r.returncode != 0:
        raise RuntimeError(f"setup.sh {case['name']} failed: {r.stderr.strip()[-400:]}")
    return True, ""

# ---------------------------------------------------------------- servers


def free_port(avoid=()):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in avoid:
            return p


class Server:
    """One instance of the old or the new version, from fresh data files."""

    def __init__(self, case, role, avoid=()):
        self.role = role
        self.port = free_port(avoid)
        self.work = tempfile.mkdtemp(prefix=f"dyetap-upg-{case['name']}-{role}-")
        for f in case.get("data", []):
            shutil.copy(os.path.join(case["dir"], f), os.path.join(self.work, f))
        for d in case.get("dirs", []):
            os.makedirs(os.path.join(self.work, d), exist_ok=True)
        subst = {"install": os.path.join(HERE, ".install", case["name"], role),
                 "case": case["dir"], "port": str(self.port), "data": self.work}
        argv = [a.format(**subst) for a in case["server"][role]]
        self.log = open(os.path.join(self.work, "server.log"), "wb")
        env = dict(os.environ, NO_COLOR="1")
        env.pop("NODE_ENV", None)  # the servers' defaults, unless the case sets it
        env.update(case.get("env", {}))
        self.proc = subprocess.Popen(argv, cwd=self.work, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        log = self.output()
        self.stop()
        raise RuntimeError(f"{case['name']} {role} server did not start: {' '.join(argv)}\n"
                           + log[-800:])

    def output(self):
        with open(os.path.join(self.work, "server.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def url(self):
        return f"http://127.0.0.1:{self.port}"

# ---------------------------------------------------------------- capture


def capture(case):
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        print("capture: needs root and tcpdump", file=sys.stderr)
        return 2
    srv = Server(case, "old")
    pcap = os.path.join(case["dir"], "capture.pcap")
    try:
        tcpdump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s", "0",
                                    "-w", pcap, f"tcp port {srv.port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        subprocess.run([sys.executable] + [os.path.join(case["dir"], c) for c in case["client"]]
                       + ["--port", str(srv.port)], check=True, timeout=300)
        time.sleep(1.0)  # let tcpdump drain the kernel buffer
        tcpdump.send_signal(signal.SIGINT)
        err = tcpdump.communicate(timeout=10)[1].decode(errors="replace")
    finally:
        srv.stop()
    print(err.strip().splitlines()[-2:] if err.strip() else "")
    path = os.path.join(case["dir"], "case.json")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r'"capture_port": [0-9]+', f'"capture_port": {srv.port}', text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    st = os.stat(case["dir"])
    os.chown(pcap, st.st_uid, st.st_gid)  # tcpdump drops to its own user
    os.chmod(pcap, 0o644)
    print(f"capture: {pcap} ({os.path.getsize(pcap)} bytes), server port {srv.port}")
    return 0

# ---------------------------------------------------------------- record, replay, diff


def run_tool(argv, timeout=300):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def record(dy, case, tmp):
    rec = os.path.join(tmp, "recording.dyt")
    rc, out, err = run_tool([dy, "record", "-r", os.path.join(case["dir"], "capture.pcap"),
                             "-w", rec, "--json"])
    if rc != 0:
        raise RuntimeError(f"dyetap record exited {rc}: {err.strip()[-400:]}")
    stats = json.loads(out)
    return rec, stats.get("counters", stats)


def replay_and_diff(dy, case, rec, cand_role, tmp, label):
    """Replay @rec against a fresh @cand_role instance (candidate) and a fresh
    old instance (secondary); diff; returns the JSON report."""
    avoid = {case["capture_port"]}
    cand = Server(case, cand_role, avoid)
    avoid.add(cand.port)
    try:
        sec = Server(case, "old", avoid)
    except BaseException:
        cand.stop()
        raise
    res = os.path.join(tmp, f"{label}-results.dyt")
    try:
        rc, out, err = run_tool([dy, "replay", rec, "--target", cand.url(), "--baseline", sec.url(),
                                 "--max", "--allow-writes", "-q", "-o", res])
    finally:
        cand.stop()
        sec.stop()
    if rc != 0:
        raise RuntimeError(f"dyetap replay ({label}) exited {rc}: {err.strip()[-400:]}")
    rep = os.path.join(tmp, f"{label}-report.json")
    argv = [dy, "diff", res, "--json", rep, "--quiet"]
    if case["rules"]:
        argv += ["--rules", case["rules"]]
    rc, out, err = run_tool(argv)
    if rc != 0:
        raise RuntimeError(f"dyetap diff ({label}) exited {rc}: {err.strip()[-400:]}")
    with open(rep, encoding="utf-8") as f:
        return json.load(f)

# ---------------------------------------------------------------- comparison

_INDEX = re.compile(r"\[[0-9]+\]")
_KEYED = re.compile(r"\[[A-Za-z0-9_]+=[^\]]*\]")


_WORD = re.compile(r"\[[0-9]+\]\Z")


def normalize_location(loc):
    """A report location as expected-causes.json writes it: `body:` dropped
    before a JSON path, array indexes (and keyed elements) as `[*]`, a text
    line or a word of it (`body:text[4][2]`) as `body:text`, a word of a
    header value (`header:content-type[1]`) as the header."""
    if loc.startswith("body:text"):
        return "body:text"
    if loc.startswith("header:"):
        return _WORD.sub("", loc)
    if loc.startswith("body:$"):
        loc = loc[len("body:"):]
    if loc.startswith("$"):
        loc = _KEYED.sub("[*]", _INDEX.sub("[*]", loc))
    return loc


def _location_regex(expected_loc):
    # `[*]` any element (already normalized), `.*` any member name.
    parts = re.split(r"(\.\*)", expected_loc)
    return re.compile("".join(r"\.[^.\[]+" if p == ".*" else re.escape(p) for p in parts) + r"\Z")


def findings_of(report):
    """What the report says changed: ("causes", [...]) once reports carry
    causes (a "causes" list in report.json), else ("groups", [...]) from the
    difference groups.
    Each finding: {kind, location (normalized), endpoints, count, noise}; a
    cause also lists the groups it covers (when the report gives them as
    objects), so an expected consequence folded into its cause (a field gone
    with a status change) still counts as found."""
    if isinstance(report.get("causes"), list):
        out = []
        for c in report["causes"]:
            covers = [{"kind": g.get("kind"), "location": normalize_location(g.get("location", "")),
                       "endpoints": [g.get("endpoint")], "noise": False}
                      for g in c.get("groups", []) if isinstance(g, dict)]
            out.append({"kind": c.get("kind"), "location": normalize_location(c.get("location", "")),
                        "endpoints": list(c.get("endpoints", [])), "count": c.get("count", 0),
                        "noise": bool(c.get("noise")), "covers": covers})
        return "causes", out
    out = []
    for g in report.get("differences", []):
        out.append({"kind": g["kind"], "location": normalize_location(g["location"]),
                    "endpoints": [g["endpoint"]], "count": g["count"], "noise": bool(g["noise"]),
                    "raw_location": g["location"]})
    return "groups", out


def matches(cause, finding):
    """Does @finding (real, not noise) show the expected @cause? Same kind
    and location on one of the cause's endpoints (for a cause, on one of the
    groups it covers)."""
    if finding["noise"]:
        return False
    if any(matches(cause, g) for g in finding.get("covers", [])):
        return True
    if not set(finding["endpoints"]) & set(cause["endpoints"]):
        return False
    loc = finding["location"]
    return finding["kind"] == cause["kind"] and bool(_location_regex(cause["location"]).match(loc))


def evaluate(expected, report, same_report):
    """The comparison of a report (new vs old, old as secondary) and a
    same-build report (old vs old) with the expected causes. The verdicts
    the tests assert are in "checks": a list of (ok, what, detail)."""
    level, found = findings_of(report)
    real = [f for f in found if not f["noise"]]
    causes = expected["causes"]
    per_cause = []
    used = set()
    for c in causes:
        hit = [i for i, f in enumerate(real) if matches(c, f)]
        used.update(hit)
        covered = sorted({e for i in hit for e in real[i]["endpoints"]} & set(c["endpoints"]))
        per_cause.append({"cause": c, "findings": hit, "endpoints_covered": covered})
    same_level, same_found = findings_of(same_report)
    same_real = [f for f in same_found if not f["noise"]]
    s = report["summary"]
    ss = same_report["summary"]
    checks = []
    for pc in per_cause:
        c = pc["cause"]
        checks.append((bool(pc["findings"]), f"expected cause {c['id']} found: {c['kind']} "
                       f"{c['location']}", f"no real {level[:-1]} matches; endpoints {c['endpoints']}"))
    checks.append((ss["differing"] == 0 and not same_real,
                   f"same build: no real difference ({ss['differing']} differing pairs, "
                   f"{len(same_real)} real {same_level})",
                   "\n".join(f"{f['endpoints']} {f.get('raw_location', f['location'])} {f['kind']} "
                             f"x{f['count']}" for f in same_real[:20])))
    if level == "causes":
        n = len(real)
        checks.append((n <= MAX_CAUSE_RATIO * len(causes),
                       f"causes within {MAX_CAUSE_RATIO}x the expected count ({n} for {len(causes)})",
                       None))
    return {"level": level, "real": real, "per_cause": per_cause,
            "unmatched": [f for i, f in enumerate(real) if i not in used],
            "noise": [f for f in found if f["noise"]], "same_real": same_real,
            "same_noise": [f for f in same_found if f["noise"]], "summary": s,
            "same_summary": ss, "checks": checks}


def print_comparison(case, ev, out=sys.stdout):
    s, ss = ev["summary"], ev["same_summary"]
    causes = case["expected"]["causes"]
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"== {case['name']}: {case['package']} {case['old']} -> {case['new']}")
    p(f"compared {s['compared']} pairs on {s['endpoints']} endpoints, {s['differing']} differing; "
      f"{len(ev['real'])} real {ev['level']}, {len(ev['noise'])} noise "
      f"(data_incomplete={str(s.get('data_incomplete', False)).lower()})")
    found = sum(1 for pc in ev["per_cause"] if pc["findings"])
    p(f"expected causes: {len(causes)}, found {found}")
    for pc in ev["per_cause"]:
        c = pc["cause"]
        hits = [ev["real"][i] for i in pc["findings"]]
        mark = "ok     " if hits else "MISSING"
        p(f"  [{mark}] {c['id']:4} {c['kind']:14} {c['location']:38} <- {len(hits)} {ev['level']}, "
          f"endpoints {len(pc['endpoints_covered'])}/{len(c['endpoints'])}")
    p(f"real {ev['level']} matched by no expected cause: {len(ev['unmatched'])}")
    for f in ev["unmatched"]:
        p(f"    {', '.join(f['endpoints'])}  {f.get('raw_location', f['location'])}  {f['kind']}  "
          f"x{f['count']}")
    ratio = len(ev["real"]) / len(causes) if causes else 0
    p(f"{ev['level']} / expected causes = {len(ev['real'])} / {len(causes)} = {ratio:.1f} "
      f"(target for causes: <= {MAX_CAUSE_RATIO})")
    p(f"same build (old vs old): compared {ss['compared']}, {ss['differing']} differing, "
      f"{len(ev['same_real'])} real {ev['level']}, {len(ev['same_noise'])} noise")
    for f in ev["same_real"]:
        p(f"    {', '.join(f['endpoints'])}  {f.get('raw_location', f['location'])}  {f['kind']}  "
          f"x{f['count']}")


def run_case(dy, case, keep=None):
    """record -> replay (new; old as secondary) -> diff, then the same-build
    run; returns (recording stats, report, same-build report)."""
    tmp = keep or tempfile.mkdtemp(prefix=f"dyetap-upg-{case['name']}-")
    os.makedirs(tmp, exist_ok=True)
    try:
        rec, stats = record(dy, case, tmp)
        report = replay_and_diff(dy, case, rec, "new", tmp, "upgrade")
        same = replay_and_diff(dy, case, rec, "old", tmp, "same-build")
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return stats, report, same

# ---------------------------------------------------------------- commands


def default_dyetap():
    for b in ("build-rel", "build-test", "build", "build-demo"):
        p = os.path.join(TOP, b, "cli", "dyetap")
        if os.access(p, os.X_OK):
            return p
    return "dyetap"


def cmd_run(a):
    case = load_case(a.case)
    ok, why = setup(case)
    if not ok:
        print(f"{a.case}: skipped: {why}")
        return 0
    stats, report, same = run_case(a.dyetap or default_dyetap(), case, a.keep)
    ev = evaluate(case["expected"], report, same)
    print(f"recorded {stats.get('txn_requests')} requests from {case['name']}/capture.pcap")
    print_comparison(case, ev)
    if a.summary_json:
        with open(a.summary_json, "w", encoding="utf-8") as f:
            json.dump({"case": case["name"], "package": case["package"], "old": case["old"],
                       "new": case["new"], "expected": len(case["expected"]["causes"]),
                       "found": sum(1 for pc in ev["per_cause"] if pc["findings"]),
                       "level": ev["level"], "real": len(ev["real"]), "noise": len(ev["noise"]),
                       "unmatched": len(ev["unmatched"]), "compared": ev["summary"]["compared"],
                       "same_differing": ev["same_summary"]["differing"],
                       "same_real": len(ev["same_real"]), "same_noise": len(ev["same_noise"])},
                      f, indent=1)
    return 0 if all(c[0] for c in ev["checks"]) else 1


def cmd_table(a):
    dy = a.dyetap or default_dyetap()
    print("| case | versions | expected causes (independent + consequences) | found | "
          "real causes (noise) | causes / expected | same build: differing pairs / "
          "real causes (noise) |")
    print("|---|---|---|---|---|---|---|")
    rc = 0
    for name in all_cases():
        case = load_case(name)
        good, why = setup(case)
        if not good:
            print(f"| {name} | skipped: {why} | | | | |")
            continue
        stats, report, same = run_case(dy, case)
        ev = evaluate(case["expected"], report, same)
        rc |= 0 if all(c[0] for c in ev["checks"]) else 1
        found = sum(1 for pc in ev["per_cause"] if pc["findings"])
        causes = case["expected"]["causes"]
        cons = sum(1 for c in causes if c.get("consequence_of"))
        print(f"| {name} | {case['package']} {case['old']} -> {case['new']} | "
              f"{len(causes)} ({len(causes) - cons} + {cons}) | {found} | {len(ev['real'])} "
              f"({len(ev['noise'])}) | {len(ev['real']) / len(causes):.1f} | "
              f"{ev['same_summary']['differing']} / {len(ev['same_real'])} "
              f"({len(ev['same_noise'])}) |")
    return rc


def cmd_test(a):
    n = 0
    failed = 0

    def ok(cond, what, detail=None):
        nonlocal n, failed
        n += 1
        failed += 0 if cond else 1
        print(("ok" if cond else "not ok") + f" {n} - {a.case}: {what}")
        if not cond and detail:
            for line in str(detail).splitlines()[:20]:
                print("# " + line)
        sys.stdout.flush()

    case = load_case(a.case)
    good, why = setup(case)
    if not good:
        print(f"1..0 # SKIP {why}")
        return 0
    want = plan_length(case)
    try:
        stats, report, same = run_case(a.dyetap, case)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        ok(False, "record, replay and diff ran", e)
        print(f"1..{n}")
        return 1
    ok(stats.get("txn_requests") == want,
       f"capture holds the client's {want} requests (got {stats.get('txn_requests')})")
    for label, rep in (("upgrade", report), ("same build", same)):
        s = rep["summary"]
        ok(s["compared"] == want and s["replay_errors"] == 0 and not rep["data_incomplete"],
           f"{label}: all {want} sessions replayed and compared (compared {s['compared']}, "
           f"replay errors {s['replay_errors']}, data_incomplete {rep['data_incomplete']})",
           "\n".join(rep.get("incomplete_reasons", [])))
    ev = evaluate(case["expected"], report, same)
    ok(ev["level"] == "causes", "the report lists its causes (report JSON \"causes\")")
    for cond, what, detail in ev["checks"]:
        ok(cond, what, detail)
    print("# " + "\n# ".join(_comparison_text(case, ev).splitlines()))
    print(f"1..{n}")
    return 1 if failed else 0


def _comparison_text(case, ev):
    import io
    buf = io.StringIO()
    print_comparison(case, ev, buf)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("capture")
    p.add_argument("case")
    p = sub.add_parser("run")
    p.add_argument("case")
    p.add_argument("--dyetap")
    p.add_argument("--keep", help="keep recording, results and reports in this directory")
    p.add_argument("--summary-json")
    p = sub.add_parser("table")
    p.add_argument("--dyetap")
    p = sub.add_parser("test")
    p.add_argument("case")
    p.add_argument("dyetap")
    a = ap.parse_args()
    if a.cmd == "capture":
        return capture(load_case(a.case))
    if a.cmd == "run":
        return cmd_run(a)
    if a.cmd == "table":
        return cmd_table(a)
    return cmd_test(a)


if __name__ == "__main__":
    sys.exit(main())
