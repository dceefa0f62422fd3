#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end test of record-time redaction (docs/capture.md "Redaction").

Builds a pcap whose requests and responses carry secrets in headers,
cookies, the query and JSON bodies (with tests/capture/gen_pcap.py's
packet builder), records it with --redact rules, and checks that
`dyetap cat --json` holds none of the secret values, that the changed
sessions carry the `redacted` flag, that color rules matched the original
values, and that `dyetap info` (text and --json) lists the redactions.
Also records a golden pcap with --redact-defaults. TAP output.

usage: redact_e2e.py DYETAP SOURCE_ROOT
"""
import json
import os
import subprocess
import sys
import tempfile

dyetap, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(root, "tests", "capture"))
import gen_pcap as g  # noqa: E402

n = 0
fails = 0


def ok(cond, what):
    global n, fails
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, what))
    if not cond:
        fails += 1


SECRETS = [b"Bearer-SECRET-A1", b"SESS-SECRET-B2", b"QTOKEN-SECRET-C3", b"PW-SECRET-D4",
           b"NESTED-SECRET-E5", b"CARD-SECRET-F6", b"CARD-SECRET-F7", b"SETCOOKIE-SECRET-G8",
           b"ACCESS-SECRET-H9", b"DROPME-SECRET-I0"]

body_req = (b'{"user": {"name": "ann", "token": "NESTED-SECRET-E5"}, "password": "PW-SECRET-D4",'
            b' "items": [{"card": "CARD-SECRET-F6", "n": 1}, {"card": "CARD-SECRET-F7"}],'
            b' "debug": "DROPME-SECRET-I0", "keep": [1, 2.5e3, true, null]}')
body_resp = b'{"access_token": "ACCESS-SECRET-H9", "expires_in": 3600}'

tmp = tempfile.mkdtemp(prefix="dyetap-redact-")
c = g.Conv().handshake()
c.send(True, g.req(b"POST", b"/login?user=ann&token=QTOKEN-SECRET-C3&x=1", body_req,
                   b"Authorization: Bearer-SECRET-A1\r\nCookie: theme=dark; session=SESS-SECRET-B2\r\n"
                   b"Content-Type: application/json\r\n"))
c.send(False, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: sid=SETCOOKIE-SECRET-G8;"
       b" Path=/; HttpOnly\r\nContent-Length: %d\r\n\r\n" % len(body_resp) + body_resp)
c.send(True, g.req(b"GET", b"/public?page=2"))
c.send(False, g.resp(200, b"hello"))
c.close()
pcap = os.path.join(tmp, "secrets.pcap")
g.write_pcap(pcap, 1, g.frame(c, 1))


def run(*args):
    return subprocess.run([dyetap, *args], capture_output=True, timeout=60)


def cat_json(path):
    p = run("cat", "--json", path)
    return p.returncode, p.stdout


print("1..17")
# Without redaction every secret is in the output (the test data is sound).
plain = os.path.join(tmp, "plain.dyt")
run("record", "-r", pcap, "-w", plain)
rc, out = cat_json(plain)
ok(rc == 0 and all(s in out for s in SECRETS), "unredacted recording holds every secret")

red = os.path.join(tmp, "red.dyt")
p = run("record", "-r", pcap, "-w", red, "--stats",
        "--color", "vip=cookie:session=SESS-SECRET-B2",
        "--redact", "header:authorization", "--redact", "cookie:session",
        "--redact", "cookie:sid", "--redact", "query:token",
        "--redact", "json:$.password", "--redact", "json:$.user.token",
        "--redact", "json:$.items[*].card", "--redact", "json:$.debug:drop",
        "--redact", "json:$.access_token")
ok(p.returncode == 0, "record with --redact exits 0")
stats = p.stderr.decode()
rc, out = cat_json(red)
ok(rc == 0, "cat --json reads the redacted recording")
left = [s.decode() for s in SECRETS if s in out]
ok(not left, "no secret left in cat --json output (left: %s)" % left)
recs = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
sess = [r for r in recs if r.get("type", "session") == "session"]
ok(len(sess) == 2, "two sessions recorded")
text = out.decode()
ok("[redacted]" in text and "%5Bredacted%5D" in text, "masked values carry the marker")
ok('"debug"' not in text, "json:$.debug:drop removed the member")
rbody = sess[0]["request"].get("body", "") if sess else ""
ok('"keep":[1,2.5e3,true,null]' in rbody and json.loads(rbody)["user"]["name"] == "ann",
   "other JSON members are kept and the body is still JSON")
clen = [v for k, v in sess[0]["request"]["headers"] if k.lower() == "content-length"] if sess else []
ok(clen == [str(len(rbody))], "Content-Length follows the rewritten body (%s)" % clen)
flags = [s.get("flags", []) for s in sess]
ok("redacted" in flags[0] and "redacted" not in flags[1],
   "only the session with secrets is flagged redacted (%s)" % flags)
ok(sess[0].get("lane") == "vip", "color rules match the original (unredacted) values")
ok("redact_sessions" in stats and "redact_masked" in stats, "redaction counters in --stats")

p = run("info", red)
ok(p.returncode == 0 and b"redactions: header:authorization:mask" in p.stdout
   and b"json:$.debug:drop" in p.stdout, "dyetap info lists the redactions")
p = run("info", "--json", red)
meta = json.loads(p.stdout).get("meta", {}) if p.returncode == 0 else {}
ok(len(meta.get("redactions", [])) == 9, "info --json meta.redactions has the 9 rules")

p = run("record", "-r", pcap, "-w", os.path.join(tmp, "bad.dyt"), "--redact", "json:password")
ok(p.returncode == 2 and b"bad JSON path" in p.stderr, "a bad JSON path is a usage error")

# --redact-defaults covers this data except the custom fields.
dflt = os.path.join(tmp, "dflt.dyt")
run("record", "-r", pcap, "-w", dflt, "--redact-defaults")
rc, out = cat_json(dflt)
want_gone = [b"Bearer-SECRET-A1", b"SESS-SECRET-B2", b"QTOKEN-SECRET-C3", b"PW-SECRET-D4",
             b"SETCOOKIE-SECRET-G8", b"ACCESS-SECRET-H9"]
ok(rc == 0 and not [s for s in want_gone if s in out], "--redact-defaults masks the usual secrets")

golden = os.path.join(root, "tests", "golden", "nginx-static", "input.pcap")
gout = os.path.join(tmp, "golden.dyt")
p = run("record", "-r", golden, "-w", gout, "--redact-defaults")
rc, out = cat_json(gout)
ok(p.returncode == 0 and rc == 0 and out.count(b'"type"') >= 0 and len(out) > 0,
   "golden pcap records and reads back with --redact-defaults")
sys.exit(1 if fails else 0)
