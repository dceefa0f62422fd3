#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check a HAR file against the HAR 1.2 field list.

Written from the HAR 1.2 specification (Jan Odvarko,
http://www.softwareishard.com/blog/har-12-spec/): every object's required
fields with their types, optional fields with theirs, no other fields
except custom ones whose names start with an underscore, dates in ISO 8601
(YYYY-MM-DDThh:mm:ss.sTZD), timings send/wait/receive non-negative, the
others -1 or non-negative, an entry's time the sum of its timings (ssl
being part of connect), postData's text and params not both present.

usage: har_check.py FILE.har   (prints the errors, exits 1 when any)
"""
import json
import re
import sys

DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
NUM = (int, float)

# object name: {field: (type(s), required)}; "list:X" is an array of objects X.
SPEC = {
    "log": {"version": (str, True), "creator": ("creator", True), "browser": ("creator", False),
            "pages": ("list:page", False), "entries": ("list:entry", True),
            "comment": (str, False)},
    "creator": {"name": (str, True), "version": (str, True), "comment": (str, False)},
    "page": {"startedDateTime": ("date", True), "id": (str, True), "title": (str, True),
             "pageTimings": ("pageTimings", True), "comment": (str, False)},
    "pageTimings": {"onContentLoad": (NUM, False), "onLoad": (NUM, False),
                    "comment": (str, False)},
    "entry": {"pageref": (str, False), "startedDateTime": ("date", True), "time": (NUM, True),
              "request": ("request", True), "response": ("response", True),
              "cache": ("cache", True), "timings": ("timings", True),
              "serverIPAddress": (str, False), "connection": (str, False),
              "comment": (str, False)},
    "request": {"method": (str, True), "url": (str, True), "httpVersion": (str, True),
                "cookies": ("list:cookie", True), "headers": ("list:nv", True),
                "queryString": ("list:nv", True), "postData": ("postData", False),
                "headersSize": (int, True), "bodySize": (int, True), "comment": (str, False)},
    "response": {"status": (int, True), "statusText": (str, True), "httpVersion": (str, True),
                 "cookies": ("list:cookie", True), "headers": ("list:nv", True),
                 "content": ("content", True), "redirectURL": (str, True),
                 "headersSize": (int, True), "bodySize": (int, True), "comment": (str, False)},
    "cookie": {"name": (str, True), "value": (str, True), "path": (str, False),
               "domain": (str, False), "expires": ("date", False), "httpOnly": (bool, False),
               "secure": (bool, False), "comment": (str, False)},
    "nv": {"name": (str, True), "value": (str, True), "comment": (str, False)},
    "postData": {"mimeType": (str, True), "params": ("list:param", False), "text": (str, False),
                 "comment": (str, False)},
    "param": {"name": (str, True), "value": (str, False), "fileName": (str, False),
              "contentType": (str, False), "comment": (str, False)},
    "content": {"size": (int, True), "compression": (int, False), "mimeType": (str, True),
                "text": (str, False), "encoding": (str, False), "comment": (str, False)},
    "cache": {"beforeRequest": ("cacheEntry", False), "afterRequest": ("cacheEntry", False),
              "comment": (str, False)},
    "cacheEntry": {"expires": ("date", False), "lastAccess": ("date", True),
                   "eTag": (str, True), "hitCount": (int, True), "comment": (str, False)},
    "timings": {"blocked": (NUM, False), "dns": (NUM, False), "connect": (NUM, False),
                "send": (NUM, True), "wait": (NUM, True), "receive": (NUM, True),
                "ssl": (NUM, False), "comment": (str, False)},
}


def check(obj, kind, path, errs):
    if not isinstance(obj, dict):
        errs.append("%s: not an object" % path)
        return
    spec = SPEC[kind]
    for name, (typ, req) in spec.items():
        if name not in obj:
            if req:
                errs.append("%s.%s: required field missing" % (path, name))
            continue
        v, p = obj[name], "%s.%s" % (path, name)
        if typ == "date":
            if not isinstance(v, str) or not DATE.match(v):
                errs.append("%s: not an ISO 8601 date: %r" % (p, v))
        elif isinstance(typ, str) and typ.startswith("list:"):
            if not isinstance(v, list):
                errs.append("%s: not an array" % p)
            else:
                for i, x in enumerate(v):
                    check(x, typ[5:], "%s[%d]" % (p, i), errs)
        elif isinstance(typ, str):
            check(v, typ, p, errs)
        elif typ is int and (isinstance(v, bool) or not isinstance(v, int)):
            errs.append("%s: not an integer: %r" % (p, v))
        elif typ is NUM and (isinstance(v, bool) or not isinstance(v, NUM)):
            errs.append("%s: not a number: %r" % (p, v))
        elif not isinstance(v, typ):
            errs.append("%s: wrong type: %r" % (p, v))
    for name in obj:
        if name not in spec and not name.startswith("_"):
            errs.append("%s.%s: not a HAR 1.2 field (custom fields start with _)" % (path, name))
    if kind == "postData" and "text" in obj and "params" in obj:
        errs.append("%s: text and params are mutually exclusive" % path)
    if kind == "postData" and "text" not in obj and "params" not in obj:
        errs.append("%s: neither text nor params" % path)
    if kind == "timings":
        for k in ("send", "wait", "receive"):
            if isinstance(obj.get(k), NUM) and obj[k] < 0:
                errs.append("%s.%s: negative" % (path, k))
        for k in ("blocked", "dns", "connect", "ssl"):
            if isinstance(obj.get(k), NUM) and obj[k] < 0 and obj[k] != -1:
                errs.append("%s.%s: negative and not -1" % (path, k))


def check_har(doc):
    errs = []
    if not isinstance(doc, dict) or set(doc) - {"log"} or "log" not in doc:
        return ["the root must be an object with one field, log"]
    check(doc["log"], "log", "log", errs)
    log = doc["log"]
    if log.get("version") != "1.2":
        errs.append("log.version: %r, not 1.2" % log.get("version"))
    pages = {p.get("id") for p in log.get("pages", []) if isinstance(p, dict)}
    for i, e in enumerate(log.get("entries", [])):
        if not isinstance(e, dict):
            continue
        if "pageref" in e and e["pageref"] not in pages:
            errs.append("log.entries[%d].pageref: no page %r" % (i, e["pageref"]))
        t = e.get("timings")
        if isinstance(t, dict) and isinstance(e.get("time"), NUM):
            total = sum(t[k] for k in ("blocked", "dns", "connect", "send", "wait", "receive")
                        if isinstance(t.get(k), NUM) and t[k] > 0)
            if abs(total - e["time"]) > 0.01:
                errs.append("log.entries[%d].time: %r, the timings sum to %r" % (i, e["time"], total))
        c = e.get("response", {}).get("content", {}) if isinstance(e.get("response"), dict) else {}
        if isinstance(c, dict) and "encoding" in c and c["encoding"] != "base64":
            errs.append("log.entries[%d].response.content.encoding: %r" % (i, c["encoding"]))
    return errs


def main():
    with open(sys.argv[1], "rb") as f:
        doc = json.loads(f.read().decode("utf-8"))
    errs = check_har(doc)
    for e in errs:
        print(e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
