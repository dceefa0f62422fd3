#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The reports' sizes and counts.

JUnit (docs/report.md "JUnit XML"): the root <testsuites> holds the
totals of the suites below it, and each total is the number of <testcase>
elements (with <failure>, <error>, <skipped>) actually in the file.

Caps (docs/diff.md "Report size"), on a hostile file of thousands of
causes (diff_scalegen --mode hostile: a missing and an extra key named
after each session, on an endpoint of its own): the HTML shows the 25
largest causes of each severity, each with at most 20 groups, and says
how many more the JSON has; its size stays under a bound made of those
caps and the table caps; the terminal summary lists the 5 largest causes
of each severity and 10 groups per list, with "more" lines; the JUnit has
a testcase for each of the 25 largest causes of each severity and one for
the rest, and its <system-out> is that terminal summary. The JSON keeps
every cause. The reports are the same bytes with --threads 1 and 2.

usage: test_report_bounds.py DYETAP DIFF_SCALEGEN
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, ok  # noqa: E402


dyetap, gen = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="dyetap-report-bounds-")


def make(name, count, *args):
    path = os.path.join(tmp, name + ".dyt")
    subprocess.run([gen, path, str(count), *args], check=True)
    return path


def diff(path, *args):
    """Run dyetap diff writing every report; (rc, stdout, {kind: path})."""
    out = {k: os.path.join(tmp, "r." + k) for k in ("json", "html", "xml")}
    p = subprocess.run([dyetap, "diff", path, "--json", out["json"], "--html", out["html"],
                        "--junit", out["xml"], "--no-color", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout.decode("utf-8", errors="replace"), out


def check_junit(name, path):
    """The root's totals are the sums of its suites', and each suite's are
    the testcases in it; returns the parsed root (None when invalid)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        ok(False, "%s: the JUnit report is well-formed XML (%s)" % (name, e))
        return None
    ok(root.tag == "testsuites", "%s: the JUnit root is <testsuites>" % name)
    suites = root.findall("testsuite")
    ok(len(suites) >= 1, "%s: the JUnit report has a testsuite" % name)
    keys = ("tests", "failures", "errors", "skipped")
    sums = {k: sum(int(s.get(k)) for s in suites) for k in keys}
    ok(all(int(root.get(k)) == sums[k] for k in keys),
       "%s: <testsuites> totals %s are the sums of the suites' %s" %
       (name, {k: root.get(k) for k in keys}, sums))
    cases = {k: 0 for k in keys}
    for s in suites:
        tc = s.findall("testcase")
        have = {"tests": len(tc),
                "failures": sum(1 for t in tc if t.find("failure") is not None),
                "errors": sum(1 for t in tc if t.find("error") is not None),
                "skipped": sum(1 for t in tc if t.find("skipped") is not None)}
        ok(all(int(s.get(k)) == have[k] for k in keys),
           "%s: suite %r counts %s are its testcases %s" %
           (name, s.get("name"), {k: s.get(k) for k in keys}, have))
        for k in keys:
            cases[k] += have[k]
    ok(all(int(root.get(k)) == cases[k] for k in keys),
       "%s: <testsuites> totals are the testcases in the file %s" % (name, cases))
    return root


# docs/diff.md "Report size"
HTML_CAUSES_PER_SEV = 25
TEXT_CAUSES_PER_SEV = 5
CAUSE_ROWS = 20
RULE_BYTES = 4096
TEXT_GROUPS = 10
HTML_MAX_ROWS = 1000
HTML_MAX_EXAMPLES = 200
JUNIT_ENDPOINTS = 1000


def by_severity(causes, cap):
    """Ids of the first @cap causes of each severity, in report order."""
    seen, out = {}, []
    for c in causes:
        seen[c["severity"]] = seen.get(c["severity"], 0) + 1
        if seen[c["severity"]] <= cap:
            out.append(c["id"])
    return out


def largest_of_severity(causes, shown, what):
    """Every cause left out is no larger than the shown ones of its severity."""
    good = True
    for sev in {c["severity"] for c in causes}:
        a = [c["count"] for c in causes if c["severity"] == sev and c["id"] in shown]
        b = [c["count"] for c in causes if c["severity"] == sev and c["id"] not in shown]
        good &= not b or (a and min(a) >= max(b))
    ok(good, "%s: the causes listed are the largest of their severity" % what)


try:
    # a few causes: one testcase each
    small = make("small", 20000, "--differ", "1", "--body", "1024")
    rc, out, rep = diff(small)
    with open(rep["json"]) as f:
        js = json.load(f)
    root = check_junit("small", rep["xml"])
    real = [c for c in js["causes"] if not c["noise"]]
    if root is not None:
        cause_cases = root.findall("testsuite/testcase[@classname='dyetap.diff.cause']")
        ok(len(real) >= 1 and len(cause_cases) == len(real),
           "small: a failed testcase per real cause (%d causes, %d testcases)" %
           (len(real), len(cause_cases)))

    # thousands of causes, far more than any cap; --max-memory high enough
    # that no cap of the differ is hit (the same groups for any --threads)
    hostile = make("hostile", 4000, "--mode", "hostile", "--differ", "1", "--body", "256")
    rc, out, rep = diff(hostile, "--max-memory", "512M", "--threads", "1")
    with open(rep["json"]) as f:
        js = json.load(f)
    real = [c for c in js["causes"] if not c["noise"]]
    sevs = {c["severity"] for c in real}
    ok(len(real) > 20 * HTML_CAUSES_PER_SEV * len(sevs),
       "hostile: the JSON keeps every cause, far more than the caps (%d)" % len(real))
    ok(js["summary"]["over_memcap"] == 0, "hostile: no cap of the differ was hit")
    groups = [g for g in js["differences"] if not g["noise"]]

    # HTML
    with open(rep["html"], encoding="utf-8") as f:
        html = f.read()
    at = html.index('<section id="causes"')
    section = html[at:html.index("</section>", at)]
    blocks = re.findall(r'<div class="cause sev-[a-z_]+" id="cause-(c\d+)"', section)
    want = by_severity(real, HTML_CAUSES_PER_SEV)
    ok(blocks == want, "hostile: the HTML shows the %d largest causes of each severity "
       "(%d blocks, %d expected)" % (HTML_CAUSES_PER_SEV, len(blocks), len(want)))
    ok(len(blocks) <= HTML_CAUSES_PER_SEV * 4, "hostile: at most %d cause blocks" %
       (HTML_CAUSES_PER_SEV * 4))
    largest_of_severity(real, set(blocks), "hostile HTML")
    m = re.search(r'id="more-causes">(\d+) more causes', section)
    ok(m and int(m.group(1)) == len(real) - len(blocks),
       "hostile: the HTML says how many more causes the JSON has (%s, %d)" %
       (m and m.group(1), len(real) - len(blocks)))
    rows = [b.count("<tr><td>") for b in section.split('<div class="cause ')[1:]]
    ok(rows and max(rows) <= CAUSE_ROWS, "hostile: at most %d groups per cause (%s)" %
       (CAUSE_ROWS, rows and max(rows)))
    # what a shown cause may take: its groups and endpoints (a row of a
    # 40-byte endpoint and a location: 512 B), two 256-byte bodies with their
    # heads and the request (4 KiB), its rules, a heading
    block = CAUSE_ROWS * 512 + 4096 + RULE_BYTES + 2048
    # real and noise causes: at most the cap of each of the 4 severities
    section_max = 2 * 4 * HTML_CAUSES_PER_SEV * block + 4096
    ok(len(section) <= section_max,
       "hostile: the HTML causes section is %d bytes, within %d (%d blocks of %d bytes)" %
       (len(section), section_max, 2 * 4 * HTML_CAUSES_PER_SEV, block))
    # the rest: the differences and endpoints tables (1 KiB a row), the
    # examples of the 200 largest groups (4 KiB each), 64 KiB of style,
    # script, summary, charts and accounting
    bound = section_max + 2 * HTML_MAX_ROWS * 1024 + HTML_MAX_EXAMPLES * 4096 + 65536
    ok(len(html.encode()) <= bound, "hostile: the HTML is %d bytes, within %d" %
       (len(html.encode()), bound))

    # terminal summary
    lines = out.splitlines()
    want = by_severity(real, TEXT_CAUSES_PER_SEV)
    listed = re.findall(r"^  (c\d+) ", out, re.M)
    ok(listed == want, "hostile: the terminal lists the %d largest causes of each severity "
       "(%d, %d expected)" % (TEXT_CAUSES_PER_SEV, len(listed), len(want)))
    m = re.search(r"^  \.\.\. (\d+) more causes .*JSON report", out, re.M)
    ok(m and int(m.group(1)) == len(real) - len(listed),
       "hostile: the terminal says how many more causes the JSON report has")
    m = re.search(r"^  \.\.\. (\d+) more difference groups .*JSON report", out, re.M)
    ok(m and int(m.group(1)) == len(groups) - TEXT_GROUPS,
       "hostile: the terminal lists %d groups and says how many more (%s of %d)" %
       (TEXT_GROUPS, m and m.group(1), len(groups)))
    # 30 lines of verdict, data and totals; 3 a cause (4 severities) and the
    # "more" line; 2 a group, a heading and a "more" line for each list
    text_max = 30 + 4 * TEXT_CAUSES_PER_SEV * 3 + 2 + 2 * (2 + 2 * TEXT_GROUPS + 1)
    ok(len(lines) <= text_max, "hostile: the terminal summary is %d lines, at most %d" %
       (len(lines), text_max))

    # JUnit
    root = check_junit("hostile", rep["xml"])
    if root is not None:
        suite = root.find("testsuite")
        cc = suite.findall("testcase[@classname='dyetap.diff.cause']")
        want = by_severity(real, HTML_CAUSES_PER_SEV)
        ok([t.get("name").split()[0] for t in cc[:-1]] == want,
           "hostile: a JUnit testcase for each of the %d largest causes of each severity" %
           HTML_CAUSES_PER_SEV)
        more = len(real) - len(want)
        ok(len(cc) == len(want) + 1 and cc[-1].get("name") == "%d more causes" % more and
           cc[-1].find("failure") is not None,
           "hostile: one failed testcase for the %d other causes" % more)
        so = suite.find("system-out").text or ""
        ok(len(so.splitlines()) <= text_max, "hostile: <system-out> is the capped summary")
        eps = suite.findall("testcase[@classname='dyetap.diff.endpoint']")
        n_ep = len(js["endpoints"])
        if n_ep <= JUNIT_ENDPOINTS:
            ok(len(eps) == n_ep, "hostile: a JUnit testcase per endpoint (%d)" % n_ep)
        else:
            ok(len(eps) == JUNIT_ENDPOINTS + 1 and
               eps[-1].get("name") == "%d more endpoints" % (n_ep - JUNIT_ENDPOINTS),
               "hostile: JUnit testcases for %d of the %d endpoints, then one for the others"
               % (JUNIT_ENDPOINTS, n_ep))
            # the most telling first: every endpoint left out differs in no
            # more responses than the least of those listed
            listed = {t.get("name") for t in eps[:-1]}
            d_in = [e.get("differing", 0) for e in js["endpoints"] if e.get("endpoint") in listed]
            d_out = [e.get("differing", 0) for e in js["endpoints"]
                     if e.get("endpoint") not in listed]
            ok(len(d_in) == JUNIT_ENDPOINTS and (not d_out or min(d_in) >= max(d_out)),
               "hostile: the endpoints listed are those with the most differing responses")
            ok((eps[-1].find("failure") is not None) == any(d_out),
               "hostile: the 'more endpoints' testcase fails when one of them differs")

    # the same bytes with two threads
    same = {}
    for k in ("html", "xml"):
        with open(rep[k], "rb") as f:
            same[k] = f.read()
    rc2, out2, rep = diff(hostile, "--max-memory", "512M", "--threads", "2")
    for k in ("html", "xml"):
        with open(rep[k], "rb") as f:
            ok(f.read() == same[k], "hostile: the %s report is the same with --threads 2" % k)
    ok(out2 == out, "hostile: the terminal summary is the same with --threads 2")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(finish())
