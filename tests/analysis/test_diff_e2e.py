#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end test of `dyetap diff` on results files with planted
differences and noise (written by analysis_testgen; see its header for the
plan). Checks every planted change is reported with the right signature,
noise is not reported as a difference, the JSON/JUnit/HTML reports, the
exit codes, masking of credentials, and renders the HTML in headless
chromium when it is installed. TAP output.

usage: test_diff_e2e.py DYETAP ANALYSIS_TESTGEN SOURCE_ROOT
"""
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

n = 0
failed = 0


def ok(cond, what):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n, what), flush=True)
    return cond


dyetap, gen, root = sys.argv[1], sys.argv[2], sys.argv[3]
tmp = tempfile.mkdtemp(prefix="dyetap-diff-e2e-")


def run(*args):
    p = subprocess.run([dyetap, "diff", *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def path(name):
    return os.path.join(tmp, name)


try:
    r = subprocess.run([gen, tmp], capture_output=True, text=True)
    ok(r.returncode == 0, "generator wrote the results files " + r.stderr.strip())
    with open(path("rules.txt"), "w") as f:
        f.write("# the search page prints when it was generated\n"
                "mask body generated at [0-9T:.Z-]+\n")

    planted = {
        ("GET /users/{id}", "body:$.items[*].price", "value_changed"),
        ("GET /users/{id}", "body:$.email", "missing"),
        ("GET /users/{id}", "header:cache-control", "value_changed"),
        ("GET /orders/{id}", "status", "status_changed"),
        ("POST /search", "body:text[4][2]", "text_changed"),
        ("GET /feed", "body:$.beta", "extra"),
    }
    noise_locs = {"body:$.ts", "body:$.request_id", "body:$.served_by", "header:date",
                  "header:x-request-id", "header:set-cookie", "header:content-encoding"}

    rc, out, err = run(path("results.dyt"), "--secondary", path("secondary.dyt"),
                       "--rules", path("rules.txt"), "--json", path("r.json"),
                       "--junit", path("r.xml"), "--html", path("r.html"),
                       "--fail-on", "status_changes>0", "--fail-on", "diff_rate>200%",
                       "--fail-on", "causes>6", "--no-color")
    ok(rc == 1, "a tripped gate exits 1 (got %d: %s)" % (rc, err.strip()))
    ok("DATA INCOMPLETE" in out.splitlines()[0] if out else False,
       "terminal summary says the data is incomplete at the top")
    ok("gate status_changes>0: TRIPPED" in out, "terminal summary lists the tripped gate")

    rep = json.load(open(path("r.json")))
    diffs = rep["differences"]
    for d in diffs:
        for k in ("endpoint", "location", "kind", "count", "rate", "noise"):
            if k not in d:
                ok(False, "difference group has key %s" % k)
    real = {(d["endpoint"], d["location"], d["kind"]) for d in diffs if not d["noise"]}
    for sig in sorted(planted):
        ok(sig in real, "planted change reported: %s %s %s" % sig)
    ok(real == planted, "no other real difference (extra: %s)" % sorted(real - planted))
    # causes: each planted change is on one endpoint, so one real cause each
    causes = rep["causes"]
    realc = {(c["endpoints"][0], c["location"], c["kind"]) for c in causes
             if not c["noise"] and len(c["endpoints"]) == 1}
    # (a text body's changed line and word are the text body's cause)
    want = {(e, "body:text" if l.startswith("body:text") else l, k) for e, l, k in planted}
    ok(realc == want and rep["summary"]["causes"] == len(planted),
       "one real cause per planted change (%s)" % sorted(realc ^ want))
    ok(all(c["groups"] and c["rule"] and c["examples"] for c in causes if not c["noise"]),
       "every real cause lists its groups, an example and the rules that accept it")
    ok([c["kind"] for c in causes][0] == "status_changed" and causes[0]["pattern"] == "200 -> 500",
       "causes lead with the status change, its pattern 200 -> 500")
    item = [c for c in causes if c["location"] == "body:$.items[*].price"][0]
    ok(item["examples"][0]["location"] == "body:$.items[1].price",
       "the element's own location is kept in the example (%s)" % item["examples"][0]["location"])
    ok(item["rule"] == "[GET /users/{id}]\nignore path $.items[*].price",
       "the rules line of a cause (%r)" % item["rule"])
    ok(all(c["noise"] for c in causes[len(planted):]), "noise causes come after the real ones")
    for d in diffs:
        if d["location"] in noise_locs:
            ok(d["noise"], "noise location %s %s is marked noise (%s)"
               % (d["endpoint"], d["location"], d["noise_reason"]))
    st = [d for d in diffs if d["location"] == "status"][0]
    # 40 order sessions, 2 of them incomplete (TCP gap): 10 of 38 compared
    ok(st["count"] == 10 and abs(st["rate"] - 10 / 38) < 1e-6,
       "status change count 10, rate 10/38 (got %d, %g)" % (st["count"], st["rate"]))
    ok(st["example"]["primary_value"] == "200" and st["example"]["candidate_value"] == "500",
       "status example values")
    s = rep["summary"]
    ok(s["status_changes"] == 10, "summary.status_changes = 10")
    ok(s["incomplete"] == 2 and s["replay_errors"] == 1, "2 incomplete sessions, 1 replay error")
    ok(rep["data_incomplete"] is True, "data_incomplete is true")
    reasons = " ".join(rep["incomplete_reasons"])
    ok("gap: 2" in reasons and "timeout: 1" in reasons and "tcp_gaps = 2" in reasons,
       "incomplete reasons name gaps, timeouts and trailer counters: " + reasons)
    ok(rep["accounting"]["incomplete_by_reason"].get("gap") == 2, "accounting by reason")
    ok(rep["accounting"]["replay_errors_by_kind"].get("timeout") == 1, "replay errors by kind")
    names = {(c["name"], c["value"]) for c in rep["accounting"]["counters"]}
    ok(("tcp_gaps", 2) in names, "trailer counters reach the report")
    ok(s["secondary_pairs"] > 200, "secondary pairs used (%d)" % s["secondary_pairs"])
    eps = {e["endpoint"]: e for e in rep["endpoints"]}
    ok(set(eps) == {"GET /users/{id}", "GET /orders/{id}", "POST /search", "GET /feed",
                    "GET /static/logo.png", "GET /health"}, "endpoints by template: %s" % sorted(eps))
    lat = s["latency"]
    ok(abs(lat["primary_p50_ms"] - 1.0) < 1e-6 and lat["candidate_p99_ms"] >= 1.9,
       "latency p50/p99 primary vs candidate (%s)" % lat)
    gates = {g["expr"]: g for g in rep["gates"]}
    ok(gates["status_changes>0"]["tripped"] and not gates["diff_rate>200%"]["tripped"],
       "gates recorded with their outcome")
    ok(gates["causes>6"]["value"] == 6 and not gates["causes>6"]["tripped"],
       "a gate counts causes (%s)" % gates["causes>6"])
    text = [d for d in diffs if d["location"] == "body:text[4][2]"][0]
    cv = text["example"]["candidate_value"]
    ok(cv == "score: 0.7" and text["example"]["primary_value"] == "score: 0.9"
       and not [d for d in diffs if d["location"].startswith("body:text[5]")],
       "a changed word is reported with its line; the masked line is not compared")
    ok(rep["rules"][0]["hits"] > 0, "rule hits counted")

    alltext = "".join(open(path(p), encoding="utf-8").read() for p in ("r.json", "r.xml", "r.html"))
    alltext += out
    ok("secret" not in alltext, "Authorization, Cookie and Set-Cookie values masked in every report")
    ok("Bearer &lt;masked&gt;" in alltext or "Bearer <masked>" in alltext, "masked marker shown")

    # JUnit: testsuites > testsuite > testcase (> failure) with the usual attributes
    x = ET.parse(path("r.xml")).getroot()
    ok(x.tag == "testsuites" and {"tests", "failures", "errors"} <= set(x.attrib), "junit root")
    suites = x.findall("testsuite")
    ok(len(suites) == 1 and {"name", "tests", "failures", "errors", "skipped"} <= set(suites[0].attrib),
       "junit testsuite attributes")
    cases = suites[0].findall("testcase")
    ok(int(suites[0].get("tests")) == len(cases), "tests attribute counts the testcases")
    nfail = sum(1 for c in cases if c.find("failure") is not None)
    ok(int(suites[0].get("failures")) == nfail, "failures attribute counts failures")
    byname = {c.get("name"): c for c in cases}
    ok(all("classname" in c.attrib for c in cases), "every testcase has a classname")
    f = byname["GET /users/{id}"].find("failure")
    ok(f is not None and "message" in f.attrib and "body:$.items[*].price" in (f.text or "")
       and "example session" in (f.text or ""), "endpoint failure carries signatures and an example")
    ok(byname["GET /health"].find("failure") is None, "clean endpoint passes")
    ok(byname["data completeness"].find("failure") is not None, "incomplete data fails its testcase")
    ok(byname["status_changes>0"].find("failure") is not None, "tripped gate is a failed testcase")

    # HTML: well-formed enough, self-contained, escaped
    h = open(path("r.html"), encoding="utf-8").read()

    class P(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.ext = []
            self.ids = set()

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if "id" in a:
                self.ids.add(a["id"])
            for k in ("src", "href"):
                v = a.get(k) or ""
                if v and not v.startswith("#"):
                    self.ext.append(v)
            if tag == "link":
                self.ext.append(str(a))

    p = P()
    p.feed(h)
    ok(not p.ext, "HTML references nothing outside itself (%s)" % p.ext[:3])
    ok({"summary", "chart-rate", "chart-latency", "differences", "noise", "endpoints",
        "examples", "accounting", "incomplete"} <= p.ids, "HTML sections and SVG charts present")
    ok("<script>" in h and "sortable" in h and "<style>" in h, "inline CSS and JS, sortable tables")
    ok("{id}" in h and "<masked>" not in h, "text escaped in HTML")

    # learned noise needs the secondary: without it served_by is a real change,
    # the timestamp and UUID fields are likely noise (shown, not dropped)
    rc, out, err = run(path("results.dyt"), "--json", path("n.json"), "--quiet")
    ok(rc == 0, "no gate: exit 0 (got %d %s)" % (rc, err.strip()))
    rep2 = json.load(open(path("n.json")))
    g = {(d["endpoint"], d["location"]): d for d in rep2["differences"]}
    sb = g.get(("GET /users/{id}", "body:$.served_by"))
    ok(sb is not None and not sb["noise"], "without a secondary served_by is reported")
    for loc in ("body:$.ts", "body:$.request_id"):
        d = g.get(("GET /users/{id}", loc))
        ok(d is not None and d["noise"] and d["noise_reason"] == "volatile",
           "without a secondary %s is shown as likely noise" % loc)

    # role "secondary" results in the same file work like --secondary
    rc, out, err = run(path("combined.dyt"), "--rules", path("rules.txt"), "--json", path("c.json"), "--quiet")
    rep3 = json.load(open(path("c.json")))
    real3 = {(d["endpoint"], d["location"], d["kind"]) for d in rep3["differences"] if not d["noise"]}
    ok(real3 == planted, "combined file: same real differences (%s)" % sorted(real3 ^ planted))

    # re-run with new rules: no replay needed, changes disappear
    with open(path("rules2.txt"), "w") as f:
        f.write("ignore header cache-control\n[GET /users/*]\nignore path $.items[*].price\n")
    rc, out, err = run(path("results.dyt"), "--secondary", path("secondary.dyt"),
                       "--rules", path("rules2.txt"), "--json", path("r2.json"), "--quiet")
    real4 = {(d["endpoint"], d["location"]) for d in json.load(open(path("r2.json")))["differences"]
             if not d["noise"]}
    ok(("GET /users/{id}", "body:$.items[*].price") not in real4
       and ("GET /users/{id}", "header:cache-control") not in real4
       and ("GET /users/{id}", "body:$.email") in real4, "new rules applied on saved results")

    # a results file cut short (crash) is read up to its last whole frame and
    # the report says the data is incomplete
    data = open(path("results.dyt"), "rb").read()
    with open(path("cut.dyt"), "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    rc, out, err = run(path("cut.dyt"), "--json", path("cut.json"), "--no-color")
    rep5 = json.load(open(path("cut.json")))
    ok(rc == 0 and rep5["data_incomplete"] and out.startswith("DATA INCOMPLETE")
       and any("cut short" in r or "trailer" in r or "damaged" in r for r in rep5["incomplete_reasons"]),
       "cut file: data incomplete at the top (%s)" % rep5["incomplete_reasons"][:2])

    # gates and exit codes
    rc, _, _ = run(path("results.dyt"), "--quiet", "--fail-on", "diff_rate>90%")
    ok(rc == 0, "gate below threshold exits 0")
    rc, _, _ = run(path("results.dyt"), "--quiet", "--fail-on", "data_incomplete>0")
    ok(rc == 1, "data_incomplete gate trips")
    rc, _, err = run(path("results.dyt"), "--fail-on", "nonsense>1")
    ok(rc == 2 and "unknown metric" in err, "bad gate: exit 2 with a message")
    rc, _, err = run(path("missing.dyt"))
    ok(rc == 2 and "missing.dyt" in err, "missing input: exit 2 naming the file")
    with open(path("bad.rules"), "w") as f:
        f.write("ignore header\n")
    rc, _, err = run(path("results.dyt"), "--rules", path("bad.rules"))
    ok(rc == 2 and "line 1" in err, "bad rules: exit 2 with the line")
    rc, _, _ = run()
    ok(rc == 2, "no arguments: exit 2")
    # A report path naming an input (here by another spelling) is refused
    # before anything is written over it.
    before = open(path("secondary.dyt"), "rb").read()
    rc, _, err = run(path("results.dyt"), "--secondary", path("secondary.dyt"),
                     "--html", os.path.join(tmp, ".", "secondary.dyt"))
    ok(rc == 2 and "also an input" in err and
       open(path("secondary.dyt"), "rb").read() == before,
       "--html naming the --secondary input: exit 2, the input intact")
    rc, out, _ = run("--help")
    ok(rc == 0 and "--fail-on" in out and "p99_latency_ratio" in out, "--help lists options and metrics")

    # HTML in headless chromium
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("ok %d - # SKIP chromium not installed" % (n + 1))
        n += 1
    else:
        prof = tempfile.mkdtemp(prefix="dyetap-chromium-")
        try:
            c = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                "--disable-background-networking", "--disable-component-update",
                                "--disable-sync", "--no-first-run", "--user-data-dir=" + prof,
                                "--enable-logging=stderr", "--v=0",
                                "--dump-dom", "file://" + path("r.html")],
                               capture_output=True, text=True, timeout=60)
            dom = c.stdout
            want = "compared %d responses on 6 endpoints" % rep["summary"]["compared"]
            ok(c.returncode == 0 and want in dom,
               "chromium renders the HTML and shows the summary (rc %d)" % c.returncode)
            jserr = [l for l in c.stderr.splitlines() if "Uncaught" in l or "CONSOLE" in l and "rror" in l]
            ok(not jserr, "no script errors in chromium (%s)" % jserr[:2])
            ok("<svg" in dom and "chart-latency" in dom, "charts in the rendered DOM")
        finally:
            shutil.rmtree(prof, ignore_errors=True)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("1..%d" % n)
sys.exit(1 if failed else 0)
