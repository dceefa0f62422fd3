#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Status changes are grouped per transition (docs/diff.md "Causes"), with
real nginx: curl's conditional and range requests to a default nginx,
captured by tcpdump on lo, `dyetap record`, replayed to an nginx with
`etag off; max_ranges 1;`, `dyetap diff --json`.

What the candidate answers, from nginx's documentation and RFC 9110:
- etag off: no ETag, so an If-None-Match cannot match (RFC 9110 13.1.2):
  the 304 of the default nginx becomes a 200 (on /a.json and /b.json);
- max_ranges 1: "if the number of ranges exceeds the limit, the whole body
  is returned": a two-range request's 206 becomes a 200;
- If-Range with the ETag the default nginx sent: it no longer matches (there
  is none, RFC 9110 13.1.5): the whole body, 206 becomes 200;
- If-Match with that ETag: nothing matches, 200 becomes 412 (RFC 9110
  13.1.1).
So three causes at status: 304 -> 200 on two endpoints (2 pairs),
206 -> 200 (2 pairs), 200 -> 412 (1 pair), each group of one transition;
Content-Type changed two ways on /b.json (multipart/byteranges -> JSON,
JSON -> the 412's HTML page): its cause claims no pattern.
A rule `ignore status` for GET /b.json hides its three; --threads 2 gives
the same bytes. Needs root (tcpdump on lo), nginx and curl; skips without.

usage: status_transitions_e2e.py DYETAP
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap_util import finish, free_port, ok  # noqa: E402

def skip(why):
    print("1..0 # SKIP " + why)
    sys.exit(0)


DYETAP = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="dyetap-transitions-")


def start_nginx(name, root, extra):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    port = free_port()
    conf = """
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  types { application/json json; }
  server {
    listen 127.0.0.1:%(port)d;
    root %(root)s;
    %(extra)s
  }
}
""" % {"d": d, "port": port, "root": root, "extra": extra}
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    p.wait()
    return None, port


def stop(p):
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def etag_of(url):
    r = subprocess.run(["curl", "-sI", url], capture_output=True, text=True, timeout=10)
    for line in r.stdout.splitlines():
        if line.lower().startswith("etag:"):
            return line.split(":", 1)[1].strip()
    return None


def diff(*args):
    r = subprocess.run([DYETAP, "diff", *args], capture_output=True, text=True, timeout=120)
    return r


def status_causes(rep):
    return sorted((c["pattern"], tuple(c["endpoints"]), c["count"])
                  for c in rep.get("causes", []) if c["location"] == "status")


def main():
    if os.geteuid() != 0:
        skip("needs root for tcpdump on lo")
    for tool in ("nginx", "curl", "tcpdump"):
        if not shutil.which(tool):
            skip("%s not installed" % tool)
    os.chmod(TMP, 0o755)  # nginx's workers run as nobody
    root = os.path.join(TMP, "www")
    os.makedirs(root)
    for name in ("a", "b"):
        with open(os.path.join(root, name + ".json"), "w") as f:
            f.write('{"name":"%s","items":[1,2,3,4,5,6,7,8,9,10,11,12]}\n' % name)
    procs = []
    try:
        prim, pport = start_nginx("primary", root, "")
        procs.append(prim)
        cand, cport = start_nginx("candidate", root, "etag off;\n    max_ranges 1;")
        procs.append(cand)
        base, bport = start_nginx("baseline", root, "")
        procs.append(base)
        noetag, nport = start_nginx("noetag", root, "etag off;")
        procs.append(noetag)
        if not prim or not cand or not base or not noetag:
            skip("nginx did not start")
        u = "http://127.0.0.1:%d" % pport
        ea, eb = etag_of(u + "/a.json"), etag_of(u + "/b.json")
        if not ok(ea and eb and ea.startswith('"') and eb.startswith('"'),
                  "the default nginx sends strong ETags (%s, %s)" % (ea, eb)):
            return finish()

        pcap = os.path.join(TMP, "cap.pcap")
        td = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-n", "-w", pcap,
                               "tcp port %d" % pport],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(td)
        line = td.stderr.readline()
        if "listening" not in line:
            skip("tcpdump cannot capture on lo: %s" % line.strip())
        time.sleep(1.0)  # the filter is attached a moment after the banner
        reqs = [
            ("/b.json", []),
            ("/b.json", ["-H", "If-None-Match: " + eb]),
            ("/b.json", ["-H", "Range: bytes=0-1,4-5"]),
            ("/b.json", ["-H", "If-Range: " + eb, "-H", "Range: bytes=0-3"]),
            ("/b.json", ["-H", "If-Match: " + eb]),
            ("/a.json", ["-H", "If-None-Match: " + ea]),
        ]
        codes = []
        for path, hdrs in reqs:
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *hdrs,
                                u + path], capture_output=True, text=True, timeout=10)
            codes.append(r.stdout)
            time.sleep(0.05)
        time.sleep(0.5)
        td.send_signal(signal.SIGINT)
        td.wait(5)
        ok(codes == ["200", "304", "206", "206", "200", "304"],
           "the default nginx answered 200 304 206 206 200 304", codes)

        rec = os.path.join(TMP, "rec.dyt")
        r = subprocess.run([DYETAP, "record", "-r", pcap, "-w", rec], capture_output=True,
                           text=True, timeout=60)
        ok(r.returncode == 0, "dyetap record", r.stderr)
        res = os.path.join(TMP, "res.dyt")
        r = subprocess.run([DYETAP, "replay", rec, "--target", "http://127.0.0.1:%d" % cport,
                            "--baseline", "http://127.0.0.1:%d" % bport, "--allow-writes",
                            "--max", "-o", res], capture_output=True, text=True, timeout=60)
        ok(r.returncode == 0, "dyetap replay to the changed nginx, a default one as baseline",
           r.stderr)

        r = diff(res, "--json", os.path.join(TMP, "rep.json"), "--quiet")
        rep = json.load(open(os.path.join(TMP, "rep.json")))
        want = [("200 -> 412", ("GET /b.json",), 1),
                ("206 -> 200", ("GET /b.json",), 2),
                ("304 -> 200", ("GET /a.json", "GET /b.json"), 2)]
        got = status_causes(rep)
        ok(got == want, "three status causes, one per transition, 304 -> 200 on both "
           "endpoints", got)
        ok(rep["summary"]["status_changes"] == 5, "5 pairs with a status change",
           rep["summary"])
        cs = [c for c in rep["causes"] if c["location"] == "status"]
        ok(all(not c["noise"] and c["severity"] == "status" for c in cs),
           "real, of severity status (the baseline never changed a status)")
        ok(all("%s -> %s" % (x["primary_value"], x["candidate_value"]) == c["pattern"]
               for c in cs for x in c["examples"]) and all(c["examples"] for c in cs),
           "every example of a cause shows its pattern")
        groups = [g for g in rep["differences"] if g["location"] == "status"]
        ok(sorted((g["endpoint"], g["pattern"], g["count"]) for g in groups) ==
           [("GET /a.json", "304 -> 200", 1), ("GET /b.json", "200 -> 412", 1),
            ("GET /b.json", "206 -> 200", 2), ("GET /b.json", "304 -> 200", 1)],
           "GET /b.json has a status group per transition", groups)
        ok(all("%s -> %s" % (x["primary_value"], x["candidate_value"]) == g["pattern"]
               for g in groups for x in g["examples"]),
           "every example of a group is of its transition")
        # Content-Type changed two ways on GET /b.json: the two-range 206's
        # multipart/byteranges (RFC 9110 14.6) -> the JSON, and the JSON ->
        # the 412's built-in HTML error page: no one pattern to claim
        ct = [c for c in rep["causes"] if c["location"] == "header:content-type" and
              c["kind"] == "value_changed"]
        ctg = [g for g in rep["differences"] if g["location"] == "header:content-type" and
               g["kind"] == "value_changed"]
        ok(len(ct) == 1 and ct[0]["pattern"] == "" and ct[0]["count"] == 2 and len(ctg) == 1 and
           sorted((x["primary_value"].split(";")[0], x["candidate_value"])
                  for x in ctg[0]["examples"]) ==
           [("application/json", "text/html"), ("multipart/byteranges", "application/json")],
           "a header changed two ways is one cause without a pattern", (ct, ctg))
        rule = [c["rule"] for c in cs if c["pattern"] == "304 -> 200"]
        ok(rule == ["[GET /a.json]\nignore status 304 -> 200\n[GET /b.json]\n"
                   "ignore status 304 -> 200"],
           "the rules of 304 -> 200: ignore status 304 -> 200 on both endpoints", rule)
        # the suggested rules, pasted: 304 -> 200 gone, the other transitions
        # of GET /b.json still there
        sug = os.path.join(TMP, "suggested.txt")
        with open(sug, "w") as f:
            f.write(rule[0] + "\n" if rule else "")
        r = diff(res, "--rules", sug, "--json", os.path.join(TMP, "sug.json"), "--quiet")
        sj = json.load(open(os.path.join(TMP, "sug.json")))
        ok(status_causes(sj) == [("200 -> 412", ("GET /b.json",), 1),
                                 ("206 -> 200", ("GET /b.json",), 2)] and
           sj["summary"]["status_changes"] == 3 and
           [x.get("hits") for x in sj.get("rules", [])] == [1, 1],
           "the suggested rules hide 304 -> 200 alone (a hit each); 206 -> 200 and 200 -> 412 "
           "stay",
           (status_causes(sj), sj["summary"]["status_changes"], sj.get("rules")))

        rules = os.path.join(TMP, "rules.txt")
        with open(rules, "w") as f:
            f.write("[GET /b.json]\nignore status\n")
        r = diff(res, "--rules", rules, "--json", os.path.join(TMP, "ign.json"), "--quiet")
        ign = json.load(open(os.path.join(TMP, "ign.json")))
        ok(status_causes(ign) == [("304 -> 200", ("GET /a.json",), 1)] and
           ign["summary"]["status_changes"] == 1,
           "ignore status for GET /b.json hides its three transitions", status_causes(ign))

        outs = []
        for t in ("1", "2"):
            p = os.path.join(TMP, "t%s.json" % t)
            diff(res, "--threads", t, "--json", p, "--quiet")
            outs.append(open(p, "rb").read())
        ok(outs[0] == outs[1], "--threads 2 writes the same JSON bytes as --threads 1")

        # Noise is learned per transition: a secondary with only `etag off`
        # shows 304 -> 200, If-Range's 206 -> 200 and If-Match's 200 -> 412
        # itself, not the two-range request's 206 -> 200 (max_ranges 1), so
        # on GET /b.json 206 -> 200 is 2 of 5 on the candidate against 1 of 5
        # on the secondary: real; the rest is learned
        res2 = os.path.join(TMP, "res2.dyt")
        r = subprocess.run([DYETAP, "replay", rec, "--target", "http://127.0.0.1:%d" % cport,
                            "--baseline", "http://127.0.0.1:%d" % nport, "--allow-writes",
                            "--max", "-o", res2], capture_output=True, text=True, timeout=60)
        r = diff(res2, "--json", os.path.join(TMP, "rep2.json"), "--quiet", "--fail-on",
                 "status_changes>0")
        rep2 = json.load(open(os.path.join(TMP, "rep2.json")))
        real = [(c["pattern"], tuple(c["endpoints"])) for c in rep2["causes"]
                if c["location"] == "status" and not c["noise"]]
        learned = sorted(c["pattern"] for c in rep2["causes"]
                         if c["location"] == "status" and c["noise"])
        ok(real == [("206 -> 200", ("GET /b.json",))] and
           learned == ["200 -> 412", "304 -> 200"] and r.returncode == 1,
           "a secondary with etag off: 206 -> 200 (max_ranges 1) stays real and trips the "
           "gate; 304 -> 200 and 200 -> 412, which the secondary shows too, are learned",
           (real, learned, r.returncode))
    finally:
        for p in procs:
            stop(p)
    shutil.rmtree(TMP, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
