#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/2 replay and gRPC diff end to end, with real servers on loopback.

gRPC: the committed capture of grpc_shop.py's client against the baseline
service (fixtures/grpc.pcap) is recorded, then replayed over h2c to the
candidate build (planted changes, grpc_shop.py CHANGES) with a second
baseline as secondary; `dyetap diff` must find each planted change at its
protobuf field (schema-less $.3 and $.4[*].7; with --proto $.price and
$.tags[*].weight), the NOT_FOUND answer as a grpc-status change, learn the
wall-clock field served_at_ms ($.5) as noise, and report nothing else but
the consequence of the error answer. The same build against itself: no
difference at all. The results keep trailers (grpc-status).

Concurrency: at --max the sequential calls of grpc.pcap reach a server
one at a time, the batches of 3 of grpc-parallel.pcap three at a time.

Mirror: `dyetap mirror` on the same capture shadows the calls colored by
their x-lane metadata to the candidate over h2c and finds their changes.

Cancelled stream: grpc-watch.pcap's client cancels a server-streaming
Watch after 2 items (RST_STREAM CANCEL) and then makes 3 GetItem calls
with a 3 s deadline. The recording has the Watch reset mid-response;
the replay ends it the same way (docs/http2.md "Replay") instead of
waiting its --timeout for a stream that never ends, so the calls after
it are not held back past their deadline: no error, the GetItem calls
sent at once (lateness under 1 s, below the 3 s deadline they carry),
and diff of the same build finds nothing (the Watch not compared: it was
recorded incomplete). Alone (--path), the Watch is cancelled once the
recorded response bytes came. To a server whose Watch answers only after
2 s, the Watch is cancelled when the first GetItem is due, before any
response came: still "cancelled as recorded", not a reset by the target.

nghttp2: the nghttp and Upgrade: h2c captures replayed to nghttpd serving
the same documents (make_fixtures.sh's): every stream answered with the
recorded status and body length, response trailers kept.

  replay_e2e.py DYETAP FIXTURES_DIR SHOP_PB
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from tap_util import finish, free_port, ok, stop_all  # noqa: E402

DYETAP, FIX, SHOP_PB = sys.argv[1], sys.argv[2], sys.argv[3]
PY = "/usr/bin/python3"
procs = []


def start(cmd, ready=None):
    log = tempfile.NamedTemporaryFile(prefix="h2-srv-", delete=False)
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    for _ in range(100):
        time.sleep(0.1)
        if p.poll() is not None:
            raise RuntimeError("%s exited: %s" % (cmd[0], open(log.name).read()))
        if ready is None or ready in open(log.name).read():
            break
    return p


def dy(*args, check=True):
    r = subprocess.run([DYETAP] + list(args), capture_output=True, text=True)
    if check and r.returncode not in (0, 1):
        raise RuntimeError("dyetap %s: %s" % (" ".join(args), r.stderr))
    return r


def results(path):
    out = dy("cat", "--json", "--type", "result", path).stdout
    return [json.loads(line) for line in out.splitlines()]


def diff_json(res, *extra):
    r = dy("diff", res, "--json", "-", "--quiet", *extra)
    return json.loads(r.stdout)


def groups(rep, noise):
    return {(d["location"], d["kind"]): d["count"] for d in rep["differences"]
            if d["noise"] == noise}


def grpc_tests(tmp):
    rec = os.path.join(tmp, "grpc.dyt")
    dy("record", "-r", os.path.join(FIX, "grpc.pcap"), "-w", rec)
    ports = [free_port() for _ in range(3)]
    shop = os.path.join(HERE, "grpc_shop.py")
    start([PY, shop, "serve", str(ports[0]), "--variant", "candidate", "--pb", SHOP_PB], "ready")
    start([PY, shop, "serve", str(ports[1]), "--variant", "baseline", "--pb", SHOP_PB], "ready")
    start([PY, shop, "serve", str(ports[2]), "--variant", "baseline", "--pb", SHOP_PB], "ready")
    res = os.path.join(tmp, "grpc-res.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % ports[0], "--baseline",
           "http://127.0.0.1:%d" % ports[1], "-o", res, "--allow-writes")
    ok(r.returncode == 0, "grpc: replay over h2c to the candidate and a baseline", r.stderr)
    rs = results(res)
    ok(len(rs) == 60 and all(x["error"] == "none" for x in rs),
       "grpc: 60 results (30 calls x 2 targets), no replay error",
       [x for x in rs if x["error"] != "none"][:3])
    tr = [dict(x["response"].get("trailers", [])).get("grpc-status") for x in rs
          if x["role"] == "candidate"]
    ok(tr.count("0") == 29 and not any(x["response"].get("trailers") for x in rs
                                       if x["role"] == "candidate" and x["session_id"] == 11),
       "grpc: trailers recorded in the results (grpc-status 0 x 29; id 11 Trailers-Only)",
       tr)
    sent = [dict(x["response"]["headers"]).get(":status") for x in rs]
    ok(all(s == "200" for s in sent), "grpc: every response :status 200")
    # schema-less: field numbers
    rep = diff_json(res)
    real = groups(rep, False)
    want = {("body:$.3", "value_changed"): 6, ("body:$.4[*].7", "value_changed"): 5,
            ("grpc-status", "status_changed"): 1}
    ok(all(real.get(k) == v for k, v in want.items()),
       "grpc: each planted change found at its protobuf field ($.3 x6, $.4[*].7 x5, "
       "grpc-status x1)", real)
    ok(len(real) <= 1.5 * len(want),
       "grpc: causes <= 1.5 x true changes (%d for %d)" % (len(real), len(want)), real)
    extra = set(real) - set(want)
    ok(not extra,
       "grpc: nothing else (the Trailers-Only error answer's missing "
       "grpc-accept-encoding follows from its status change)", extra)
    noise = groups(rep, True)
    ok(("body:$.5", "value_changed") in noise and ("body:$.5", "value_changed") not in real,
       "grpc: the wall-clock field $.5 (served_at_ms) learned as noise", noise)
    st = [d for d in rep["differences"] if d["location"] == "grpc-status"]
    ok(st and st[0]["example"]["primary_value"] == "0" and
       st[0]["example"]["candidate_value"] == "5 item retired",
       "grpc: grpc-status with grpc-message compared like a status (0 -> 5 item retired)",
       st[:1])
    ok(rep["summary"]["status_changes"] == 1, "grpc: one status change in the summary",
       rep["summary"])
    # with the schema: field names
    rep = diff_json(res, "--proto", SHOP_PB)
    real = groups(rep, False)
    ok(real.get(("body:$.price", "value_changed")) == 6 and
       real.get(("body:$.tags[*].weight", "value_changed")) == 5 and
       ("body:$.served_at_ms", "value_changed") in groups(rep, True),
       "grpc --proto: $.price x6, $.tags[*].weight x5, $.served_at_ms noise", real)
    # examples show the messages as compared (JSON, named fields), the
    # trailers with the headers, and the element's own index
    ex = [d["example"] for d in rep["differences"] if d["location"] == "body:$.price"]
    body = ex[0]["primary"].split("\n\n", 1)[1] if ex else ""
    ok(ex and "\n[trailers]\ngrpc-status: 0\n" in ex[0]["primary"] and
       json.loads(body).get("price") == float(ex[0]["primary_value"]) and
       json.loads(ex[0]["request"].split("\n\n", 1)[1]).get("id") > 0,
       "grpc --proto: an example's messages are shown as JSON, its trailers with the headers",
       ex[:1])
    tags = [e for c in rep["causes"] for e in c["examples"]
            if c["location"] == "body:$.tags[*].weight"]
    ok(tags and all(e["location"] == "body:$.tags[1].weight" for e in tags),
       "grpc --proto: a cause's example names the element ($.tags[1].weight)", tags)
    html = os.path.join(tmp, "grpc.html")
    dy("diff", res, "--proto", SHOP_PB, "--html", html, check=False)
    with open(html) as f:
        page = f.read()
    ok('<mark class="hl">grpc-status: 5</mark>' in page and
       '<mark class="hl">%s</mark>' % (ex[0]["primary_value"] if ex else "-") in page and
       "neither shown body" not in page,
       "grpc --proto: the HTML report marks the grpc-status line and the changed field",
       re.findall(r'<mark class="hl">[^<]*</mark>', page)[:8])
    bad = dy("diff", res, "--proto", os.path.join(FIX, "grpc.pcap"), check=False)
    ok(bad.returncode == 2 and "FileDescriptorSet" in bad.stderr,
       "grpc --proto: a file that is no FileDescriptorSet is refused (exit 2)", bad.stderr)
    # the same build twice: nothing
    same = os.path.join(tmp, "grpc-same.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % ports[1], "--baseline",
           "http://127.0.0.1:%d" % ports[2], "-o", same, "--allow-writes")
    rep = diff_json(same)
    ok(r.returncode == 0 and rep["summary"]["differing"] == 0 and not groups(rep, False) and
       ("body:$.5", "value_changed") in groups(rep, True),
       "grpc: the same build gives no difference (served_at_ms learned as noise)",
       (rep["summary"], groups(rep, False)))
    r = dy("diff", same, "--fail-on", "status_changes>0", "--fail-on", "diff_rate>0")
    ok(r.returncode == 0, "grpc: the same build passes the gate", r.stdout[-500:])


def concurrency_tests(tmp):
    """At --max, streams keep the recorded concurrency of their connection."""
    shop = os.path.join(HERE, "grpc_shop.py")
    for name, want in (("grpc", 1), ("grpc-parallel", 3)):
        rec = os.path.join(tmp, name + "-c.dyt")
        dy("record", "-r", os.path.join(FIX, name + ".pcap"), "-w", rec)
        port = free_port()
        log = os.path.join(tmp, name + ".conc")
        start([PY, shop, "serve", str(port), "--pb", SHOP_PB, "--delay", "0.05",
               "--concurrency-log", log], "ready")
        res = os.path.join(tmp, name + "-c-res.dyt")
        r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "--max", "-o", res,
               "--allow-writes")
        with open(log) as f:
            got = int(f.read().strip() or 0)
        ok(r.returncode == 0 and got == want,
           "%s at --max: the server saw at most %d calls at once, as recorded (got %d)"
           % (name, want, got), r.stderr[-300:])


def mirror_tests(tmp):
    """dyetap mirror shadows the colored gRPC calls to a lane over h2c."""
    port = free_port()
    shop = os.path.join(HERE, "grpc_shop.py")
    start([PY, shop, "serve", str(port), "--variant", "candidate", "--pb", SHOP_PB], "ready")
    rep = os.path.join(tmp, "mirror-rep")
    os.makedirs(rep)
    r = dy("mirror", "-r", os.path.join(FIX, "grpc.pcap"), "--color", "blue=header:x-lane=blue",
           "--lane", "blue=http://127.0.0.1:%d" % port, "--allow-writes", "--report-dir", rep,
           "--stats")
    stats = {}
    for line in r.stderr.splitlines():
        f = line.split()
        if len(f) == 2 and f[1].isdigit():
            stats[f[0]] = int(f[1])
    ok(r.returncode in (0, 1) and stats.get("lane_blue_mirrored") == 15 and
       stats.get("lane_blue_ok") == 15 and stats.get("mirror_paired") == 15,
       "mirror: the 15 calls with x-lane: blue shadowed over h2c and paired", stats)
    with open(os.path.join(rep, "report.json")) as f:
        d = json.load(f)
    real = groups(d, False)
    # blue calls are the odd ids: price 3, 13, 23; weight 9, 23; NOT_FOUND 11
    want = {("body:$.3", "value_changed"): 3, ("body:$.4[*].7", "value_changed"): 2,
            ("grpc-status", "status_changed"): 1}
    ok(all(real.get(k) == v for k, v in want.items()),
       "mirror: the live diff finds the planted changes of the blue calls", real)


def cancel_tests(tmp):
    rec = os.path.join(tmp, "watch.dyt")
    dy("record", "-r", os.path.join(FIX, "grpc-watch.pcap"), "-w", rec)
    sess = [json.loads(line) for line in dy("cat", "--json", "--no-body", rec).stdout.splitlines()]
    watch = [s for s in sess if s["request"]["target"] == "/shop.Shop/Watch"]
    ok(len(sess) == 4 and len(watch) == 1 and
       set(watch[0].get("flags", [])) >= {"reset", "incomplete"},
       "cancel: the recorded Watch is reset mid-response, 3 GetItem calls after it",
       [(s["request"]["target"], s.get("flags")) for s in sess])
    wid = watch[0]["id"] if watch else None
    port = free_port()
    start([PY, os.path.join(HERE, "grpc_shop.py"), "serve", str(port), "--pb", SHOP_PB], "ready")
    res = os.path.join(tmp, "watch-res.dyt")
    t0 = time.monotonic()
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "-o", res, "--allow-writes",
           "--json", "--quiet")
    took = time.monotonic() - t0
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    rs = {x["session_id"]: x for x in results(res)}
    w = rs.get(wid, {})
    late = [rs.get(s["id"], {}).get("lateness_ns", -1) / 1e9 for s in sess if s["id"] != wid]
    ok(r.returncode == 0 and js.get("sent") == 4 and js.get("ok") == 4 and
       js.get("errors", {}).get("total") == 0 and
       js.get("counters", {}).get("h2_cancelled_as_recorded") == 1,
       "cancel: 4 sent, 4 ok, no error, h2_cancelled_as_recorded 1",
       (r.returncode, r.stderr[-300:], js.get("errors"), js.get("counters")))
    ok(w.get("error") == "none" and w.get("error_msg", "").startswith("cancelled as recorded"),
       "cancel: the Watch's result: cancelled as recorded, not an error", w.get("error_msg"))
    ok(len(late) == 3 and all(0 <= x < 1.0 for x in late) and took < 8,
       "cancel: the GetItem calls went at once (lateness %s s; the replay took %.1f s, not the "
       "10 s --timeout)" % (["%.3f" % x for x in late], took), (late, took))
    rep = diff_json(res, "--proto", SHOP_PB)
    s = rep.get("summary", rep)
    ok(s.get("compared") == 3 and s.get("differing") == 0 and s.get("cancelled") == 1 and
       s.get("incomplete") == 0 and rep.get("data_incomplete") is False and
       not groups(rep, False),
       "cancel: diff of the same build: 3 compared, none differ, the Watch cancelled by its "
       "client (not compared, no data lost)", (s, rep.get("data_incomplete"), groups(rep, False)))
    # the HTML endpoint table has the column (only when some were cancelled)
    html = os.path.join(tmp, "watch.html")
    dy("diff", res, "--proto", SHOP_PB, "--quiet", "--html", html, check=False)
    page = open(html).read() if os.path.exists(html) else ""
    sec = page[page.find('<section id="endpoints"'):]
    sec = sec[:sec.find("</section>")]
    head = re.findall(r"<th>([^<]*)</th>", sec)
    rows = {m.group(1): re.findall(r'<td class="n"[^>]*>([^<]*)</td>', m.group(2))
            for m in re.finditer(r"<tr><td>([^<]*)</td>(.*?)</tr>", sec)}
    col = head.index("cancelled") - 1 if "cancelled" in head else -1
    wrow = rows.get("POST /shop.Shop/Watch", [])
    ok(col >= 0 and len(wrow) > col and wrow[col] == "1" and
       rows.get("POST /shop.Shop/GetItem", [""] * 8)[col] == "0",
       "cancel: the HTML endpoint table's cancelled column: 1 for Watch, 0 for GetItem",
       (head, rows))
    gate = dy("diff", res, "--proto", SHOP_PB, "--quiet", "--fail-on", "data_incomplete>0",
              "--fail-on", "status_changes>0", check=False)
    ok(gate.returncode == 0,
       "cancel: the same build passes a gate on data_incomplete: a client's cancel is no loss",
       gate.stdout[-400:])
    # red: the candidate build (grpc_shop.py CHANGES: id 2's second tag weight,
    # id 3's price)
    cport = free_port(avoid=(port,))
    start([PY, os.path.join(HERE, "grpc_shop.py"), "serve", str(cport), "--variant", "candidate",
           "--pb", SHOP_PB], "ready")
    resc = os.path.join(tmp, "watch-cand.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % cport, "-o", resc,
           "--allow-writes", "--json", "--quiet")
    rep = diff_json(resc, "--proto", SHOP_PB)
    s = rep.get("summary", rep)
    ok(r.returncode == 0 and s.get("compared") == 3 and s.get("differing") == 2 and
       groups(rep, False) == {("body:$.price", "value_changed"): 1,
                              ("body:$.tags[*].weight", "value_changed"): 1},
       "cancel: against the candidate build, the planted changes of ids 2 and 3 are found, "
       "and nothing else (no deadline error)", (r.returncode, s, groups(rep, False)))
    # alone: cancelled once its recorded response bytes came
    res2 = os.path.join(tmp, "watch-alone.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "-o", res2,
           "--allow-writes", "--path", "/shop.Shop/Watch", "--json", "--quiet")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    w = {x["session_id"]: x for x in results(res2)}.get(wid, {})
    got = (w.get("response") or {}).get("body_len", 0)
    ok(r.returncode == 0 and js.get("ok") == 1 and w.get("error") == "none" and
       watch and got >= watch[0]["response"]["body_len"] and
       w.get("latency_ns", 10**10) < 5e9,
       "cancel: the Watch alone is cancelled once the recorded %s response bytes came (%s)" %
       (watch[0]["response"]["body_len"] if watch else "?", got),
       (r.stderr[-300:], w.get("error"), w.get("error_msg"), got))
    # mirror: the Watch is shadowed when its request ended, before the capture
    # saw the client's reset; the reset session then cancels the lane's copy
    # (at once from the file, as captured with --realtime)
    for mode in ([], ["--realtime"]):
        r = dy("mirror", "-r", os.path.join(FIX, "grpc-watch.pcap"), *mode, "--color",
               "blue=method:POST", "--lane", "blue=http://127.0.0.1:%d" % port,
               "--allow-writes", "-w", os.path.join(tmp, "watch-mirror.dyt"), "--stats")
        st = {m.group(1): int(m.group(2))
              for m in re.finditer(r"^\s*(lane_blue_\w+)\s+(\d+)\s*$", r.stderr, re.M)}
        ok(r.returncode in (0, 1) and st.get("lane_blue_sent") == 4 and
           st.get("lane_blue_ok") == 4 and st.get("lane_blue_errors") == 0 and
           st.get("lane_blue_h2_cancelled_as_recorded") == 1,
           "cancel: mirror %s: the lane's Watch cancelled when the production one was reset "
           "(4 sent, 4 ok, no error, h2_cancelled_as_recorded 1)" % (" ".join(mode) or "-r"),
           (r.returncode, st, r.stderr[-300:]))
    # a target slow to answer the Watch: cancelled before its response
    port = free_port()
    start([PY, os.path.join(HERE, "grpc_shop.py"), "serve", str(port), "--pb", SHOP_PB,
           "--watch-delay", "2"], "ready")
    res3 = os.path.join(tmp, "watch-slow.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "-o", res3,
           "--allow-writes", "--json", "--quiet")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    w = {x["session_id"]: x for x in results(res3)}.get(wid, {})
    ok(r.returncode == 0 and js.get("ok") == 4 and js.get("errors", {}).get("total") == 0 and
       js.get("counters", {}).get("h2_cancelled_as_recorded") == 1 and
       w.get("error") == "none" and w.get("error_msg", "").startswith("cancelled as recorded"),
       "cancel: a Watch cancelled before the target answered is cancelled as recorded, "
       "not a reset by the target",
       (r.returncode, js.get("errors"), w.get("error"), w.get("error_msg")))


def same_build_clean(rec, port, out, compared, what):
    """Replay @rec to the baseline build on @port: diff compares @compared
    pairs and finds no difference."""
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "-o", out,
           "--allow-writes", "--quiet")
    rep = diff_json(out, "--proto", SHOP_PB)
    ok(r.returncode == 0 and rep["summary"]["compared"] == compared and
       rep["summary"]["differing"] == 0 and not groups(rep, False),
       "%s: the same build gives no difference" % what, (rep["summary"], groups(rep, False)))


def gzip_tests(tmp):
    """grpc-gzip.pcap: grpcio with gzip message compression on both sides;
    tshark shows the answers compressed (flag 1). Replayed to the candidate
    build (also compressing; its answer to id 11 is an error without a
    message), diff inflates the messages and finds the 3 planted changes of
    ids 1..20, once each, by cause, and nothing else: not the error
    answer's missing grpc-encoding and grpc-accept-encoding,
    which a Trailers-Only answer has no place for (gRPC's PROTOCOL-HTTP2.md).
    The same build: nothing."""
    pcap = os.path.join(FIX, "grpc-gzip.pcap")
    out = subprocess.run(["tshark", "-r", pcap, "-d", "tcp.port==18485,http2", "-Y", "grpc",
                          "-T", "fields", "-e", "grpc.compressed_flag"],
                         capture_output=True, text=True).stdout if shutil.which("tshark") else ""
    flags = [f for line in out.splitlines() for f in line.split("\t")[0].split(",")]
    ok(not shutil.which("tshark") or (flags.count("1") == 20 and flags.count("0") == 20),
       "gzip: tshark shows the 20 answers compressed (flag 1), the 20 requests not", flags)
    rec = os.path.join(tmp, "gzip.dyt")
    dy("record", "-r", pcap, "-w", rec)
    shop = os.path.join(HERE, "grpc_shop.py")
    ports = [free_port() for _ in range(2)]
    start([PY, shop, "serve", str(ports[0]), "--variant", "candidate", "--gzip",
           "--name-repeat", "20", "--pb", SHOP_PB], "ready")
    start([PY, shop, "serve", str(ports[1]), "--variant", "baseline", "--gzip",
           "--name-repeat", "20", "--pb", SHOP_PB], "ready")
    res = os.path.join(tmp, "gzip-res.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % ports[0], "-o", res,
           "--allow-writes", "--quiet")
    comp = [x for x in results(res) if x["response"] and
            dict(x["response"]["headers"]).get("grpc-encoding") == "gzip"]
    ok(r.returncode == 0 and len(comp) == 19,
       "gzip: replayed; the candidate's 19 answers with a message are gzip-encoded", len(comp))
    want = {("grpc-status", "status_changed"): 1, ("body:$.price", "value_changed"): 4,
            ("body:$.tags[*].weight", "value_changed"): 3}
    rep = diff_json(res, "--proto", SHOP_PB)
    ok(groups(rep, False) == want and rep["summary"]["causes"] == 3,
       "gzip --proto: exactly the 3 planted changes (grpc-status x1, $.price x4, "
       "$.tags[*].weight x3), 3 causes", (groups(rep, False), rep["summary"]))
    rep = diff_json(res)
    ok(groups(rep, False) == {("grpc-status", "status_changed"): 1,
                              ("body:$.3", "value_changed"): 4,
                              ("body:$.4[*].7", "value_changed"): 3},
       "gzip schema-less: the same at $.3 and $.4[*].7", groups(rep, False))
    same_build_clean(rec, ports[1], os.path.join(tmp, "gzip-same.dyt"), 20, "gzip")


def batch_tests(tmp):
    """grpc-batch.pcap: one bidirectional-streaming call carrying ids 1..20,
    an item answered for each. The candidate build answers ids 1..10 and
    then ends the stream with NOT_FOUND at id 11 (grpc_shop.py CHANGES).
    Diff reports the status change once and the planted changes within
    the 10 items both sides have (id 3's and 8's price at $[*].3, id 2's and
    9's tag weight at $[*].4[*].7; Batch is not in shop.proto, so field
    numbers), not the 10 items the error cut off: they follow from it.
    The same build: nothing."""
    rec = os.path.join(tmp, "batch.dyt")
    dy("record", "-r", os.path.join(FIX, "grpc-batch.pcap"), "-w", rec)
    shop = os.path.join(HERE, "grpc_shop.py")
    ports = [free_port() for _ in range(2)]
    start([PY, shop, "serve", str(ports[0]), "--variant", "candidate", "--pb", SHOP_PB], "ready")
    start([PY, shop, "serve", str(ports[1]), "--variant", "baseline", "--pb", SHOP_PB], "ready")
    res = os.path.join(tmp, "batch-res.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % ports[0], "-o", res,
           "--allow-writes", "--quiet")
    rs = results(res)
    body = rs[0]["response"]["body"] if rs and rs[0]["response"] else ""
    ok(r.returncode == 0 and len(rs) == 1 and
       dict(rs[0]["response"].get("trailers", [])).get("grpc-status") == "5",
       "batch: the one streaming call replayed, the candidate's stream ended with status 5",
       (r.returncode, r.stderr[-300:], rs and rs[0].get("error_msg")))
    # HAR out: the gRPC status is in the trailers, which HAR 1.2 has no field
    # for: they are the response's _trailers (docs/interop.md "HAR out")
    h = dy("cat", "--har", res)
    har = json.loads(h.stdout) if h.returncode == 0 else {"log": {"entries": []}}
    tr = {e.get("pageref"): e["response"].get("_trailers") for e in har["log"]["entries"]}
    ok(tr.get("recorded") == [{"name": "grpc-status", "value": "0"}] and
       tr.get("candidate") == [{"name": "grpc-status", "value": "5"},
                               {"name": "grpc-message", "value": "item retired"}],
       "batch: cat --har keeps the recorded and the candidate's grpc-status trailers", tr)
    rep = diff_json(res, "--proto", SHOP_PB)
    want = {("grpc-status", "status_changed"): 1, ("body:$[*].3", "value_changed"): 1,
            ("body:$[*].4[*].7", "value_changed"): 1}
    ok(groups(rep, False) == want and rep["summary"]["causes"] == 3,
       "batch: the status change once and the planted changes in the items both sides "
       "have; not the items the error cut off", (groups(rep, False), rep["summary"]))
    ex = [d for d in rep["differences"] if d["location"] == "body:$[*].3"]
    ok(ex and ex[0]["example"]["primary_value"] == "13" and
       ex[0]["example"]["candidate_value"] == "14",
       "batch: id 3's price 13 -> 14", ex[:1])
    same_build_clean(rec, ports[1], os.path.join(tmp, "batch-same.dyt"), 1, "batch")


def early_cancel_tests(tmp):
    """grpc-watch-early.pcap: the client cancels a Watch 0.3 s after its
    request, before the server's first item (it comes after 1 s), then
    makes 3 GetItem calls. The recording keeps when the stream was reset
    (ts_reset_ns); the replay cancels the Watch at that time after sending
    it, or when a call that began after the reset is due, whichever comes
    first. Without the time it waited the --timeout and ended as a timeout
    error: a replay error on the same build."""
    rec = os.path.join(tmp, "early.dyt")
    dy("record", "-r", os.path.join(FIX, "grpc-watch-early.pcap"), "-w", rec)
    sess = [json.loads(line) for line in dy("cat", "--json", "--no-body", rec).stdout.splitlines()]
    watch = [s for s in sess if s["request"]["target"] == "/shop.Shop/Watch"]
    wid = watch[0]["id"] if watch else None
    rec_wait = (watch[0]["ts_reset_ns"] - watch[0]["ts_request_ns"]) / 1e9 \
        if watch and "ts_reset_ns" in watch[0] else 0
    ok(len(sess) == 4 and len(watch) == 1 and 0.29 <= rec_wait < 0.6 and
       {"reset", "no_response"} <= set(watch[0]["flags"]),
       "early cancel: the recorded Watch was reset %.3f s after its request, before any "
       "response" % rec_wait, [(s["request"]["target"], s.get("flags")) for s in sess])
    # the same build, whose first item comes after 2 s: nothing came before the cancel
    port = free_port()
    start([PY, os.path.join(HERE, "grpc_shop.py"), "serve", str(port), "--pb", SHOP_PB,
           "--watch-delay", "2"], "ready")
    res = os.path.join(tmp, "early-res.dyt")
    t0 = time.monotonic()
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "-o", res, "--allow-writes",
           "--json", "--quiet", "--timeout", "8")
    took = time.monotonic() - t0
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    rs = {x["session_id"]: x for x in results(res)}
    w = rs.get(wid, {})
    wl = w.get("latency_ns", 0) / 1e9
    ok(r.returncode == 0 and js.get("sent") == 4 and js.get("ok") == 4 and
       js.get("errors", {}).get("total") == 0 and
       js.get("counters", {}).get("h2_cancelled_as_recorded") == 1 and took < 4,
       "early cancel: 4 sent, 4 ok, no error, h2_cancelled_as_recorded 1, in %.1f s "
       "(not the 8 s --timeout)" % took,
       (r.returncode, r.stderr[-300:], js.get("errors"), js.get("counters")))
    ok(w.get("error") == "none" and
       w.get("error_msg", "").startswith("cancelled as recorded: the recorded client reset") and
       w.get("response") is None and rec_wait - 0.05 <= wl < rec_wait + 0.5,
       "early cancel: the Watch cancelled as recorded %.3f s after it was sent (recorded "
       "%.3f s), with no response" % (wl, rec_wait), (w.get("error"), w.get("error_msg"), wl))
    rep = diff_json(res, "--proto", SHOP_PB)
    s = rep.get("summary", rep)
    ok(s.get("compared") == 3 and s.get("differing") == 0 and s.get("replay_errors") == 0 and
       s.get("incomplete") == 0 and s.get("cancelled") == 1 and
       rep.get("data_incomplete") is False and not groups(rep, False),
       "early cancel: diff of the same build: 3 compared, none differ, no replay error, the "
       "Watch cancelled by its client, no data lost", (s, groups(rep, False)))
    eps = {e["endpoint"]: e for e in rep.get("endpoints", [])}
    jx = os.path.join(tmp, "early.xml")
    dy("diff", res, "--proto", SHOP_PB, "--quiet", "--junit", jx)
    jt = open(jx).read() if os.path.exists(jx) else ""
    ok(eps.get("POST /shop.Shop/Watch", {}).get("cancelled") == 1 and
       eps["POST /shop.Shop/Watch"].get("compared") == 0 and
       'no pair compared: 1 streams cancelled by their client' in jt,
       "early cancel: the Watch endpoint is listed, 0 compared, 1 cancelled (report.json), "
       "and JUnit says why it was skipped", (eps.get("POST /shop.Shop/Watch"), jt[-400:]))
    # alone: nothing later is due, the recorded wait ends it
    res2 = os.path.join(tmp, "early-alone.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "-o", res2, "--max",
           "--allow-writes", "--path", "/shop.Shop/Watch", "--json", "--quiet", "--timeout", "8")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    w = {x["session_id"]: x for x in results(res2)}.get(wid, {})
    wl = w.get("latency_ns", 0) / 1e9
    ok(r.returncode == 0 and js.get("ok") == 1 and w.get("error") == "none" and
       rec_wait - 0.05 <= wl < rec_wait + 0.5,
       "early cancel: the Watch alone, at --max, is cancelled after the recorded %.3f s "
       "(%.3f s)" % (rec_wait, wl), (r.returncode, r.stderr[-300:], w.get("error_msg"), wl))
    # a build whose Watch fails at once (INTERNAL, Trailers-Only): the target
    # ended the stream, not the recorded client: not "cancelled", incomplete,
    # and a gate on data_incomplete trips (nobody can tell that it is fine)
    bport = free_port(avoid=(port,))
    start([PY, os.path.join(HERE, "grpc_shop.py"), "serve", str(bport), "--pb", SHOP_PB,
           "--watch-error"], "ready")
    resb = os.path.join(tmp, "early-broken.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % bport, "-o", resb,
           "--allow-writes", "--json", "--quiet", "--timeout", "8")
    w = {x["session_id"]: x for x in results(resb)}.get(wid, {})
    rep = diff_json(resb, "--proto", SHOP_PB)
    s = rep.get("summary", rep)
    gate = dy("diff", resb, "--proto", SHOP_PB, "--quiet", "--fail-on", "data_incomplete>0",
              check=False)
    ok(dict((w.get("response") or {}).get("headers", [])).get("grpc-status") == "13" and
       s.get("cancelled") == 0 and s.get("incomplete") == 1 and
       rep.get("data_incomplete") is True and gate.returncode == 1,
       "early cancel: a build whose Watch fails at once (grpc-status 13) is not 'cancelled': "
       "incomplete, and the data_incomplete gate trips",
       (w.get("error_msg"), s, rep.get("data_incomplete"), gate.returncode))
    # red: the candidate build answers the Watch at once (items until the
    # cancel); its planted changes of ids 2 and 3 are found, nothing else
    cport = free_port(avoid=(port,))
    start([PY, os.path.join(HERE, "grpc_shop.py"), "serve", str(cport), "--variant", "candidate",
           "--pb", SHOP_PB], "ready")
    resc = os.path.join(tmp, "early-cand.dyt")
    r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % cport, "-o", resc,
           "--allow-writes", "--json", "--quiet", "--timeout", "8")
    js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    w = {x["session_id"]: x for x in results(resc)}.get(wid, {})
    rep = diff_json(resc, "--proto", SHOP_PB)
    s = rep.get("summary", rep)
    ok(r.returncode == 0 and js.get("errors", {}).get("total") == 0 and
       w.get("error") == "none" and (w.get("response") or {}).get("body_len", 0) > 0 and
       s.get("compared") == 3 and s.get("differing") == 2 and
       groups(rep, False) == {("body:$.price", "value_changed"): 1,
                              ("body:$.tags[*].weight", "value_changed"): 1},
       "early cancel: against the candidate build (its Watch answered, then cancelled as "
       "recorded), the planted changes of ids 2 and 3 are found and nothing else",
       (r.returncode, js.get("errors"), w.get("error_msg"), s, groups(rep, False)))


def nghttp_tests(tmp):
    htdocs = os.path.join(tmp, "htdocs")
    os.makedirs(htdocs)
    with open(os.path.join(htdocs, "index.html"), "w") as f:
        f.write("<html><body>dyetap h2 test</body></html>\n")
    with open(os.path.join(htdocs, "a.json"), "w") as f:
        f.write('{"id": 1, "name": "first", "tags": ["a", "b"]}\n')
    with open(os.path.join(htdocs, "big.txt"), "w") as f:
        f.write("x" * 40000)
    port = free_port()
    start(["nghttpd", "--no-tls", "-d", htdocs, "--trailer", "x-server-trailer: done",
           str(port)])
    for name in ("nghttp", "upgrade"):
        rec = os.path.join(tmp, name + ".dyt")
        dy("record", "-r", os.path.join(FIX, name + ".pcap"), "-w", rec)
        sess = {}
        for line in dy("cat", "--json", "--type", "session", rec).stdout.splitlines():
            s = json.loads(line)
            sess[s["id"]] = s
        res = os.path.join(tmp, name + "-res.dyt")
        r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % port, "-o", res,
               "--allow-writes")
        rs = results(res)
        bad = []
        for x in rs:
            s = sess[x["session_id"]]
            want_status = 200 if name == "upgrade" else s["response"]["status"]
            if x["error"] != "none" or x["response"]["status"] != want_status:
                bad.append((s["request"]["target"], x["error"], x["error_msg"],
                            x["response"] and x["response"]["status"]))
            elif x["response"]["body_len"] != s["response"]["body_len"] and name != "upgrade":
                bad.append((s["request"]["target"], "body", x["response"]["body_len"]))
            elif (x["response"]["body_len"] and
                  dict(x["response"].get("trailers", [])).get("x-server-trailer") != "done"):
                bad.append((s["request"]["target"], "trailers", x["response"].get("trailers")))
        ok(r.returncode == 0 and len(rs) == len(sess) and not bad,
           "%s: %d streams replayed over h2c to nghttpd: recorded status, body length, "
           "trailers kept" % (name, len(rs)), (r.stderr[-300:], bad))


tmp = tempfile.mkdtemp(prefix="h2-replay-")
try:
    if not os.access(PY, os.X_OK) or subprocess.run(
            [PY, "-c", "import grpc"], capture_output=True).returncode != 0:
        print("1..0 # SKIP /usr/bin/python3 has no grpc (python3-grpcio, tests/setup.sh)")
        sys.exit(0)
    if not shutil.which("nghttpd"):
        print("1..0 # SKIP nghttpd not installed (nghttp2-server, tests/setup.sh)")
        sys.exit(0)
    grpc_tests(tmp)
    concurrency_tests(tmp)
    mirror_tests(tmp)
    cancel_tests(tmp)
    early_cancel_tests(tmp)
    gzip_tests(tmp)
    batch_tests(tmp)
    nghttp_tests(tmp)
finally:
    stop_all(procs)
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(finish())
