#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reads after writes a replay does not send (docs/replay.md "Writes").

Real software: nginx with its WebDAV module (dav_methods PUT DELETE) as
production, curl as the client, tcpdump on lo (root). Recorded, in this
order, each on its own connection: GET /dav/a.json (404: not there yet),
PUT /dav/a.json (201 Created, RFC 9110 §9.3.4), GET /dav/a.json (200, the
document just put), GET /dav/ (the collection the PUT wrote into),
GET /index.html (a static file no write touches).

Replayed without --allow-writes to a fresh nginx of the same build, with
a second fresh one as the secondary (--baseline): the PUT is not sent, so
neither target has the document. The GETs of /dav/a.json and /dav/ after
it would be answered 404 / otherwise for that reason alone, on both
targets alike: noise learning would call 200 -> 404 noise and the gate
would pass with a read compared that proves nothing. So (default
--after-skipped-writes path) they are not sent, counted as
skipped_after_writes (an exclusion the report names); the GET of
/dav/a.json before the PUT and the static file are compared and equal.
With --after-skipped-writes send they are sent (for a target that sees
production's data) and, here, the 200 -> 404 shows. A replay whose every
read is left out (--path /dav/) sends nothing, exits 3 and names the
option that would send them.

  after_writes_e2e.py DYETAP
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap_util import finish, free_port, ok  # noqa: E402

DYETAP = sys.argv[1]


def dy(*args):
    return subprocess.run([DYETAP] + list(args), capture_output=True, text=True, timeout=120)


def nginx(tmp, name, port):
    d = os.path.join(tmp, name)
    os.makedirs(os.path.join(d, "www", "dav"))
    os.makedirs(os.path.join(d, "tmp"))
    with open(os.path.join(d, "www", "index.html"), "w") as f:
        f.write("<html><body>static</body></html>\n")
    # nginx's workers run as nobody (no "user" directive, a root master)
    for sub in ("www/dav", "tmp"):
        shutil.chown(os.path.join(d, sub), user="nobody")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %(d)s/tmp/b; proxy_temp_path %(d)s/tmp/p;
  fastcgi_temp_path %(d)s/tmp/f; uwsgi_temp_path %(d)s/tmp/u; scgi_temp_path %(d)s/tmp/s;
  server {
    listen 127.0.0.1:%(p)d;
    root %(d)s/www;
    location /dav/ { dav_methods PUT DELETE; autoindex on; }
  }
}
""" % {"d": d, "p": port})
    subprocess.run(["nginx", "-c", conf], check=True)
    for _ in range(50):
        if os.path.exists(os.path.join(d, "nginx.pid")):
            break
        time.sleep(0.1)
    return os.path.join(d, "nginx.pid")


def stop(pidfile):
    try:
        os.kill(int(open(pidfile).read()), 15)
    except (OSError, ValueError):
        pass


def main():
    if os.geteuid() != 0 or not all(shutil.which(x) for x in ("tcpdump", "nginx", "curl")):
        print("1..0 # SKIP needs root, tcpdump, nginx and curl")
        return 0
    tmp = tempfile.mkdtemp(prefix="dyetap-afterw-")
    os.chmod(tmp, 0o755)  # nginx's workers read the documents
    p1, p2, p3 = free_port(), free_port(), free_port()
    pids = [nginx(tmp, "prod", p1)]
    try:
        pcap = os.path.join(tmp, "cap.pcap")
        tlog = open(os.path.join(tmp, "tcpdump.log"), "w")
        td = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w",
                               pcap, "tcp port %d" % p1], stdout=subprocess.DEVNULL, stderr=tlog)
        for _ in range(50):
            if "listening" in open(tlog.name).read():
                break
            time.sleep(0.1)
        time.sleep(0.3)
        base = "http://127.0.0.1:%d" % p1
        codes = []
        for args in (["%s/dav" % base], ["%s/dav/a.json" % base],
                     ["-X", "PUT", "--data-binary", '{"id":1}',
                                                 "%s/dav/a.json" % base],
                     ["%s/dav/a.json" % base], ["%s/dav/" % base], ["%s/index.html" % base]):
            c = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"] + args,
                               capture_output=True, text=True, timeout=10)
            codes.append(c.stdout)
            time.sleep(0.05)
        time.sleep(1)
        td.send_signal(2)
        td.wait(timeout=10)
        tlog.close()
        rec = os.path.join(tmp, "rec.dyt")
        r = dy("record", "-r", pcap, "-w", rec)
        ok(r.returncode == 0 and codes == ["301", "404", "201", "200", "200", "200"],
           "production: GET /dav 301 (to /dav/), GET 404, PUT 201 Created, GET 200, GET /dav/ "
           "200, GET /index.html 200",
           (codes, r.stderr[-300:]))

        pids += [nginx(tmp, "cand", p2), nginx(tmp, "sec", p3)]
        res = os.path.join(tmp, "res.dyt")
        rj = os.path.join(tmp, "rep.json")
        r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % p2, "--baseline",
               "http://127.0.0.1:%d" % p3, "-o", res, "--json", "--quiet")
        js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
        ctr = js.get("counters", {})
        d = dy("diff", res, "--json", rj, "--fail-on", "causes>0")
        rep = json.load(open(rj)) if os.path.exists(rj) else {}
        summ = rep.get("summary", {})
        excl = {e.get("name"): e.get("value") for e in rep.get("exclusions", [])}
        ok(r.returncode == 0 and ctr.get("skipped_writes") == 1 and
           ctr.get("skipped_after_writes") == 2 and js.get("sent") == 6,
           "replay without --allow-writes: the PUT not sent, nor the 2 reads of what it wrote; "
           "the GET before it and the static file sent (to both targets)",
           (r.returncode, r.stderr[-300:], ctr, js.get("sent")))
        ok(d.returncode == 0 and summ.get("compared") == 3 and summ.get("differing") == 0 and
           excl.get("skipped_after_writes") == 2 and
           "skipped_after_writes" in d.stdout,
           "diff: the 3 compared reads equal, the 2 left out named as excluded "
           "(skipped_after_writes), not learned as noise",
           (d.returncode, d.stdout[-800:], summ, rep.get("exclusions")))

        res2 = os.path.join(tmp, "res2.dyt")
        rj2 = os.path.join(tmp, "rep2.json")
        r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % p2, "-o", res2, "--json",
               "--quiet", "--after-skipped-writes", "send")
        js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
        d = dy("diff", res2, "--json", rj2)
        rep = json.load(open(rj2)) if os.path.exists(rj2) else {}
        pats = [(c.get("location"), c.get("pattern")) for c in rep.get("causes", [])
                if not c.get("noise")]
        ok(js.get("sent") == 5 and js.get("counters", {}).get("skipped_after_writes") == 0 and
           ("status", "200 -> 404") in pats,
           "--after-skipped-writes send: the reads go, and the document the PUT made is 404",
           (js.get("sent"), js.get("counters"), pats))
        # nginx's redirect names the port it was reached at (port_in_redirect):
        # Location http://127.0.0.1:P1/dav/ recorded, :P2 from the candidate;
        # the same once the target's authority is read as the recorded one
        locs = [c for c in rep.get("causes", []) if "location" in (c.get("location") or "")]
        ok(not locs, "GET /dav's redirect: the Location naming the candidate's own port is no "
           "difference", locs)

        # every read of the filter left out: nothing sent, and the message says
        # which option sends them
        r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % p2, "-o",
               os.path.join(tmp, "res3.dyt"), "--quiet", "--path", "/dav/")
        ok(r.returncode == 3 and "no request was sent" in r.stderr and
           "after writes 1" in r.stderr and "--after-skipped-writes send" in r.stderr,
           "only left-out reads: exit 3, 'no request was sent', naming --after-skipped-writes "
           "send", (r.returncode, r.stderr[-500:]))
    finally:
        for p in pids:
            stop(p)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
