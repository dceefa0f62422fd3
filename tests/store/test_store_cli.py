#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# test_store_cli - `dyetap info` and `dyetap cat` on store files this test
# writes (store_testgen): exact JSON keys and values (docs/format.md §4, §5),
# filters, exit codes and warnings for cut, damaged and unfinished files,
# and the JSON example of docs/format.md against real output.
# Usage: test_store_cli.py DYETAP STORE_TESTGEN DOCS_FORMAT_MD
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

dyetap, testgen, format_md = sys.argv[1:4]
n = 0
failed = 0


def ok(cond, what, detail=""):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n, what))
    if not cond and detail:
        for line in str(detail).splitlines()[:10]:
            print("# " + line)


def run(*args):
    p = subprocess.run([dyetap] + list(args), capture_output=True, timeout=20)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def lines_json(out):
    return [json.loads(x) for x in out.splitlines()]


SESSION_KEYS = ["id", "lane", "conn_id", "conn_index", "ts_request_ns", "src", "dst",
                "request", "response", "flags"]
REQ_KEYS = ["method", "target", "version", "headers", "body_len", "body", "truncated"]
RESP_KEYS = ["status", "reason", "version", "headers", "body_len", "body", "truncated"]
RESULT_KEYS = ["session_id", "target", "role", "ts_sent_ns", "latency_ns", "lateness_ns",
               "error", "error_msg", "response"]
INFO_KEYS = ["file", "file_bytes", "format_version", "meta", "records", "sessions", "results",
             "skipped_records", "lanes", "first_ts_ns", "last_ts_ns", "frames", "raw_bytes",
             "compressed_bytes", "ratio", "has_index", "state", "cut", "cut_offset",
             "damaged_frames", "first_damage_offset", "suspect_frames", "first_suspect_offset",
             "frames_over_ratio", "record_cap_hit", "max_records", "counters"]
META_KEYS = ["tool_version", "file_id", "kind", "source", "filter", "rules", "redactions", "host",
             "origins", "targets", "shard", "pace", "start_ns"]

tmp = tempfile.mkdtemp(prefix="test_store_cli.")
path = os.path.join(tmp, "sample.dyt")
subprocess.run([testgen, "sample", path], check=True)

# ---- cat --json: exact keys and values ----
rc, out, err = run("cat", "--json", path)
ok(rc == 0 and err == "", "cat --json exits 0 without warnings", err)
recs = lines_json(out)
sessions = [r for r in recs if "id" in r]
results = [r for r in recs if "session_id" in r]
ok(len(sessions) == 20 and len(results) == 5, "20 sessions and 5 results printed")
bad = [r for r in sessions if list(r) != SESSION_KEYS or list(r["request"]) != REQ_KEYS
       or (r["response"] is not None and list(r["response"]) != RESP_KEYS)]
ok(not bad, "session objects have exactly the documented keys in order", bad[:1])
bad = [r for r in results if list(r) != RESULT_KEYS
       or (r["response"] is not None and list(r["response"]) != RESP_KEYS)]
ok(not bad, "result objects have exactly the documented keys in order", bad[:1])

s0 = sessions[0]
ok(s0["id"] == 0 and s0["lane"] == "blue" and s0["conn_id"] == 0 and s0["conn_index"] == 0,
   "session 0 identity fields", s0)
ok(s0["ts_request_ns"] == 1764158400000000000, "session 0 timestamp")
ok(s0["src"] == "10.0.0.0:40000" and s0["dst"] == "10.1.0.2:8080", "IPv4 endpoints")
ok(s0["request"]["method"] == "GET" and s0["request"]["target"] == "/api/v1/users/0?lane=blue&q=0"
   and s0["request"]["version"] == "HTTP/1.1", "request line fields")
ok(s0["request"]["headers"] == [["Host", "api.example.com"], ["User-Agent", "curl/7.88.1"],
                                ["X-Request-Id", "req-00000000"], ["x-lane", "blue"]],
   "request headers as ordered pairs", s0["request"]["headers"])
ok(s0["response"]["headers"][1:] == [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]],
   "duplicate response headers kept in order")
ok(s0["response"]["body"] == '{"id":0,"name":"user 0","lane":"blue","items":[1,2,3]}'
   and s0["response"]["body_len"] == 54 and s0["response"]["truncated"] is False,
   "text body as a string", s0["response"])
ok(s0["flags"] == [], "no flags")
s1 = sessions[1]
ok(s1["lane"] == "" and s1["request"]["body"] == '{"name":"user 1","age":1}', "baseline lane, request body")
s2 = sessions[2]
ok(s2["src"] == "[2001::2]:40002" and s2["dst"] == "[::1]:8080", "IPv6 endpoints", s2["src"])
s5 = sessions[5]
ok(s5["request"]["version"] == "HTTP/1.0", "HTTP/1.0 version string")
s6 = sessions[6]
body = s6["response"]["body"]
want = bytes(((k * 31 + 6) & 0xff) for k in range(300))
ok(isinstance(body, dict) and list(body) == ["base64"] and base64.b64decode(body["base64"]) == want,
   "binary body as {\"base64\": ...}", body)
s4 = sessions[4]
ok(s4["response"] is None and s4["flags"] == ["no_response"], "no response: null and flag", s4)
s19 = sessions[19]
ok(s19["flags"] == ["gap", "no_response"], "flags in bit order", s19["flags"])
s12 = sessions[12]
ok(s12["response"]["truncated"] is True and s12["response"]["body_len"] == 1056
   and s12["flags"] == ["incomplete"], "truncated body flagged", s12["response"])
r8 = [r for r in results if r["session_id"] == 8][0]
ok(r8["error"] == "timeout" and r8["error_msg"] == "no response within 5000 ms"
   and r8["response"] is None, "result error fields", r8)
r0 = results[0]
ok(r0["role"] == "secondary" and r0["target"] == "http://127.0.0.1:8080" and r0["latency_ns"] == 100000
   and r0["lateness_ns"] == -2 and r0["error"] == "none" and r0["response"]["status"] == 200,
   "result fields", r0)

# ---- --no-body and filters ----
rc, out, err = run("cat", "--json", "--no-body", path)
recs = lines_json(out)
msgs = [r["request"] for r in recs if "id" in r] + \
       [r["response"] for r in recs if r.get("response")]
ok(rc == 0 and all(m["body"] is None and "body_len" in m for m in msgs),
   "--no-body: body null, body_len kept")


def count(*args):
    rc, out, err = run("cat", "--json", *args, path)
    recs = lines_json(out) if rc == 0 else []
    return rc, len([r for r in recs if "id" in r]), len([r for r in recs if "session_id" in r])


ok(count("--lane", "blue") == (0, 10, 5), "--lane blue: 10 sessions and their 5 results",
   count("--lane", "blue"))
ok(count("--lane", "green") == (0, 5, 0), "--lane green: 5 sessions, no results")
ok(count("--lane", "") == (0, 5, 0), "--lane '': the baseline lane")
ok(count("--method", "GET") == (0, 8, 2), "--method GET: 8 sessions and the results of 0 and 12", count("--method", "GET"))
ok(count("--status", "404") == (0, 1, 0), "--status 404", count("--status", "404"))
ok(count("--status", "500") == (0, 0, 1), "--status applies to results too")
ok(count("--type", "result") == (0, 0, 5), "--type result")
ok(count("--type", "session", "--lane", "blue") == (0, 10, 0), "--type session with --lane")
rc, out, err = run("cat", "--status", "abc", path)
ok(rc == 2 and "--status" in err, "bad --status is a usage error", err)
rc, out, err = run("cat", path)
ok(rc == 0 and len(out.splitlines()) == 25 and out.startswith("session 0 lane=blue 10.0.0.0:40000 -> "),
   "text form: one line per record", out[:200])

# ---- the JSON example of docs/format.md has the real shape ----
doc = open(format_md, encoding="utf-8").read()
m = re.search(r"```json\n(.*?)```", doc, re.S)
example = json.loads(m.group(1).replace("\n", "")) if m else None


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


real = dict(s0)
ok(example is not None and list(example) == SESSION_KEYS
   and shape(example["request"]) == shape(real["request"])
   and list(example["response"]) == RESP_KEYS,
   "docs/format.md JSON example matches the real output's keys", example)

# ---- info ----
rc, out, err = run("info", "--json", path)
info = json.loads(out) if rc == 0 else {}
ok(rc == 0 and err == "", "info --json exits 0 without warnings on a clean file", err)
ok(list(info) == INFO_KEYS and list(info["meta"]) == META_KEYS, "info keys as documented", list(info))
fid = info.get("meta", {}).get("file_id") or ""
ok(len(fid) == 32 and all(ch in "0123456789abcdef" for ch in fid),
   "the file has a 128-bit hex file id (docs/format.md §1.1)", fid)
ok(info.get("records") == 25 and info.get("sessions") == 20 and info.get("results") == 5,
   "info record counts")
ok(info.get("lanes") == {"blue": 10, "": 5, "green": 5}, "info counts by lane", info.get("lanes"))
ok(info.get("state") == "complete" and info.get("has_index") is True and info.get("cut") is False,
   "info state complete")
ok(info.get("counters", {}).get("packets") == 4242 and info["counters"].get("store_records") == 25,
   "trailer counters shown")
ok(info["meta"]["kind"] == "recording" and info["meta"]["rules"] == ["blue: header x-lane=blue",
                                                                    "green: header x-lane=green"],
   "metadata shown")
ok(info["frames"] > 3 and info["compressed_bytes"] < info["raw_bytes"] and info["ratio"] > 1,
   "frames and byte counts", info)
ok(info["file_bytes"] == os.path.getsize(path), "file size")
if shutil.which("zstd"):
    z = subprocess.run(["zstd", "-q", "-d", "-c", path], capture_output=True, timeout=20)
    first = z.stdout[0] if z.stdout else 0
    ok(z.returncode == 0 and len(z.stdout) == info["raw_bytes"]
       and ((first & 0xf0) == 0x80 or first in (0xde, 0xdf)),
       "zstd -d -c yields exactly the record bytes, a map first (docs/format.md §1)", z.stderr)
rc, out, err = run("info", path)
ok(rc == 0 and "state:      complete" in out and "records:    25 (sessions 20, results 5" in out,
   "info text form", out)

# ---- cut, damaged, unfinished ----
data = open(path, "rb").read()
cut = os.path.join(tmp, "cut.dyt")
open(cut, "wb").write(data[: len(data) * 2 // 3])
rc, out, err = run("info", "--json", cut)
ci = json.loads(out) if rc == 0 else {}
ok(rc == 0 and ci.get("state") == "cut" and ci.get("cut") is True
   and 0 < ci.get("cut_offset", 0) <= len(data) * 2 // 3, "cut file: info state cut", out)
ok(err.startswith("dyetap info: warning:") and "cut at byte %d" % ci.get("cut_offset", -1) in err
   and "recovered %d records" % ci.get("records", -1) in err, "cut file: warning line", err)
rc2, out2, err2 = run("cat", "--json", cut)
ok(rc2 == 0 and len(out2.splitlines()) == ci.get("records") and 0 < ci.get("records", 0) < 25
   and "warning" in err2, "cut file: cat prints the recoverable records and warns", err2)

dmg = os.path.join(tmp, "damaged.dyt")
b = bytearray(data)
b[len(b) // 2] ^= 0x40
open(dmg, "wb").write(bytes(b))
rc, out, err = run("info", "--json", dmg)
di = json.loads(out) if rc == 0 else {}
ok(rc == 0 and di.get("state") == "damaged" and di.get("damaged_frames") == 1
   and 0 < di.get("first_damage_offset", 0) <= len(data) // 2 and di.get("records", 0) < 25,
   "damaged file: state, count and offset", out)
ok("damaged frame" in err and "at byte %d" % di.get("first_damage_offset", -1) in err,
   "damaged file: warning names the offset", err)

subprocess.run([testgen, "corpus", tmp], check=True)
rc, out, err = run("info", "--json", os.path.join(tmp, "unfinished.dyt"))
ui = json.loads(out) if rc == 0 else {}
ok(rc == 0 and ui.get("state") == "unfinished" and ui.get("records") == 6 and "no index" in err,
   "unfinished file: all records, warning about the missing index", err)

# ---- a crashed writer leaves FILE.partial, which info finds (docs/format.md §3) ----
crashed = os.path.join(tmp, "crashed.dyt")
ok(not os.path.exists(crashed) and os.path.exists(crashed + ".partial"),
   "a writer that never closed left crashed.dyt.partial and no crashed.dyt")
rc, out, err = run("info", "--json", crashed)
ci = json.loads(out) if rc == 0 else {}
ok(rc == 0 and ci.get("state") == "unfinished" and ci.get("records") == 4
   and ci.get("file") == crashed + ".partial" and "crashed.dyt.partial" in err
   and "stopped or crashed" in err,
   "info FILE reads FILE.partial when FILE does not exist and says so", err)
rc, out, err = run("cat", crashed)
ok(rc == 2 and "crashed.dyt.partial" in err and "has not finished" in err,
   "cat FILE points at FILE.partial", err)
rc, out, err = run("cat", "--json", crashed + ".partial")
ok(rc == 0 and len(out.splitlines()) == 4, "the partial file reads like any unfinished file", err)

# ---- data after an index frame is read and reported, never skipped ----
small = os.path.join(tmp, "joined-small.dyt")
open(small, "wb").write(open(os.path.join(tmp, "unfinished.dyt"), "rb").read())
joined = os.path.join(tmp, "joined.dyt")
open(joined, "wb").write(open(path, "rb").read() + open(small, "rb").read())
rc, out, err = run("info", "--json", joined)
ji = json.loads(out) if rc == 0 else {}
ok(rc == 0 and ji.get("state") == "suspect" and ji.get("records") == 25 + 6
   and ji.get("suspect_frames", 0) >= 1 and 0 < ji.get("first_suspect_offset", 0) < len(data),
   "complete file + unfinished file joined: suspect at the first file's index, all 31 "
   "records read", out + err)
ok("data after an index frame" in err, "info warns about the data after the index", err)
both = os.path.join(tmp, "joined2.dyt")
open(both, "wb").write(open(path, "rb").read() * 2)
rc, out, err = run("info", "--json", both)
bi = json.loads(out) if rc == 0 else {}
ok(rc == 0 and bi.get("state") == "suspect" and bi.get("records") == 50,
   "two complete files joined (cat a.dyt a.dyt): suspect, all 50 records read", out + err)
rc, out, err = run("cat", "--json", both)
ok(rc == 0 and len(out.splitlines()) == 50 and "warning" in err,
   "cat reads both halves and warns", err)

# ---- --har of a results file whose sessions are not in id order ----
# replay -o writes a session and its results when they finished, so a
# concurrent replay's file holds ids out of order (docs/format.md §2)
unordered = os.path.join(tmp, "unordered.dyt")
subprocess.run([testgen, "unordered", unordered], check=True)
rc, out, err = run("cat", "--har", unordered)
ents = json.loads(out)["log"]["entries"] if rc == 0 else []
got = sorted(e["_dyetap"]["session_id"] for e in ents if e.get("pageref") == "candidate")
ok(rc == 0 and got == list(range(12)) and "left out" not in err,
   "cat --har: every result of a results file with sessions out of id order", (got, err))

# ---- errors and help ----
rc, out, err = run("info", os.path.join(tmp, "missing.dyt"))
ok(rc == 2 and "cannot open" in err and "missing.dyt" in err, "missing file: exit 2 with message", err)
txt = os.path.join(tmp, "x.txt")
open(txt, "w").write("not a store\n" * 10)
rc, out, err = run("info", txt)
ok(rc == 2 and "is not a dyetap store" in err, "not a store: exit 2", err)
rc, out, err = run("cat", txt)
ok(rc == 2 and "is not a dyetap store" in err, "cat of not a store: exit 2", err)
rc, out, err = run("info", "--help")
ok(rc == 0 and "usage: dyetap info" in out, "info --help")
rc, out, err = run("cat", "--help")
ok(rc == 0 and "usage: dyetap cat" in out and "--no-body" in out, "cat --help")
rc, out, err = run("cat", "--bogus", path)
ok(rc == 2, "unknown option: exit 2")
rc, out, err = run("info")
ok(rc == 2 and "expected one FILE" in err, "no file: exit 2")

for f in os.listdir(tmp):
    os.unlink(os.path.join(tmp, f))
os.rmdir(tmp)
print("1..%d" % n)
sys.exit(1 if failed else 0)
