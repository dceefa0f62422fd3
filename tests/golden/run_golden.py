#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Golden pcap test: dyetap's transactions must equal the expected dump.

Usage: run_golden.py DYETAP CASE_DIR [CASE_DIR...]

For each case directory (input.pcap, expected.jsonl, README.md):
  1. dyetap record -r input.pcap -w TMP/out.dyt --json   (must exit 0)
  2. dyetap cat TMP/out.dyt --json --no-body             (must exit 0)
  3. every cat line is a JSON object with exactly the keys of the JSON form
     (docs/format.md): id lane conn_id conn_index ts_request_ns src
     dst request response flags; request has method/target/body_len,
     response (when not null) status/body_len;
  4. the canonical list built from those lines equals expected.jsonl, line
     by line (a unified diff is printed otherwise);
  5. when README.md has a line "oracle: tshark", the same list without flags
     also equals a fresh run of tshark_oracle.py on input.pcap.

Canonical line: {"method", "target", "status" (null without response),
"req_body_len", "resp_body_len" (null without response), "flags" (sorted)}.
Canonical order (tests/golden/README.md): connections by the capture time of
their first request (ts_request_ns of conn_index 0; ties by client address),
then by conn_index inside a connection.

TAP output, one test line per case. Exits 0 only when every case passed.
A missing or failing `dyetap record` is a failure, never a skip. The whole
run is skipped (1..0 # SKIP) only when tshark is not installed.
"""
import concurrent.futures
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_KEYS = {"id", "lane", "conn_id", "conn_index", "ts_request_ns", "src", "dst", "request", "response", "flags"}
TIMEOUT = 60


def canon_line(t):
    return json.dumps(
        {
            "method": t["method"],
            "target": t["target"],
            "status": t["status"],
            "req_body_len": t["req_body_len"],
            "resp_body_len": t["resp_body_len"],
            "flags": sorted(t.get("flags", [])),
        },
        separators=(", ", ": "),
    )


def oracle_line(t):
    return json.dumps({k: t[k] for k in ("method", "target", "status", "req_body_len", "resp_body_len")})


def run(cmd, diag):
    """Run @cmd; on failure append a description to @diag and return None."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        diag.append("%s: %s" % (" ".join(cmd), e))
        return None
    if r.returncode != 0:
        how = "signal %d" % -r.returncode if r.returncode < 0 else "exit %d" % r.returncode
        diag.append("%s: %s" % (" ".join(cmd), how))
        for ln in r.stderr.decode(errors="replace").splitlines()[:20]:
            diag.append("  stderr: " + ln)
        return None
    return r


def dyetap_transactions(lines, diag):
    """Canonical transaction dicts (in canonical order) from `cat --json` lines."""
    recs = []
    for n, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        try:
            o = json.loads(ln)
        except ValueError as e:
            diag.append("cat line %d is not JSON (%s): %s" % (n, e, ln[:200]))
            return None
        if not isinstance(o, dict) or set(o) != TOP_KEYS:
            got = sorted(o) if isinstance(o, dict) else type(o).__name__
            diag.append("cat line %d: keys %s, want exactly %s" % (n, got, sorted(TOP_KEYS)))
            return None
        rq, rs = o["request"], o["response"]
        missing = [k for k in ("method", "target", "body_len") if not isinstance(rq, dict) or k not in rq]
        if rs is not None:
            missing += ["response." + k for k in ("status", "body_len") if not isinstance(rs, dict) or k not in rs]
        if missing or not isinstance(o["flags"], list):
            diag.append("cat line %d: missing %s or flags not a list" % (n, missing))
            return None
        recs.append(o)
    conns = {}
    for o in recs:
        conns.setdefault(o["conn_id"], []).append(o)
    order = []
    for cid, rs in conns.items():
        rs.sort(key=lambda o: o["conn_index"])
        idx = [o["conn_index"] for o in rs]
        if idx != list(range(len(rs))):
            diag.append("conn_id %s: conn_index %s, want 0..%d" % (cid, idx, len(rs) - 1))
        first = rs[0]
        ts = first["ts_request_ns"]
        if not isinstance(ts, int):
            diag.append("conn_id %s: ts_request_ns %r is not an integer" % (cid, ts))
            ts = 0
        order.append(((ts, str(first["src"]), str(cid)), rs))
    order.sort(key=lambda x: x[0])
    out = []
    for _, rs in order:
        for o in rs:
            rq, rsp = o["request"], o["response"]
            out.append(
                {
                    "method": rq["method"],
                    "target": rq["target"],
                    "status": None if rsp is None else rsp["status"],
                    "req_body_len": rq["body_len"],
                    "resp_body_len": None if rsp is None else rsp["body_len"],
                    "flags": o["flags"],
                }
            )
    return out


def compare(name_a, a, name_b, b, diag):
    if a == b:
        return True
    if sorted(a) == sorted(b):
        diag.append("same transactions as %s but in another order" % name_b)
    diag.append("--- %s / +++ %s" % (name_a, name_b))
    for ln in difflib.unified_diff(a, b, name_a, name_b, lineterm="", n=2):
        if ln.startswith("---") or ln.startswith("+++"):
            continue
        diag.append("  " + ln)
    return False


def oracle_marked(case):
    try:
        with open(os.path.join(case, "README.md"), encoding="utf-8") as f:
            return any(ln.strip().lower() == "oracle: tshark" for ln in f)
    except OSError:
        return False


def tshark_lines(pcap):
    """(oracle lines, None) from a fresh tshark_oracle.py run, or (None, error)."""
    o = subprocess.run(
        [sys.executable, os.path.join(HERE, "tshark_oracle.py"), pcap],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
    )
    if o.returncode != 0:
        return None, "tshark_oracle.py failed: " + o.stderr.decode(errors="replace")[:300]
    return [oracle_line(json.loads(ln)) for ln in o.stdout.decode().splitlines() if ln.strip()], None


def run_case(dyetap, case, tmp, oracle):
    diag = []
    pcap = os.path.join(case, "input.pcap")
    exp_path = os.path.join(case, "expected.jsonl")
    try:
        with open(exp_path, encoding="utf-8") as f:
            expected = [canon_line(json.loads(ln)) for ln in f if ln.strip()]
    except (OSError, ValueError, KeyError) as e:
        return False, ["cannot read %s: %s" % (exp_path, e)]
    dyt = os.path.join(tmp, os.path.basename(case.rstrip("/")) + ".dyt")
    r = run([dyetap, "record", "-r", pcap, "-w", dyt, "--json"], diag)
    if r is None:
        return False, diag
    rec_out = r.stdout.decode(errors="replace").strip()
    if rec_out:
        diag.append("record --json: " + rec_out.replace("\n", " ")[:300])
    r = run([dyetap, "cat", dyt, "--json", "--no-body"], diag)
    if r is None:
        return False, diag
    txns = dyetap_transactions(r.stdout.decode("utf-8", errors="replace").splitlines(), diag)
    if txns is None:
        return False, diag
    ok = not any(d.startswith("conn_id ") for d in diag)  # conn_index / ts problems
    got = [canon_line(t) for t in txns]
    ok = compare("expected.jsonl", expected, "dyetap", got, diag) and ok
    if oracle is not None:
        want, err = oracle.result()
        if err:
            diag.append(err)
            ok = False
        else:
            ok = compare("tshark", want, "dyetap", [oracle_line(t) for t in txns], diag) and ok
    diag.insert(0, "%d transactions expected, %d recorded" % (len(expected), len(got)))
    return ok, diag


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    dyetap, cases = argv[1], argv[2:]
    if shutil.which("tshark") is None:
        print("1..0 # SKIP tshark not installed (tests/setup.sh installs it)")
        return 0
    print("1..%d" % len(cases))
    sys.stdout.flush()
    failed = 0
    # tshark needs a second or more per file just to start: run the oracles
    # two at a time in the background while dyetap works through the cases.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    oracles = {c: pool.submit(tshark_lines, os.path.join(c, "input.pcap")) for c in cases if oracle_marked(c)}
    with tempfile.TemporaryDirectory(prefix="golden.") as tmp:
        for i, case in enumerate(cases, 1):
            name = os.path.basename(os.path.normpath(case))
            try:
                ok, diag = run_case(dyetap, case, tmp, oracles.get(case))
            except Exception as e:  # a harness bug or odd output must not end the TAP stream
                ok, diag = False, ["harness error: %r" % (e,)]
            print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
            for d in diag:
                print("# " + d)
            sys.stdout.flush()
            failed += not ok
    pool.shutdown(cancel_futures=True)  # oracles of cases that failed early are not needed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
