#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`dyetap replay --loop` at length, against nginx on loopback.

Usage: loop_e2e.py DYETAP TESTTOOL GROUP

GROUP bound: a recording replayed with --loop at --max over far more data
frames than the results writer keeps index entries in memory (the cap made
small with DYETAP_INDEX_MEM_FRAMES, docs/format.md §1.3) and far more
records than the store reader's record cap (DYETAP_MAX_RECORDS, which
bounds one read-through, not all passes): every pass is replayed, the
index entries go to the temporary file (trailer counter
store_index_spilled, at most the cap left in memory), replay's peak RSS
over 8x the sessions stays within 16 MiB of the short run's, and the
results file reads back whole: `dyetap info` and `dyetap cat` count every session and
result, each session with exactly one result.

GROUP maxwait: under --max nothing is scheduled, so a result's lateness
is the time the request waited inside replay, never the time since the
start of the run. Replay hands a request to its engine only while fewer
than max_pending (512 here) are pending, so the request handed over
k-th went after at least k - 511 requests had completed: its send time
minus its lateness (when it was handed over) is at or after the
(k - 511)-th completion. No timing threshold is involved.

Recordings are built with the store writer (replay_testtool mkrec); nginx
(1 worker, access log off) answers `return 200 "ok\\n"`. Prints TAP.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, free_port, ok  # noqa: E402

DYETAP, TOOL, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
TMP = tempfile.mkdtemp(prefix="dyetap-loop-")
PENDING_MIN = 512  # replay/replay_batch.c PENDING_MIN_MAX: requests pending per thread under --max, at least


def mkrec(name, conns, per_conn):
    """conns recorded connections, per_conn GETs each, 10 us apart."""
    path = os.path.join(TMP, name)
    lines = []
    for i in range(per_conn):
        for k in range(1, conns + 1):
            lines.append("%d\t%.3f\tGET\t/r/%d\t-\t-\t-\t-" % (k, (i * conns + k) * 0.01, i))
    subprocess.run([TOOL, "mkrec", path], input="\n".join(lines) + "\n", text=True,
                   check=True)
    return path


def start_nginx():
    if not shutil.which("nginx"):
        return None
    d = tempfile.mkdtemp(prefix="nginx-", dir=TMP)
    port = free_port()
    conf = """
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  server { listen 127.0.0.1:%(port)d; location / { return 200 "ok\\n"; } }
}
""" % {"d": d, "port": port}
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, "http://127.0.0.1:%d" % port
        except OSError:
            time.sleep(0.05)
    p.kill()
    return None


def replay(args, env=None):
    """Run `dyetap replay ... --json -q`: (exit code, summary, stderr, peak RSS
    in KiB from wait4, [(seconds, VmRSS KiB)] sampled every 0.2 s)."""
    p = subprocess.Popen([DYETAP, "replay"] + args + ["--json", "-q"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    samples, t0 = [], time.monotonic()

    def sample():
        while p.poll() is None:
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            samples.append((time.monotonic() - t0, int(line.split()[1])))
            except (OSError, ValueError):
                return
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = [], []
    ro = threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True)
    re_ = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
    ro.start()
    re_.start()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    ro.join()
    re_.join()
    th.join()
    js = None
    try:
        js = json.loads(out[0]) if out and out[0].strip() else None
    except ValueError:
        pass
    return p.returncode, js, err[0] if err else "", ru.ru_maxrss, samples


def info(path):
    p = subprocess.run([DYETAP, "info", path, "--json"], capture_output=True, text=True)
    return p.returncode, json.loads(p.stdout) if p.returncode == 0 else None, p.stderr


def cat(path):
    """Every record of @path as a dict (`dyetap cat --json --no-body`)."""
    p = subprocess.run([DYETAP, "cat", path, "--json", "--no-body"], capture_output=True,
                       text=True)
    return p.returncode, [json.loads(x) for x in p.stdout.splitlines() if x.strip()], p.stderr


def env_small_index(frames):
    e = dict(os.environ)
    e["DYETAP_INDEX_MEM_FRAMES"] = str(frames)
    # The readers' record cap, far below the records of all passes: each
    # pass reads the recording afresh and must not be cut short by it.
    e["DYETAP_MAX_RECORDS"] = "5000"
    # ASan holds freed blocks in a quarantine of up to 256 MiB: that is the
    # sanitizer's memory, not replay's, so it is kept small here.
    a = e.get("ASAN_OPTIONS", "")
    e["ASAN_OPTIONS"] = (a + ":" if a else "") + "quarantine_size_mb=4"
    return e


def group_bound(url):
    conns, per = 20, 50  # 1000 sessions a pass
    rec = mkrec("rec.dyt", conns, per)
    cap = 8
    env = env_small_index(cap)
    short_loops, long_loops = 6, 48
    res_s = os.path.join(TMP, "short.dyt")
    res_l = os.path.join(TMP, "long.dyt")
    args = ["--target", url, "--max", "-c", str(conns)]
    rc, js, err, rss_s, _ = replay([rec, "-o", res_s, "--loop", str(short_loops)] + args, env)
    ok(rc == 0 and js and js["sent"] == short_loops * 1000,
       "short run: %d sessions replayed" % (short_loops * 1000), (rc, err, js and js["sent"]))
    rc, js, err, rss_l, samples = replay([rec, "-o", res_l, "--loop", str(long_loops)] + args,
                                         env)
    n = long_loops * conns * per
    ok(rc == 0 and js and js["sent"] == n and js["ok"] == n and js["lost"] == 0,
       "long run: %d sessions replayed, all ok, none lost" % n,
       (rc, err, js and {k: js[k] for k in ("sent", "ok", "lost")}))

    # The index: spilled, at most the cap left in memory at the end.
    rc, inf, err = info(res_l)
    ok(rc == 0 and inf is not None, "dyetap info reads the long results file", err)
    inf = inf or {"counters": {}, "frames": 0}
    frames = inf["frames"]
    spilled = inf["counters"].get("store_index_spilled", 0)
    ok(frames > 20 * cap, "the long results file has %d data frames, over 20x the cap of %d"
       % (frames, cap))
    ok(spilled >= frames - cap and spilled <= frames,
       "store_index_spilled %d: at most %d index entries were in memory at the end"
       % (spilled, cap), inf["counters"])
    ok(inf.get("has_index") and inf.get("state") == "complete",
       "the index written from the temporary file is valid (state %s)" % inf.get("state"))

    # Memory: 8x the sessions, the same peak (RSS samples shown on failure).
    ok(rss_l <= rss_s + 16 * 1024,
       "peak RSS over %d sessions %.1f MiB, over %d sessions %.1f MiB: within 16 MiB"
       % (n, rss_l / 1024, short_loops * 1000, rss_s / 1024),
       " ".join("%.0fs:%.1fMiB" % (t, r / 1024) for t, r in samples[::5]))
    # Everything reads back: info counts, cat records, one result per session.
    ok(inf.get("sessions") == n and inf.get("results") == n and inf.get("records") == 2 * n,
       "dyetap info: %d sessions and %d results" % (n, n),
       {k: inf.get(k) for k in ("sessions", "results", "records")})
    ok(inf["counters"].get("sent") == n and inf["counters"].get("ok") == n,
       "the trailer's replay counters: sent and ok %d" % n)
    rc, recs, err = cat(res_l)
    sessions = [r["id"] for r in recs if "id" in r]
    results = [r["session_id"] for r in recs if "session_id" in r]
    ok(rc == 0 and not err, "dyetap cat reads it without warnings", err)
    ok(len(sessions) == n and len(set(sessions)) == n,
       "dyetap cat: %d sessions, ids distinct (%d, %d)" % (n, len(sessions), len(set(sessions))))
    ok(len(results) == n and sorted(results) == sorted(sessions),
       "dyetap cat: %d results, exactly one for each session" % n, len(results))


def group_maxwait(url):
    conns, per, loops = 10, 10, 200  # 20 000 requests, 512 pending at most
    rec = mkrec("rec.dyt", conns, per)
    res = os.path.join(TMP, "max.dyt")
    rc, js, err, _, _ = replay([rec, "-o", res, "--loop", str(loops), "--target", url, "--max",
                                "-c", str(conns)])
    n = conns * per * loops
    ok(rc == 0 and js and js["sent"] == n and js["pace"] == "max",
       "%d requests replayed at --max" % n, (rc, err))
    rc, inf, err = info(res)
    ok(rc == 0 and inf and inf["meta"].get("pace") == "max",
       "the results header says pace max", inf and inf["meta"].get("pace"))
    rc, recs, err = cat(res)
    # The k-th session handed over: pass P, recorded id i (ids 1..100 in
    # request-time order) -> k = P * 100 + i - 1 (ids are (P << 40) | id).
    res_by = {r["session_id"]: r for r in recs if "session_id" in r}
    done = sorted(r["ts_sent_ns"] + r["latency_ns"] for r in res_by.values())
    per_pass = conns * per
    bad, checked = [], 0
    for sid, r in res_by.items():
        k = (sid >> 40) * per_pass + (sid & ((1 << 40) - 1)) - 1
        if k < PENDING_MIN:
            continue
        handed = r["ts_sent_ns"] - r["lateness_ns"]
        checked += 1
        if handed < done[k - PENDING_MIN]:
            bad.append((k, r["lateness_ns"], done[k - PENDING_MIN] - handed))
    ok(len(res_by) == n and checked == n - PENDING_MIN,
       "%d results, %d checked" % (len(res_by), checked))
    ok(not bad,
       "lateness at --max is the wait inside replay: every request handed over after the "
       "completions that made room for it (%d late by the run's clock)" % len(bad),
       sorted(bad)[:5])


def main():
    ng = start_nginx()
    if not ng:
        print("1..0 # SKIP nginx not found")
        return 0
    try:
        {"bound": group_bound, "maxwait": group_maxwait}[GROUP](ng[1])
    finally:
        ng[0].terminate()
        try:
            ng[0].wait(5)
        except subprocess.TimeoutExpired:
            ng[0].kill()
        shutil.rmtree(TMP, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
