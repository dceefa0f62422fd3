#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Live capture loss must not multiply (docs/capture.md "Pairing after loss").

wrk (4 keep-alive connections, tests/capture/loss/wrk-loss.lua: every
request has its own target, every nginx answer names its request) loads
nginx on 127.0.0.1 while two captures run on lo at once: tcpdump with a
large buffer (the oracle, used only when it dropped nothing) and
`dyetap record -i lo --immediate` with a 1 MiB buffer and a small snap
length, so that the kernel drops packets for dyetap under the load.
Recorded by `dyetap record -r`, tcpdump's file is the full capture: every
session of the live recording that is not flagged must be the full
capture's session of the same request, and flagged sessions and the
full capture's sessions missing from the live recording must each be at
most 2 per packet the kernel dropped (src_kernel_drops).

Usage: loss_live.py DYETAP WRK_SCRIPT   (TAP; skips without root, nginx,
wrk or tcpdump; LOSS_LIVE_DEBUG=1 prints both sides of a difference)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import tests.tap_util as tap  # noqa: E402

NGINX_CONF = """worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
  uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type text/plain; return 200 "$request_method $request_uri\\n"; }}
  }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(path, text, secs=10):
    end = time.time() + secs
    while time.time() < end:
        if os.path.exists(path) and text in open(path, errors="replace").read():
            return True
        time.sleep(0.05)
    return False


def sessions(dyetap, dyt):
    out = subprocess.run([dyetap, "cat", "--json", dyt], check=True, capture_output=True,
                         text=True).stdout
    return [json.loads(x) for x in out.splitlines()]


def key(s):
    """The request's identity: wrk-loss.lua gives every request its own target."""
    r = s.get("request") or {}
    return (r.get("method"), r.get("target")) if r.get("target") else None


def core(s):
    """A session without what depends on where the capture began or its numbering."""
    return {k: v for k, v in s.items()
            if k not in ("id", "conn_id", "conn_index") and not k.startswith("ts_")}


def one_run(dyetap, script, work):
    port = free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(d=work, port=port))
    subprocess.run(["nginx", "-p", work, "-c", os.path.join(work, "nginx.conf")], check=True)
    procs = []
    try:
        flt = "tcp port %d" % port
        full = os.path.join(work, "full.pcap")
        tlog = os.path.join(work, "tcpdump.log")
        td = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-B", "131072", "--immediate-mode",
                               "-U", "-w", full,
                               flt], stdout=subprocess.DEVNULL, stderr=open(tlog, "w"))
        procs.append(td)
        dlog = os.path.join(work, "dyetap.err")
        live = os.path.join(work, "live.dyt")
        dj = open(os.path.join(work, "live.json"), "w")
        dy = subprocess.Popen([dyetap, "record", "-i", "lo", "--immediate", "--buffer-mb", "1",
                               "--snaplen", "4096", "-w", live, "--json", flt],
                              stdout=dj, stderr=open(dlog, "w"))
        procs.append(dy)
        if not wait_for(tlog, "listening on") or not wait_for(dlog, "capturing on lo"):
            return None, "a capture did not start: " + open(dlog).read()[-300:]
        env = dict(os.environ, LOSS_REQUESTS="30000")
        subprocess.run(["wrk", "-t1", "-c4", "-d3s", "-s", script, "http://127.0.0.1:%d" % port],
                       check=True, capture_output=True, env=env)
        time.sleep(1.5)  # both captures read what the kernel still holds
        for p in (dy, td):
            p.send_signal(signal.SIGINT)
        dy.wait(timeout=60)
        td.wait(timeout=60)
        dj.close()
        if dy.returncode != 0:
            return None, "dyetap record exited %d: %s" % (dy.returncode, open(dlog).read()[-300:])
        if "0 packets dropped by kernel" not in open(tlog).read():
            return "retry", "tcpdump dropped packets"
        st = json.load(open(os.path.join(work, "live.json")))
        return (st, live, full), ""
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            os.kill(int(open(os.path.join(work, "nginx.pid")).read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def main():
    dyetap, script = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("1..0 # SKIP live capture needs root")
        return 0
    for tool in ("nginx", "wrk", "tcpdump"):
        if not shutil.which(tool):
            print("1..0 # SKIP %s not installed (tests/setup.sh)" % tool)
            return 0
    res = None
    for attempt in range(3):
        work = tempfile.mkdtemp(prefix="dyetap-loss-live-")
        res, why = one_run(dyetap, script, work)
        if res != "retry":
            break
        shutil.rmtree(work, ignore_errors=True)
    if res in (None, "retry"):
        if res == "retry":
            print("1..0 # SKIP the oracle capture (tcpdump) dropped packets 3 times")
            return 0
        tap.ok(False, "live capture under wrk load", why)
        return tap.finish()
    try:
        st, live, full = res
        fst = json.loads(subprocess.run([dyetap, "record", "-r", full, "-w", full + ".dyt",
                                         "--json"], check=True, capture_output=True,
                                        text=True).stdout)
        ref = {key(s): s for s in sessions(dyetap, full + ".dyt") if key(s)}
        got = sessions(dyetap, live)
        drops = st["src_kernel_drops"] + st["src_iface_drops"]
        print("# %d requests in the full capture (%d gap sessions there); live: %d packets "
              "received, %d dropped by the kernel, %d sessions, txn_pairs_by_position %s, "
              "txn_lost_responses %s, txn_pairing_uncertain %s"
              % (len(ref), fst["txn_gap_sessions"], st["src_kernel_received"], drops, len(got),
                 st.get("txn_pairs_by_position"), st.get("txn_lost_responses"),
                 st.get("txn_pairing_uncertain")))
        tap.ok(len(ref) > 1000 and fst["reasm_gaps"] == 0,
               "the full capture holds %d requests and no gap" % len(ref))
        bad = []
        seen = set()
        for s in got:
            k = key(s)
            if s["flags"]:
                continue
            seen.add(k)
            if k not in ref or core(ref[k]) != core(s):
                bad.append(s)
                if os.environ.get("LOSS_LIVE_DEBUG"):
                    print("# live %s\n# full %s" % (json.dumps(core(s)), json.dumps(core(ref.get(k, {})))))
        tap.ok(not bad, "every unflagged live session is the full capture's session of the same "
               "request (%d of %d differ)" % (len(bad), len(got)),
               "\n".join(json.dumps(s)[:300] for s in bad[:5]))
        ref_ok = {k for k, s in ref.items() if not s["flags"]}
        flagged = sum(1 for s in got if s["flags"])
        extra = fst["txn_gap_sessions"] + sum(1 for s in ref.values() if s["flags"])
        tap.ok(flagged <= 2 * drops + extra,
               "%d live sessions flagged for %d dropped packets (at most %d)"
               % (flagged, drops, 2 * drops + extra))
        missing = len(ref_ok - seen)
        tap.ok(missing <= 2 * drops, "%d of the full capture's sessions not in the live "
               "recording unflagged, at most %d" % (missing, 2 * drops))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
