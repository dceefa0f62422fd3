#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Third-party corpus test: every capture under CORPUS_DIR through dyetap.

Usage: run_shared.py [--live] DYETAP CORPUS_DIR
       run_shared.py --write-table CORPUS_DIR

CORPUS_DIR is ../shared/testdata/suricata-verify (tests/meson.build's
`shared_testdata`): HTTP/1.x captures of real-world edge cases from the
suricata-verify suite. When it is absent the test is skipped (1..0 # SKIP).

For each *.pcap / *.pcapng / *.cap file (sorted), one TAP test line:
  1. `dyetap record -r FILE -w TMP.dyt --json` and
     `dyetap cat TMP.dyt --json --no-body` must exit 0, not be killed by a
     signal, finish within 30 s, and print no sanitizer report on stderr
     ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
     "UndefinedBehaviorSanitizer"). record's --json output (its counters) is
     printed as a TAP comment.
     Exception: when tshark itself cannot read the whole file ("cut short"
     in the middle of a packet), `record` may also stop with a non-zero exit
     and a message on stderr (a clear error, docs/architecture.md); a signal
     or a sanitizer report still fails.
  2. Count check, only where tshark considers the capture complete: no
     tcp.analysis.lost_segment, ack_lost_segment, out_of_order,
     retransmission, fast_retransmission or spurious_retransmission in any
     frame, no TCP stream where tshark sees more final responses than
     requests (a request it could not parse, e.g. an invalid request line
     answered 400), and at least one HTTP request dissected (HTTP over UDP,
     SSDP, is ignored). Then the number of
     recorded transactions that have a request (a record whose
     request.method is a non-empty string; responses without a request are
     not counted) must equal tshark's number of HTTP requests (same tshark
     options as tshark_oracle.py). Other files get "count not checked" and
     the reason. Deliberate, explained differences go in COUNT_EXCEPTIONS.

tshark's view of each file (request count, incompleteness) is cached in
shared-corpus-tshark.tsv next to this script, keyed by the file's SHA-256:
tshark needs about a second per file just to start, which would make this
test take a minute or more on a loaded two-core machine. A file that is not
in the table or whose hash differs is run through tshark live (one pass),
as is every file with --live. --write-table re-creates the table (review
its diff). Files are processed two at a time. With the table the run takes
a few seconds plus dyetap's own time; the elapsed time is printed at the
end. A missing or failing `dyetap record` is a failure,
never a skip.
"""
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")
ANALYSIS = (
    "tcp.analysis.lost_segment",
    "tcp.analysis.ack_lost_segment",
    "tcp.analysis.out_of_order",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
)
TSHARK_OPTS = [
    "-o",
    "tcp.desegment_tcp_streams:TRUE",
    "-o",
    "tcp.reassemble_out_of_order:TRUE",
    "-o",
    "http.desegment_headers:TRUE",
    "-o",
    "http.desegment_body:TRUE",
    "-o",
    "http.decompress_body:FALSE",
]
TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shared-corpus-tshark.tsv")
# relative path -> why dyetap's count may differ from tshark's on purpose.
COUNT_EXCEPTIONS = {}
TIMEOUT = 30


def tshark_facts(path):
    """(requests, [reasons the capture is not complete]) from one tshark
    pass over the file, or (None, error text)."""
    cmd = ["tshark", "-r", path, "-T", "fields", "-E", "occurrence=a"]
    for f in ("tcp.stream", "http.request.method", "http.response.code") + ANALYSIS:
        cmd += ["-e", f]
    cmd += TSHARK_OPTS
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return None, "tshark timed out"
    if r.returncode != 0:
        err = [ln for ln in r.stderr.decode(errors="replace").splitlines() if ln and "Running as user" not in ln]
        return None, "tshark exit %d: %s" % (r.returncode, " ".join(err)[:200])
    reqs = {}
    resps = {}
    seen = set()
    for ln in r.stdout.decode(errors="replace").splitlines():
        cols = ln.split("\t")
        cols += [""] * (3 + len(ANALYSIS) - len(cols))
        stream, methods, codes = cols[0], cols[1], cols[2]
        if not stream:
            continue  # not TCP (e.g. SSDP's HTTP over UDP)
        if methods:
            reqs[stream] = reqs.get(stream, 0) + len(methods.split(","))
        if codes:
            final = [c for c in codes.split(",") if not (c.startswith("1") and c != "101")]
            resps[stream] = resps.get(stream, 0) + len(final)
        for name, v in zip(ANALYSIS, cols[3:]):
            if v:
                seen.add(name.split(".")[-1])
    orphans = [s for s in resps if resps[s] > reqs.get(s, 0)]
    if orphans:
        seen.add("more responses than requests in %d streams" % len(orphans))
    return sum(reqs.values()), sorted(seen)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def read_table():
    """rel path -> (sha256, requests or None, reasons list or error text)."""
    t = {}
    try:
        with open(TABLE, encoding="utf-8") as f:
            for ln in f:
                if ln.startswith("#") or not ln.strip():
                    continue
                rel, digest, reqs, why = ln.rstrip("\n").split("\t")
                if reqs == "error":
                    t[rel] = (digest, None, why)
                else:
                    t[rel] = (digest, int(reqs), [w for w in why.split(",") if w])
    except OSError:
        pass
    return t


def write_table(corpus, files):
    ver = subprocess.run(["tshark", "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    lines = [
        "# tshark's view of ../shared/testdata/suricata-verify for tests/golden/run_shared.py\n",
        "# written by: run_shared.py --write-table CORPUS_DIR; %s\n" % ver.stdout.decode(errors="replace").splitlines()[0],
        "# path\tsha256\ttshark HTTP requests (or error)\twhy incomplete (empty: complete)\n",
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        facts = list(ex.map(tshark_facts, files))
    for path, (reqs, why) in zip(files, facts):
        rel = os.path.relpath(path, corpus)
        if reqs is None:
            why = why.replace(path, rel).replace("\t", " ")
            lines.append("%s\t%s\terror\t%s\n" % (rel, sha256(path), why))
        else:
            lines.append("%s\t%s\t%d\t%s\n" % (rel, sha256(path), reqs, ",".join(why)))
    with open(TABLE, "w", encoding="utf-8") as f:
        f.writelines(lines)


def run(cmd, diag, allow_error=False):
    """Run @cmd. Returns (CompletedProcess or None, verdict) with verdict
    "ok", "bad" (crash, hang, sanitizer report, error exit) or "accepted"
    (with @allow_error: a plain non-zero exit with a message on stderr)."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        diag.append("%s: no exit within %d s (hang?)" % (cmd[1], TIMEOUT))
        return None, "bad"
    except OSError as e:
        diag.append("%s: %s" % (cmd[0], e))
        return None, "bad"
    err = r.stderr.decode(errors="replace")
    marks = [m for m in SANITIZER_MARKS if m in err]
    if r.returncode == 0 and not marks:
        return r, "ok"
    if r.returncode > 0 and allow_error and err.strip() and not marks:
        diag.append("%s: exit %d on a damaged file, with a message (accepted): %s" % (cmd[1], r.returncode, err.strip().splitlines()[-1][:200]))
        return None, "accepted"
    if r.returncode < 0:
        diag.append("%s: killed by signal %d (crash)" % (cmd[1], -r.returncode))
    elif r.returncode != 0:
        diag.append("%s: exit %d" % (cmd[1], r.returncode))
    if marks:
        diag.append("%s: sanitizer report on stderr (%s)" % (cmd[1], ", ".join(marks)))
    for ln in err.splitlines()[:15]:
        diag.append("  stderr: " + ln)
    return None, "bad"


def counters_line(text):
    text = text.strip()
    if not text:
        return "record --json printed nothing"
    try:
        o = json.loads(text)
    except ValueError:
        return "record --json: " + text.replace("\n", " ")[:400]

    flat = []

    def walk(prefix, v):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(prefix + k + ".", x)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v:
            flat.append("%s=%s" % (prefix[:-1], v))

    walk("", o)
    return "counters: " + (" ".join(flat) if flat else "(all zero)")


def one(dyetap, corpus, path, tmp, table):
    rel = os.path.relpath(path, corpus)
    diag = []
    ok = True
    dyt = os.path.join(tmp, rel.replace("/", "_") + ".dyt")
    cached = table.get(rel)
    if cached and cached[0] == sha256(path):
        reqs, facts = cached[1], cached[2]
    else:
        reqs, facts = tshark_facts(path)
    damaged = reqs is None and "cut short" in facts
    t0 = time.monotonic()
    rec, verdict = run([dyetap, "record", "-r", path, "-w", dyt, "--json"], diag, allow_error=damaged)
    recorded = None
    if rec is None:
        ok = verdict == "accepted"
    else:
        diag.append(counters_line(rec.stdout.decode(errors="replace")))
        cat, _ = run([dyetap, "cat", dyt, "--json", "--no-body"], diag)
        if cat is None:
            ok = False
        else:
            recorded = 0
            for ln in cat.stdout.decode("utf-8", errors="replace").splitlines():
                if not ln.strip():
                    continue
                try:
                    o = json.loads(ln)
                except ValueError:
                    diag.append("cat printed a line that is not JSON: " + ln[:200])
                    ok = False
                    break
                rq = o.get("request") if isinstance(o, dict) else None
                if isinstance(rq, dict) and isinstance(rq.get("method"), str) and rq["method"]:
                    recorded += 1
    t_dyetap = time.monotonic() - t0
    if reqs is None:
        diag.append("count not checked: " + facts)
    elif facts:
        diag.append("count not checked: tshark says incomplete (%s); tshark %d, dyetap %s" % (",".join(facts), reqs, recorded))
    elif reqs == 0:
        diag.append("count not checked: tshark dissects no HTTP request here; dyetap %s" % recorded)
    elif rel in COUNT_EXCEPTIONS:
        diag.append("count not checked (%s): tshark %d, dyetap %s" % (COUNT_EXCEPTIONS[rel], reqs, recorded))
    elif recorded is not None:
        if recorded == reqs:
            diag.append("count ok: %d transactions" % reqs)
        else:
            diag.append("count mismatch on a complete capture: tshark %d requests, dyetap %d transactions" % (reqs, recorded))
            ok = False
    diag.append("dyetap %.2f s" % t_dyetap)
    return rel, ok, diag


def main(argv):
    live = "--live" in argv
    write = "--write-table" in argv
    args = [a for a in argv[1:] if a not in ("--live", "--write-table")]
    if len(args) != (1 if write else 2):
        sys.stderr.write(__doc__)
        return 2
    dyetap, corpus = (None, args[0]) if write else (args[0], args[1])
    if not os.path.isdir(corpus):
        print("1..0 # SKIP %s is absent" % corpus)
        return 0
    if shutil.which("tshark") is None:
        print("1..0 # SKIP tshark not installed (tests/setup.sh installs it)")
        return 0
    files = []
    for root, _, names in os.walk(corpus):
        for n in names:
            if n.endswith((".pcap", ".pcapng", ".cap")):
                files.append(os.path.join(root, n))
    files.sort()
    if not files:
        print("1..0 # SKIP no capture files under %s" % corpus)
        return 0
    if write:
        write_table(corpus, files)
        print("wrote %s (%d files)" % (TABLE, len(files)))
        return 0
    table = {} if live else read_table()
    t0 = time.monotonic()
    print("1..%d" % len(files))
    sys.stdout.flush()
    failed = 0
    checked = 0
    with tempfile.TemporaryDirectory(prefix="shared-corpus.") as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
            futs = [ex.submit(one, dyetap, corpus, f, tmp, table) for f in files]
            for i, fu in enumerate(futs, 1):
                try:
                    rel, ok, diag = fu.result()
                except Exception as e:  # keep the TAP stream going
                    rel, ok, diag = os.path.relpath(files[i - 1], corpus), False, ["harness error: %r" % (e,)]
                print("%s %d - %s" % ("ok" if ok else "not ok", i, rel))
                for d in diag:
                    print("# " + d)
                    checked += d.startswith("count ok") or d.startswith("count mismatch")
                sys.stdout.flush()
                failed += not ok
    print("# %d files, %d failed, %d count-checked against tshark, %.1f s" % (len(files), failed, checked, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
