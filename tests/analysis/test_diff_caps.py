#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`--max-groups` and `--max-endpoints` of `dyetap diff` keep what
docs/diff.md "Limits" says, for --threads 1 and 2: per candidate (and for
the secondary apart) at most K groups and E endpoints other than the
overflow entries `(differences over the cap)` and `(endpoints over the
cap)`; a difference whose group is new past the cap is counted in
groups_over_cap and in the overflow group of its endpoint and kind, a
session of a new endpoint in endpoints_over_cap and under the overflow
endpoint; no pair is left out; the candidates' two counters add up to the
summary's over_memcap and the secondary's are named apart, as
information.

The file, written by diff_scalegen in its hostile mode (see its header)
with small frames so that two threads share it, has N pairs; every
EVERY-th (id % EVERY == 0) differs, each under an endpoint of its own,
the others share GET /api/v1/items/{id}. So there are 1 + N/EVERY
endpoints and several new groups per differing pair, far more than the
caps. The shared endpoint is met among the first two pairs of any frame,
so it is one of the E kept; the other E - 1 kept hold one pair each and
the other N/EVERY - (E - 1) pairs are over the cap. How many differences
there are in all is what the same file gives without caps (the sum of
its groups' counts: each pair differs at most once per group).

Not timed.

usage: test_diff_caps.py DYETAP DIFF_SCALEGEN
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, ok  # noqa: E402


dyetap, gen = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="dyetap-diff-caps-")
N, EVERY = 4000, 4
K, E = 10, 5
EP_OVER = "(endpoints over the cap)"
LOC_OVER = "(differences over the cap)"

path = os.path.join(tmp, "h.dyt")
subprocess.run([gen, path, str(N), "--mode", "hostile", "--differ", str(EVERY),
                "--body", "256", "--flush", "8192"], check=True)


def diff(threads, *args):
    out = os.path.join(tmp, "r.json")
    p = subprocess.run([dyetap, "diff", path, "--threads", str(threads), "--quiet",
                        "--json", out, *args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode not in (0, 1):
        print("# dyetap diff exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace")))
        return None
    with open(out) as f:
        r = json.load(f)
    os.unlink(out)
    return r


def counters(r):
    return {c["name"]: c for c in r["accounting"]["counters"] if c["source"] == "diff"}


def value(r, name):
    c = counters(r).get(name)
    return c["value"] if c else 0


def sessions(e):
    return e["compared"] + e["incomplete"] + e["replay_errors"] + e["unreplayed"]


# Without caps: every pair's differences in groups of their own.
base = diff(1)
if not ok(base is not None, "uncapped run"):
    sys.exit(finish())
total_diffs = sum(g["count"] for g in base["differences"])
ok(base["summary"]["endpoints"] == 1 + N // EVERY and base["summary"]["over_memcap"] == 0
   and not any(g["location"] == LOC_OVER for g in base["differences"]),
   "uncapped: %d endpoints, nothing over a cap" % (1 + N // EVERY),
   base["summary"])
ok(total_diffs > 2 * N // EVERY and base["summary"]["groups"] > K,
   "uncapped: more groups (%d) than --max-groups %d" % (base["summary"]["groups"], K))

for threads in (1, 2):
    t = "--threads %d: " % threads
    r = diff(threads, "--max-groups", str(K), "--max-endpoints", str(E))
    if not ok(r is not None, t + "capped run"):
        continue
    s = r["summary"]
    eps = [e for e in r["endpoints"] if e["candidate"] == "candidate"]
    real_eps = [e for e in eps if e["endpoint"] != EP_OVER]
    over_eps = [e for e in eps if e["endpoint"] == EP_OVER]
    real_gr = [g for g in r["differences"] if g["location"] != LOC_OVER]
    over_gr = [g for g in r["differences"] if g["location"] == LOC_OVER]
    g_over, e_over = value(r, "groups_over_cap"), value(r, "endpoints_over_cap")

    ok(len(real_eps) == E, t + "%d endpoints kept besides the overflow one" % E,
       [e["endpoint"] for e in real_eps])
    ok(len(over_eps) == 1, t + "one overflow endpoint")
    ok(len(real_gr) == K, t + "%d groups kept besides the overflow groups" % K,
       len(real_gr))
    keys = [(g["endpoint"], g["kind"]) for g in over_gr]
    ok(len(keys) == len(set(keys)) and {g["endpoint"] for g in over_gr} <=
       {e["endpoint"] for e in eps},
       t + "at most one overflow group per endpoint and kind", keys)
    ok(s["endpoints"] == E + 1 and s["groups"] == K + len(over_gr),
       t + "the summary counts the overflow entries as endpoints and groups", s)

    ok(s["compared"] == N and s["differing"] == N // EVERY,
       t + "no pair left out: compared %d, differing %d" % (N, N // EVERY), s)
    ok(e_over == N // EVERY - (E - 1),
       t + "endpoints_over_cap = pairs of the endpoints past the cap (%d)"
       % (N // EVERY - (E - 1)), e_over)
    ok(over_eps and sessions(over_eps[0]) == e_over,
       t + "the overflow endpoint holds the endpoints_over_cap sessions",
       over_eps and over_eps[0])
    ok(sum(sessions(e) for e in real_eps) + e_over == N,
       t + "kept endpoints' sessions + endpoints_over_cap = all sessions")
    ok(g_over > 0 and g_over == total_diffs - sum(g["count"] for g in real_gr),
       t + "groups_over_cap = differences not in a kept group (%d)"
       % (total_diffs - sum(g["count"] for g in real_gr)), g_over)
    ok(sum(g["count"] for g in over_gr) == g_over,
       t + "the overflow groups' counts add up to groups_over_cap")
    ok(all(not g["noise"] for g in over_gr), t + "overflow groups are never noise")
    ok(s["over_memcap"] == g_over + e_over,
       t + "summary over_memcap = groups_over_cap + endpoints_over_cap", s["over_memcap"])
    c = counters(r)
    ok(c["groups_over_cap"]["class"] == "loss" and c["endpoints_over_cap"]["class"] == "loss"
       and r["data_incomplete"],
       t + "both counters are losses, the report data_incomplete")

    # --max-groups alone: every endpoint kept; their overflow groups are
    # outside the cap, one per endpoint and kind.
    r = diff(threads, "--max-groups", str(K))
    if ok(r is not None, t + "--max-groups alone"):
        real_gr = [g for g in r["differences"] if g["location"] != LOC_OVER]
        over_gr = [g for g in r["differences"] if g["location"] == LOC_OVER]
        keys = [(g["endpoint"], g["kind"]) for g in over_gr]
        ok(len(real_gr) == K and r["summary"]["endpoints"] == 1 + N // EVERY and
           value(r, "endpoints_over_cap") == 0,
           t + "--max-groups %d alone: %d groups kept, every endpoint" % (K, K),
           (len(real_gr), r["summary"]["endpoints"]))
        g_over = value(r, "groups_over_cap")
        ok(len(keys) == len(set(keys)) and sum(g["count"] for g in over_gr) == g_over and
           g_over == total_diffs - sum(g["count"] for g in real_gr) and
           r["summary"]["over_memcap"] == g_over,
           t + "--max-groups alone: groups_over_cap = differences not kept = over_memcap",
           g_over)
        why = " ".join(r.get("incomplete_reasons", []))
        ok("over a cap (--max-groups)" in why,
           t + "--max-groups alone: the reason names --max-groups, the one cap hit", why)

    # The secondary: its caps are its own, counted apart, information.
    r = diff(threads, "--secondary", path, "--max-groups", str(K), "--max-endpoints", str(E))
    if ok(r is not None, t + "with --secondary"):
        s = r["summary"]
        c = counters(r)
        g_over, e_over = value(r, "groups_over_cap"), value(r, "endpoints_over_cap")
        sg = c.get("secondary_groups_over_cap")
        se = c.get("secondary_endpoints_over_cap")
        ok(s["secondary_pairs"] == N and s["compared"] == N, t + "secondary: every pair", s)
        ok(e_over == N // EVERY - (E - 1) and s["over_memcap"] == g_over + e_over,
           t + "secondary: the candidate's counters alone add up to over_memcap",
           (g_over, e_over, s["over_memcap"]))
        ok(se is not None and se["value"] == N // EVERY - (E - 1) and se["class"] == "info",
           t + "secondary_endpoints_over_cap: its own pairs past the cap, information", se)
        ok(sg is not None and sg["value"] > 0 and sg["class"] == "info",
           t + "secondary_groups_over_cap counted, information", sg)
        reasons = r["candidates"][0]["incomplete_reasons"]
        ok(not any("secondary" in x for x in reasons),
           t + "secondary: the verdict's reasons name the candidate's losses only", reasons)

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(finish())
