#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/2 capture end to end: `dyetap record` on the real captures of
tests/h2/fixtures (nghttp/nghttpd, Upgrade: h2c through nghttpx, h2load,
a python3-grpcio service) against tshark's HTTP/2 dissector as the oracle:
every HTTP/2 stream tshark sees is exactly one session with the same
request and response header fields (in order, pseudo-header fields
included), trailer fields and body lengths, and nothing else is recorded;
coloring by header fields and gRPC metadata (names case-insensitive) and
by :authority is exactly the set of streams tshark shows carrying them;
a reset stream's ts_reset_ns is its RST_STREAM's time in tshark.

  capture_e2e.py DYETAP FIXTURES_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap_util import finish, ok  # noqa: E402

DYETAP, FIX = sys.argv[1], sys.argv[2]
# The server ports the fixtures were captured on (make_fixtures.sh).
PORTS = {"nghttp": 18480, "upgrade": 18481, "grpc": 18482, "h2load": 18480,
         "grpc-parallel": 18562, "grpc-batch": 18482, "grpc-gzip": 18485}
# How tshark is told to read the port: HTTP/2 from the start, or HTTP/1.1
# that it follows into HTTP/2 after "Upgrade: h2c".
PROTO = {"upgrade": "http"}


def pairs_hook(pairs):
    return pairs  # keep repeated keys (tshark repeats http2.header, http2.stream)


def items(obj, key):
    """Every value of @key in a list-of-pairs object."""
    return [v for k, v in obj if k == key] if isinstance(obj, list) else []


def first(obj, key, default=None):
    v = items(obj, key)
    return v[0] if v else default


def tshark_streams(pcap, port, proto="http2"):
    """(client_port, stream_id) -> {'blocks': {'c': [...], 's': [...]},
    'data': {'c': n, 's': n}, 'h1': (method, uri) for an upgraded stream 1}."""
    out = subprocess.run(
        ["tshark", "-r", pcap, "-d", "tcp.port==%d,%s" % (port, proto), "-T", "json", "-J",
         "tcp http http2"],
        capture_output=True, check=True).stdout
    pkts = json.loads(out, object_pairs_hook=pairs_hook)
    streams = {}
    for p in pkts:
        layers = first(first(p, "_source"), "layers")
        tcp = first(layers, "tcp")
        sport, dport = int(first(tcp, "tcp.srcport")), int(first(tcp, "tcp.dstport"))
        side = "c" if dport == port else "s"
        cport = sport if side == "c" else dport
        for h in items(layers, "http"):
            reqline = [k for k, _ in h if k.startswith("GET ") or k.startswith("POST ")]
            if reqline and first(h, "http.upgrade") == "h2c":
                f = first(h, reqline[0])
                st = streams.setdefault((cport, 1), new_stream())
                st["h1"] = (first(f, "http.request.method"), first(f, "http.request.uri"))
                st["h1_lines"] = items(h, "http.request.line")
        for h2 in items(layers, "http2"):
            for fr in items(h2, "http2.stream"):
                sid = int(first(fr, "http2.streamid", "0"))
                ftype = first(fr, "http2.type")
                if sid == 0 or ftype not in ("0", "1"):
                    continue
                st = streams.setdefault((cport, sid), new_stream())
                if ftype == "1":
                    block = [(first(x, "http2.header.name"), first(x, "http2.header.value"))
                             for x in items(fr, "http2.header")]
                    st["blocks"][side].append(block)
                else:
                    n = int(first(fr, "http2.length"))
                    padded = first(first(fr, "http2.flags_tree"), "http2.flags.padded") == "1"
                    if padded:
                        n -= int(first(fr, "http2.pad_length")) + 1
                    st["data"][side] += n
    return streams


def new_stream():
    return {"blocks": {"c": [], "s": []}, "data": {"c": 0, "s": 0}, "h1": None}


def record(pcap, *extra):
    out = os.path.join(tmp, "rec.dyt")
    r = subprocess.run([DYETAP, "record", "-r", pcap, "-w", out, "--stats"] + list(extra),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    c = subprocess.run([DYETAP, "cat", "--json", out], capture_output=True, text=True,
                       check=True)
    stats = {}
    for line in r.stderr.splitlines():
        f = line.split()
        if len(f) == 2 and f[1].isdigit():
            stats[f[0]] = int(f[1])
    return [json.loads(line) for line in c.stdout.splitlines()], stats


def pairs(lst):
    return [tuple(x) for x in (lst or [])]


def check_fixture(name):
    pcap = os.path.join(FIX, name + ".pcap")
    port = PORTS[name]
    oracle = tshark_streams(pcap, port, PROTO.get(name, "http2"))
    sessions, stats = record(pcap)
    got = {}
    for s in sessions:
        got.setdefault((int(s["src"].rsplit(":", 1)[1]), s.get("stream")), []).append(s)
    want_keys = {k for k, v in oracle.items() if v["blocks"]["c"] or v["h1"]}
    ok(set(got) == want_keys and all(len(v) == 1 for v in got.values()),
       "%s: one session per HTTP/2 stream tshark sees (%d)" % (name, len(want_keys)),
       "got %s\nwant %s" % (sorted(got), sorted(want_keys)))
    bad = []
    for key in sorted(want_keys & set(got)):
        s, o = got[key][0], oracle[key]
        if s.get("proto") != "h2c" or s["flags"]:
            bad.append("%s: proto %s flags %s" % (key, s.get("proto"), s["flags"]))
        cb, sb = o["blocks"]["c"], o["blocks"]["s"]
        if o["h1"]:
            if (s["request"]["method"], s["request"]["target"]) != o["h1"]:
                bad.append("%s: upgraded request %s" % (key, o["h1"]))
            ctrail = cb[0] if cb else []
        else:
            if pairs(s["request"]["headers"]) != cb[0]:
                bad.append("%s: request fields %s != %s" % (key, s["request"]["headers"], cb[0]))
            ctrail = cb[1] if len(cb) > 1 else []
        if pairs(s["request"].get("trailers")) != ctrail:
            bad.append("%s: request trailers %s != %s" % (key, s["request"].get("trailers"),
                                                          ctrail))
        finals = [b for b in sb if not any(n == ":status" and v.startswith("1") for n, v in b)]
        if not finals or pairs(s["response"]["headers"]) != finals[0]:
            bad.append("%s: response fields %s != %s" % (key, s["response"]["headers"], finals))
        strail = finals[1] if len(finals) > 1 else []
        if pairs(s["response"].get("trailers")) != strail:
            bad.append("%s: response trailers %s != %s" % (key, s["response"].get("trailers"),
                                                           strail))
        if s["response"]["body_len"] != o["data"]["s"] or (
                not o["h1"] and s["request"]["body_len"] != o["data"]["c"]):
            bad.append("%s: body lengths %d/%d != %d/%d" % (
                key, s["request"]["body_len"], s["response"]["body_len"], o["data"]["c"],
                o["data"]["s"]))
        status = dict(s["response"]["headers"]).get(":status")
        if str(s["response"]["status"]) != status:
            bad.append("%s: status %s, :status %s" % (key, s["response"]["status"], status))
    ok(not bad, "%s: fields, trailers, body lengths and status equal tshark's" % name,
       "\n".join(bad))
    ok(stats.get("h2_bad_frames", -1) == 0 and stats.get("h2_hpack_errors", -1) == 0 and
       stats.get("h2_sessions_complete") == len(want_keys),
       "%s: no bad frame, no HPACK error, every stream complete" % name, str(stats))
    # docs/capture.md "Reading the counters": a clean capture has
    # txn_sessions_complete = txn_sessions_emitted (an Upgrade exchange is whole)
    ok(stats.get("txn_sessions_complete", -1) == stats.get("txn_sessions_emitted", -2),
       "%s: txn_sessions_complete = txn_sessions_emitted (%s of %s), as for a clean capture" %
       (name, stats.get("txn_sessions_complete"), stats.get("txn_sessions_emitted")),
       str(stats))
    return oracle, sessions


def lanes_of(sessions):
    return {(int(s["src"].rsplit(":", 1)[1]), s.get("stream")): s["lane"] for s in sessions}


def check_colors():
    for name in ("nghttp", "upgrade", "grpc"):
        pcap = os.path.join(FIX, name + ".pcap")
        oracle = tshark_streams(pcap, PORTS[name], PROTO.get(name, "http2"))
        want = {}
        for key, o in oracle.items():
            if not (o["blocks"]["c"] or o["h1"]):
                continue
            lane = ""
            for n, v in (o["blocks"]["c"][0] if o["blocks"]["c"] and not o["h1"] else []):
                if n == "x-lane":
                    lane = v
            for line in o.get("h1_lines", []):  # the upgraded request's HTTP/1.1 lines
                if line.lower().startswith("x-lane:"):
                    lane = line.split(":", 1)[1].strip()
            want[key] = lane
        # header names in rules are case-insensitive: X-Lane matches x-lane
        sessions, _ = record(pcap, "--color", "blue=header:X-Lane=blue",
                             "--color", "green=header:x-lane=green")
        got = lanes_of(sessions)
        ok(got == want and any(want.values()),
           "%s: colored by header / metadata x-lane exactly as tshark shows it (%d colored)"
           % (name, sum(1 for v in want.values() if v)),
           "got %s\nwant %s" % (got, want))
    sessions, _ = record(os.path.join(FIX, "grpc.pcap"), "--color",
                         "auth=host:127.0.0.1,path=/shop.Shop/GetItem,method:POST")
    ok(sessions and all(s["lane"] == "auth" for s in sessions),
       "grpc: host matches :authority, path and method the pseudo-header fields")


def epoch_ns(text):
    """tshark's frame.time_epoch ("1796670439.840416000") in integer ns."""
    sec, _, frac = text.partition(".")
    return int(sec) * 10**9 + int((frac + "000000000")[:9])


def check_reset_times():
    """ts_reset_ns (docs/format.md 2.1) is the time of the stream's
    RST_STREAM frame as tshark reads it; a stream never reset has none.
    grpc-watch.pcap: the client cancels a Watch mid-response;
    grpc-watch-early.pcap: 0.3 s after its request, before any response."""
    for name, port in (("grpc-watch", 18482), ("grpc-watch-early", 18484)):
        pcap = os.path.join(FIX, name + ".pcap")
        out = subprocess.run(
            ["tshark", "-r", pcap, "-d", "tcp.port==%d,http2" % port, "-Y", "http2.type == 3",
             "-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.dstport", "-e",
             "http2.streamid", "-e", "http2.type", "-e", "http2.rst_stream.error"],
            capture_output=True, text=True, check=True).stdout
        want = {}  # stream -> time of the client's RST_STREAM (one connection)
        for line in out.splitlines():
            t, dport, sids, types, codes = line.split("\t")
            rst = iter(codes.split(","))
            for sid, ty in zip(sids.split(","), types.split(",")):
                if ty == "3" and int(dport) == port:
                    want[int(sid)] = (epoch_ns(t), int(next(rst), 0))
        sessions, _ = record(pcap)
        got = {s.get("stream"): (s["ts_reset_ns"], s.get("reset_code")) for s in sessions
               if "ts_reset_ns" in s}
        reset = [s for s in sessions if "ts_reset_ns" in s]
        ok(len(want) == 1 and got == want,
           "%s: ts_reset_ns and reset_code are the client's RST_STREAM time and error code "
           "tshark shows (%s), on that stream only" % (name, want), "got %s" % got)
        early = name == "grpc-watch-early"
        ok(len(reset) == 1 and {"reset", "no_response" if early else "incomplete"} <=
           set(reset[0]["flags"]) and "server_reset" not in reset[0]["flags"],
           "%s: the reset stream is flagged reset%s by the client" %
           (name, ", no_response" if early else ""), reset and reset[0]["flags"])
        if early and reset:
            wait = (reset[0]["ts_reset_ns"] - reset[0]["ts_request_ns"]) / 1e9
            ok(0.29 <= wait < 0.6, "%s: reset %.3f s after the request (the client's 0.3 s)" %
               (name, wait))


tmp = tempfile.mkdtemp(prefix="h2-capture-")
try:
    if not shutil.which("tshark"):
        print("1..0 # SKIP tshark not installed (tests/setup.sh)")
        sys.exit(0)
    for n in ("nghttp", "upgrade", "grpc", "h2load", "grpc-parallel", "grpc-batch", "grpc-gzip"):
        check_fixture(n)
    check_colors()
    check_reset_times()
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(finish())
