#!/bin/sh
# SPDX-License-Identifier: MIT
# Diff benchmark (docs/benchmarks.md "## Diff"): dyetap's differ on one
# core beside cmp and a jq-based structural diff of the same pairs, all
# pinned to the same core and timed in CPU seconds (user + system), median
# of 5 runs.
# Usage: bench/diff.sh [BUILD_DIR] [N_PAIRS]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$top/build}
n=${2:-20000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
core=1
[ "$(nproc)" -gt 1 ] || core=0
echo "# dyetap differ (taskset -c $core, thread CPU time, median of 5)"
taskset -c $core "$b/bench/diff_bench" "$out" "$n"
echo "# anchors (taskset -c $core, child CPU time, median of 5)"
python3 - "$out" "$n" "$core" <<'PY'
import os, resource, subprocess, sys
out, n, core = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def cpu(cmd, stdin=None):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["taskset", "-c", core] + cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

def med(f):
    v = sorted(f() for _ in range(5))
    return v[2]

# cmp: the identical bodies concatenated, 5 copies (~100 MB) so the
# measurement is well above the rusage resolution
a, bb = os.path.join(out, "big_a"), os.path.join(out, "big_b")
for src, dst in (("ident_a.json", a), ("ident_b.json", bb)):
    data = open(os.path.join(out, src), "rb").read()
    with open(dst, "wb") as f:
        for _ in range(5):
            f.write(data)
size = os.path.getsize(a)
t = med(lambda: cpu(["cmp", a, bb]))
print("cmp_identical_GBps %.2f" % (size / t / 1e9))
prog = ('def leaves: [paths(scalars) as $p | {p: $p, v: getpath($p)}]; '
        '. as [$a, $b] | ($a | leaves) as $la | ($b | leaves) as $lb | '
        '(($la - $lb) + ($lb - $la)) | length')
nj = min(n, 2000)  # jq manages a few thousand pairs/s
for kind in ("ident", "differ"):
    src = os.path.join(out, "pairs_%s.jsonl" % kind)
    sub = os.path.join(out, "jq_%s.jsonl" % kind)
    with open(src) as f, open(sub, "w") as g:
        for i, line in enumerate(f):
            if i == nj:
                break
            g.write(line)
    t = med(lambda: cpu(["jq", "-c", prog, sub]))
    print("jq_%s_pairs_per_s %.0f" % (kind, nj / t))
    res = subprocess.run(["jq", "-c", prog, sub], capture_output=True, text=True).stdout.split()
    print("jq_%s_pairs_with_changes %d of %d" % (kind, sum(1 for x in res if int(x) > 0), nj))
PY
