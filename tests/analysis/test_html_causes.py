#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The causes section of the HTML report, rendered by headless Chromium.

Diffs the planted results of analysis_testgen (a status change 200 -> 500,
a changed price in every element of an array, a changed Cache-Control
header, a missing and an extra member, a changed word of a text body) and
loads the HTML report in Chromium twice: --dump-dom (the DOM after the
scripts ran) and --screenshot (what a QA engineer sees). Checks that the
causes come first and by severity, that each real cause of the JSON report
is shown with its endpoints, its example (request, both responses side by
side) with the changed field highlighted, and its diff rules line; and, in
the PNG, that the highlight colour and the status cause's red border are on
screen in the first viewport. TAP; skips without Chromium.

usage: test_html_causes.py DYETAP ANALYSIS_TESTGEN
"""
import html.parser
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

n = 0
failed = 0


def ok(cond, what):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n, what), flush=True)
    return cond


def png_pixels(data):
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        ln, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + ln]
        if typ == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and ctype in (2, 6), "unexpected PNG format"
            bpp = 3 if ctype == 2 else 4
        elif typ == b"IDAT":
            idat += body
        pos += 12 + ln
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def count_colour(w, bpp, rows, rgb, tol=6):
    k = 0
    for line in rows:
        for x in range(0, w * bpp, bpp):
            if (abs(line[x] - rgb[0]) <= tol and abs(line[x + 1] - rgb[1]) <= tol
                    and abs(line[x + 2] - rgb[2]) <= tol):
                k += 1
    return k


class Causes(html.parser.HTMLParser):
    """The cause blocks of the DOM: attributes, text, marks, rule."""

    def __init__(self):
        super().__init__()
        self.causes = []
        self.stack = []  # (tag, is_cause_div)
        self.cur = None
        self.in_mark = 0
        self.in_rule = 0
        self.section_order = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and a.get("id"):
            self.section_order.append(a["id"])
        is_cause = tag == "div" and "cause" in (a.get("class") or "").split()
        if is_cause:
            self.cur = {"kind": a.get("data-kind"), "location": a.get("data-location"),
                        "noise": a.get("data-noise"), "text": "", "marks": [], "rule": "",
                        "pres": 0}
            self.causes.append(self.cur)
        if self.cur is not None:
            if tag == "mark" and "hl" in (a.get("class") or ""):
                self.in_mark += 1
                self.cur["marks"].append("")
            if tag == "pre":
                self.cur["pres"] += 1
                if (a.get("id") or "").startswith("rule-"):
                    self.in_rule += 1
        self.stack.append((tag, is_cause))

    def handle_endtag(self, tag):
        while self.stack:
            t, was_cause = self.stack.pop()
            if t == "mark" and self.in_mark:
                self.in_mark -= 1
            if t == "pre" and self.in_rule:
                self.in_rule -= 1
            if was_cause:
                self.cur = None
            if t == tag:
                break

    def handle_data(self, data):
        if self.cur is None:
            return
        self.cur["text"] += data
        if self.in_mark:
            self.cur["marks"][-1] += data
        if self.in_rule:
            self.cur["rule"] += data


dyetap, gen = sys.argv[1], sys.argv[2]
chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if not chromium:
    print("1..0 # SKIP chromium not installed (Debian: apt-get install chromium)")
    sys.exit(0)
tmp = tempfile.mkdtemp(prefix="dyetap-html-causes-")
try:
    def path(name):
        return os.path.join(tmp, name)

    r = subprocess.run([gen, tmp], capture_output=True, text=True)
    ok(r.returncode == 0, "generator wrote the results files " + r.stderr.strip())
    with open(path("rules.txt"), "w") as f:
        f.write("mask body generated at [0-9T:.Z-]+\n")
    r = subprocess.run([dyetap, "diff", path("results.dyt"), "--secondary", path("secondary.dyt"),
                        "--rules", path("rules.txt"), "--json", path("r.json"),
                        "--html", path("r.html"), "--quiet"], capture_output=True, text=True,
                       timeout=120)
    ok(r.returncode == 0, "dyetap diff wrote the reports (rc %d %s)" % (r.returncode,
                                                                      r.stderr.strip()[-200:]))
    rep = json.load(open(path("r.json")))
    real = [c for c in rep["causes"] if not c["noise"]]

    prof = tempfile.mkdtemp(prefix="dyetap-chromium-", dir=tmp)
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + prof,
              "--force-device-scale-factor=1"]
    c = subprocess.run(common + ["--dump-dom", "file://" + path("r.html")],
                       capture_output=True, text=True, timeout=90)
    ok(c.returncode == 0 and "<section" in c.stdout, "chromium rendered the report (rc %d)"
       % c.returncode)
    p = Causes()
    p.feed(c.stdout)
    shown = [x for x in p.causes if x["noise"] == "false"]

    order = p.section_order
    ok("causes" in order and order.index("causes") < order.index("charts")
       and order.index("causes") < order.index("differences"),
       "the causes section comes before the charts and the groups (%s)" % order[:6])
    ok([(x["kind"], x["location"]) for x in shown] == [(x["kind"], x["location"]) for x in real],
       "every real cause of the JSON report is shown, in its order (%d)" % len(shown))
    sev = {"status": 0, "data_lost": 1, "data_changed": 2, "header": 3}
    ranks = [sev[x["severity"]] for x in real]
    ok(ranks == sorted(ranks) and real[0]["kind"] == "status_changed",
       "causes by severity: the status change first")
    for cause, dom in zip(real, shown):
        what = "%s %s" % (cause["kind"], cause["location"])
        ok(all(e in dom["text"] for e in cause["endpoints"]) and cause["pattern"] in dom["text"],
           "%s: endpoints and pattern shown" % what)
        ok(dom["rule"].strip() == cause["rule"],
           "%s: its diff rules line is shown to copy (%r)" % (what, dom["rule"].strip()[:60]))
        ok(dom["pres"] >= 4, "%s: the request and both responses are shown" % what)
    by_loc = {(x["kind"], x["location"]): x for x in shown}
    st = by_loc[("status_changed", "status")]
    ok(any("200" in m for m in st["marks"]) and any("500" in m for m in st["marks"]),
       "status cause: both status lines highlighted (%s)" % st["marks"])
    price = by_loc[("value_changed", "body:$.items[*].price")]
    ex = [c for c in real if c["location"] == "body:$.items[*].price"][0]["examples"][0]
    ok(sorted(m.strip() for m in price["marks"])
       == sorted([ex["primary_value"], ex["candidate_value"]]),
       "array cause: the changed field highlighted in both pretty-printed bodies (%s)"
       % price["marks"])
    ok("\n  \"items\": [" in price["text"] or "\"items\": [\n" in price["text"],
       "bodies are pretty-printed")
    hdr = by_loc[("value_changed", "header:cache-control")]
    ok(len(hdr["marks"]) == 2 and all(m.lower().startswith("cache-control:") for m in hdr["marks"]),
       "header cause: the header line highlighted on both sides (%s)" % hdr["marks"])

    # the rules shown accept what they say: with all of them, no real cause is left
    with open(path("accept.txt"), "w") as f:
        f.write("mask body generated at [0-9T:.Z-]+\n" + "\n".join(c["rule"] for c in real) + "\n")
    r = subprocess.run([dyetap, "diff", path("results.dyt"), "--secondary", path("secondary.dyt"),
                        "--rules", path("accept.txt"), "--json", path("a.json"), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    left = [(c["kind"], c["location"]) for c in json.load(open(path("a.json")))["causes"]
            if not c["noise"]] if r.returncode == 0 else ["rc %d %s" % (r.returncode, r.stderr)]
    ok(not left, "the causes' rules together accept every change (left: %s)" % left)

    # what is on screen: the first viewport shows the status cause (its red
    # severity border) and at least one highlighted field
    shot = path("shot.png")
    c = subprocess.run(common + ["--window-size=900,1500", "--screenshot=" + shot,
                                 "file://" + path("r.html")],
                       capture_output=True, text=True, timeout=90)
    ok(c.returncode == 0 and os.path.exists(shot), "chromium took a screenshot")
    w, h, bpp, rows = png_pixels(open(shot, "rb").read())
    hl = count_colour(w, bpp, rows, (0xff, 0xe0, 0x66))
    red = count_colour(w, bpp, rows, (0xb3, 0x26, 0x1e))
    ok(hl > 200, "the screenshot shows highlighted fields (%d pixels of the highlight)" % hl)
    ok(red > 1000, "the screenshot shows the status cause's red border (%d pixels)" % red)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print("1..%d" % n)
sys.exit(1 if failed else 0)
