#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The JUnit report's counts (docs/report.md "JUnit XML"): the root
<testsuites> holds the totals of the suites below it, and each total is
the number of <testcase> elements (with <failure>, <error>, <skipped>)
actually in the file. Checked on a file of a few causes and on a hostile
one of thousands of causes (diff_scalegen --mode hostile: a missing and
an extra key named after each session, on an endpoint of its own).

usage: test_report_bounds.py DYETAP DIFF_SCALEGEN
"""
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
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("1..%d" % n)
sys.exit(1 if failed else 0)
