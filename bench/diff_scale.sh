#!/bin/sh
# SPDX-License-Identifier: MIT
# Diff at scale (docs/benchmarks.md "## Diff at scale"): `dyetap diff` on a
# results file of N pairs (default 1 000 000; the target is 10 000 000),
# every pair differing, with --threads 1 and --threads 2, beside `cmp` of
# the primary bodies (the bytes dyetap compares) in the same run.
# Runs of 1 and 2 threads alternate (RUNS each, default 3), each with the
# load average at its start. Reports medians: wall and CPU seconds, pairs/s
# per CPU second and per wall second, peak RSS, report sizes, whether the
# reports of 1 and 2 threads are the same bytes; for 2 threads the CPU
# seconds of each thread (sampled from /proc/PID/task/*/stat every 20 ms
# until the process ends: the main thread is the one whose id is the
# process id; with --threads 2 it and one more thread decode, pair in
# turn and compare) and the speed-up they bound on two idle cores:
# total CPU / the busiest thread's CPU, at most 2.
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


HZ = os.sysconf("SC_CLK_TCK")


def threads_cpu(pid, seen):
    """CPU seconds of each thread of @pid so far, into seen[tid]."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        fl = st[st.rindex(")") + 2:].split()
        seen[int(tid)] = (int(fl[11]) + int(fl[12])) / HZ


def run(cmd):
    """wall s, CPU s, peak RSS bytes, {tid: CPU s} (the last sample of each thread)."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = {}
    while True:
        threads_cpu(p.pid, seen)
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.02)
    if os.waitstatus_to_exitcode(st) not in (0, 1):
        sys.exit("failed: %s" % " ".join(cmd))
    return time.monotonic() - t, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024, \
        {k: v for k, v in seen.items()}


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
rs = {"1": [], "2": []}
for i in range(runs):
    for t in ("1", "2"):
        d = os.path.join(out, "t%s" % t)
        os.makedirs(d, exist_ok=True)
        la = load()
        r = run([dyetap, "diff", res, "--threads", t, "--quiet",
                 "--json", os.path.join(d, "r.json"), "--html", os.path.join(d, "r.html"),
                 "--junit", os.path.join(d, "r.xml")])
        rs[t].append(r + (la,))
        th = r[3]
        print("# run %d --threads %s: wall %.2f s, cpu %.2f s, load %s; threads: %s"
              % (i + 1, t, r[0], r[1], la,
                 " ".join("%.2f" % th[k] for k in sorted(th))))
w = {}
for t in ("1", "2"):
    w[t] = statistics.median(r[0] for r in rs[t])
    c = statistics.median(r[1] for r in rs[t])
    m = max(r[2] for r in rs[t])
    sizes = {k: os.path.getsize(os.path.join(out, "t%s" % t, "r." + k))
             for k in ("json", "html", "xml")}
    reports[t] = [open(os.path.join(out, "t%s" % t, "r." + k), "rb").read()
                  for k in ("json", "html", "xml")]
    print("diff_threads_%s %d pairs: wall %.2f s (%.0f k pairs/s, %.2f GB/s of bodies), "
          "cpu %.2f s (%.0f k pairs/s per cpu s), peak RSS %.1f MiB, "
          "json %d B, html %d B, junit %d B; load at the start of each run %s"
          % (t, n, w[t], n / w[t] / 1e3, n * per_pair / w[t] / 1e9, c, n / c / 1e3, m / 2**20,
             sizes["json"], sizes["html"], sizes["xml"], " ".join(r[4] for r in rs[t])))
    j = __import__("json").loads(reports[t][0])
    print("diff_threads_%s summary: compared %d, differing %d, data_incomplete %s"
          % (t, j["summary"]["compared"], j["summary"]["differing"], j["data_incomplete"]))
# per-thread CPU of the 2-thread runs: the main thread has the process id
# (the smallest tid)
main_t = statistics.median(r[3][min(r[3])] for r in rs["2"])
n_others = statistics.median(len(r[3]) - 1 for r in rs["2"])
others = statistics.median(sum(v for k, v in r[3].items() if k != min(r[3])) for r in rs["2"])
busiest = statistics.median(max(r[3].values()) for r in rs["2"])
total = statistics.median(sum(r[3].values()) for r in rs["2"])
print("threads_2_cpu: main thread %.2f s, %g other thread(s) %.2f s together, "
      "total %.2f s, busiest thread %.2f s (medians)" % (main_t, n_others, others, total, busiest))
print("threads_2_bound %.2fx (total / busiest thread; on 2 idle cores at most 2.00x)"
      % (total / busiest))
print("threads_2_vs_1_wall %.2fx (medians of alternating runs)" % (w["1"] / w["2"]))
print("threads_2_vs_1_cpu %.2fx (CPU of 1 thread / CPU of 2)"
      % (statistics.median(r[1] for r in rs["1"]) / statistics.median(r[1] for r in rs["2"])))
print("reports_same_for_1_and_2_threads %s" % ("yes" if reports["1"] == reports["2"] else "NO"))
PY
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
