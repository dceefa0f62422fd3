#!/bin/sh
# SPDX-License-Identifier: MIT
# Diff at scale (docs/benchmarks.md "## Diff at scale"): `dyetap diff` on a
# results file of N pairs (default 1 000 000; the target is 10 000 000),
# every pair differing, with --threads 1 and --threads 2, beside `cmp` of
# the primary bodies (the bytes dyetap compares) in the same run.
# Reports, median of RUNS runs (default 3): wall and CPU seconds, pairs/s
# per CPU second and per wall second, peak RSS, report sizes, and whether
# the reports of 1 and 2 threads are the same bytes.
# Usage: bench/diff_scale.sh [BUILD_DIR] [N_PAIRS] [RUNS]
# Needs: ninja -C BUILD cli/dyetap tests/analysis/diff_scalegen
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$top/build}
n=${2:-1000000}
runs=${3:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
/usr/bin/python3 - "$b" "$n" "$runs" "$out" <<'PY'
import os, shutil, statistics, subprocess, sys, time
b, n, runs, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dyetap = os.path.join(b, "cli", "dyetap")
gen = os.path.join(b, "tests", "analysis", "diff_scalegen")
res = os.path.join(out, "scale.dyt")
# the cmp anchor on at most 1 M pairs' bodies (1 GB), from the page cache
na = min(n, 1000000)
t0 = time.monotonic()
subprocess.run([gen, res, str(n), "--differ", "1", "--body", "1024"], check=True)
subprocess.run([gen, os.path.join(out, "anchor.dyt"), str(na), "--body", "1024",
                "--bodies", os.path.join(out, "bodies_a")], check=True)
shutil.copyfile(os.path.join(out, "bodies_a"), os.path.join(out, "bodies_b"))
os.unlink(os.path.join(out, "anchor.dyt"))
print("# generated in %.0f s: %s, %.0f MB on disk" % (time.monotonic() - t0, res,
      os.path.getsize(res) / 1e6))


def run(cmd):
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, st, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(st) not in (0, 1):
        sys.exit("failed: %s: %s" % (" ".join(cmd), err.decode(errors="replace")))
    return time.monotonic() - t, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024


def load():
    return open("/proc/loadavg").read().split()[0]


body_bytes = os.path.getsize(os.path.join(out, "bodies_a"))
cm = [run(["cmp", os.path.join(out, "bodies_a"), os.path.join(out, "bodies_b")])
      for _ in range(runs)]
cw = statistics.median(c[0] for c in cm)
cc = statistics.median(c[1] for c in cm)
print("anchor_cmp %d bodies %.2f GB: wall %.2f s (%.2f GB/s), cpu %.2f s (%.2f GB/s)"
      % (na, body_bytes / 1e9, cw, body_bytes / cw / 1e9, cc, body_bytes / cc / 1e9))
per_pair = body_bytes / na
reports = {}
for t in ("1", "2"):
    rs = []
    for i in range(runs):
        d = os.path.join(out, "t%s" % t)
        os.makedirs(d, exist_ok=True)
        rs.append(run([dyetap, "diff", res, "--threads", t, "--quiet",
                       "--json", os.path.join(d, "r.json"), "--html", os.path.join(d, "r.html"),
                       "--junit", os.path.join(d, "r.xml")]) + (load(),))
    w = statistics.median(r[0] for r in rs)
    c = statistics.median(r[1] for r in rs)
    m = max(r[2] for r in rs)
    sizes = {k: os.path.getsize(os.path.join(out, "t%s" % t, "r." + k))
             for k in ("json", "html", "xml")}
    reports[t] = [open(os.path.join(out, "t%s" % t, "r." + k), "rb").read()
                  for k in ("json", "html", "xml")]
    print("diff_threads_%s %d pairs: wall %.2f s (%.0f k pairs/s, %.2f GB/s of bodies), "
          "cpu %.2f s (%.0f k pairs/s per cpu s), peak RSS %.1f MiB, "
          "json %d B, html %d B, junit %d B; load after each run %s"
          % (t, n, w, n / w / 1e3, n * per_pair / w / 1e9, c, n / c / 1e3, m / 2**20,
             sizes["json"], sizes["html"], sizes["xml"], " ".join(r[3] for r in rs)))
    j = __import__("json").loads(reports[t][0])
    print("diff_threads_%s summary: compared %d, differing %d, data_incomplete %s"
          % (t, j["summary"]["compared"], j["summary"]["differing"], j["data_incomplete"]))
    if t == "2":
        print("threads_2_vs_1_wall %.2fx" % (w1 / w))
    w1 = w
print("reports_same_for_1_and_2_threads %s" % ("yes" if reports["1"] == reports["2"] else "NO"))
PY
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
