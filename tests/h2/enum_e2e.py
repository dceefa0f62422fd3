#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gRPC enum fields end to end: a real grpcio service (Debian's
python3-grpcio, shop.proto's messages built at run time from the
FileDescriptorSet, as grpc_shop.py does) answers GetItem with the enum
fields Item.status (top-level enum Stock), Item.history (repeated, packed)
and Tag.kind (nested enum Tag.Kind). The baseline says item 2 is
DISCONTINUED, the candidate BACKORDER; the candidate also tags item 3
SEASONAL, not PROMO.

The baseline's answers to 4 calls are recorded with tcpdump on lo,
replayed to the candidate (with a second baseline as secondary), and
`dyetap diff --proto shop.pb` must report each change with the values'
names, as protobuf's JSON mapping writes an enum ("DISCONTINUED" ->
"BACKORDER" at body:$.status, "PROMO" -> "SEASONAL" at
body:$.tags[*].kind), nothing else (history is the same on both); without
--proto the numbers at the field numbers ($.10: 2 -> 3).

  enum_e2e.py DYETAP SHOP_PB      (TAP; skips without root, tcpdump or grpcio)
  enum_e2e.py serve PORT baseline|candidate SHOP_PB
  enum_e2e.py call PORT SHOP_PB N
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SYS_PY = "/usr/bin/python3"


def messages(pb):
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    fds = descriptor_pb2.FileDescriptorSet()
    with open(pb, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fdp in fds.file:
        pool.Add(fdp)
    get = message_factory.MessageFactory(pool).GetPrototype
    return (pool, get(pool.FindMessageTypeByName("shop.ItemRequest")),
            get(pool.FindMessageTypeByName("shop.Item")))


def serve(port, variant, pb):
    from concurrent import futures
    import grpc
    pool, Req, Item = messages(pb)
    stock = pool.FindEnumTypeByName("shop.Stock").values_by_name
    kind = pool.FindEnumTypeByName("shop.Tag.Kind").values_by_name
    cand = variant == "candidate"

    def get_item(req, ctx):
        i = req.id
        it = Item(id=i, name="item-%d" % i, price=10.0 + i)
        it.status = stock[("BACKORDER" if cand else "DISCONTINUED") if i == 2
                          else "AVAILABLE"].number
        it.history.extend(stock[n].number for n in ("AVAILABLE", "DISCONTINUED")[:i])
        it.tags.add(name="new", weight=3,
                    kind=kind["SEASONAL" if cand and i == 3 else "PROMO"].number)
        return it

    h = grpc.method_handlers_generic_handler("shop.Shop", {
        "GetItem": grpc.unary_unary_rpc_method_handler(
            get_item, request_deserializer=Req.FromString,
            response_serializer=lambda m: m.SerializeToString())})
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((h,))
    srv.add_insecure_port("127.0.0.1:%d" % port)
    srv.start()
    print("ready", flush=True)
    srv.wait_for_termination()


def call(port, pb, n):
    import grpc
    _, Req, Item = messages(pb)
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        get = ch.unary_unary("/shop.Shop/GetItem",
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=Item.FromString)
        for i in range(1, n + 1):
            get(Req(id=i), timeout=5)
    print("calls %d" % n, flush=True)


def main():
    sys.path.insert(0, os.path.join(HERE, ".."))
    from tap_util import finish, free_port, ok

    dyetap, pb = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        print("1..0 # SKIP tcpdump on lo needs root and tcpdump")
        return 0
    if subprocess.run([SYS_PY, "-c", "import grpc"], capture_output=True).returncode:
        print("1..0 # SKIP no python3-grpcio")
        return 0
    tmp = tempfile.mkdtemp(prefix="enum-e2e-")
    procs = []
    try:
        ports = [free_port()]
        ports += [free_port(ports)]
        ports += [free_port(ports)]
        logs = []
        for port, variant in zip(ports, ("baseline", "candidate", "baseline")):
            log = os.path.join(tmp, "srv-%d.log" % port)
            logs.append(log)
            procs.append(subprocess.Popen(
                [SYS_PY, os.path.abspath(__file__), "serve", str(port), variant, pb],
                stdout=open(log, "w"), stderr=subprocess.STDOUT))
        for _ in range(100):
            if all("ready" in open(x).read() for x in logs):
                break
            time.sleep(0.1)
        pcap = os.path.join(tmp, "enum.pcap")
        td_err = os.path.join(tmp, "tcpdump.err")
        td = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-w", pcap,
                               "tcp port %d" % ports[0]],
                              stdout=subprocess.DEVNULL, stderr=open(td_err, "w"))
        procs.append(td)
        for _ in range(100):
            if "listening" in open(td_err).read():
                break
            time.sleep(0.1)
        c = subprocess.run([SYS_PY, os.path.abspath(__file__), "call", str(ports[0]), pb, "4"],
                           capture_output=True, text=True, timeout=60)
        time.sleep(1)  # the last packets reach the capture
        td.send_signal(signal.SIGINT)
        td.wait(timeout=10)
        ok(c.returncode == 0 and "calls 4" in c.stdout,
           "the grpcio client made 4 calls, recorded by tcpdump on lo", c.stderr)
        rec, res = os.path.join(tmp, "rec.dyt"), os.path.join(tmp, "res.dyt")
        r = subprocess.run([dyetap, "record", "-r", pcap, "-w", rec], capture_output=True,
                           text=True)
        ok(r.returncode == 0 and "4 sessions" in r.stderr + r.stdout,
           "record -r: 4 sessions", r.stderr + r.stdout)
        r = subprocess.run([dyetap, "replay", rec, "--target", "http://127.0.0.1:%d" % ports[1],
                            "--baseline", "http://127.0.0.1:%d" % ports[2], "-o", res,
                            "--allow-writes"], capture_output=True, text=True)
        ok(r.returncode == 0, "replay to the candidate and a baseline", r.stderr)

        def diff(*extra):
            r = subprocess.run([dyetap, "diff", res, "--json", "-", "--quiet"] + list(extra),
                               capture_output=True, text=True)
            rep = json.loads(r.stdout) if r.stdout else {"differences": []}
            return {d["location"]: (d["example"]["primary_value"],
                                    d["example"]["candidate_value"])
                    for d in rep["differences"] if not d["noise"]}

        got = diff("--proto", pb)
        ok(got.get("body:$.status") == ('"DISCONTINUED"', '"BACKORDER"'),
           "--proto: the top-level enum's change by name: \"DISCONTINUED\" -> \"BACKORDER\"",
           got)
        ok(got.get("body:$.tags[*].kind") == ('"PROMO"', '"SEASONAL"'),
           "--proto: the nested enum's change by name: \"PROMO\" -> \"SEASONAL\"", got)
        ok(len(got) == 2, "--proto: nothing else (the packed repeated enum is equal)", got)
        raw = diff()
        ok(raw.get("body:$.10") == ("2", "3") and raw.get("body:$.4.8") == ("1", "2"),
           "without --proto: numbers at field numbers ($.10: 2 -> 3; one tag: $.4.8)", raw)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif len(sys.argv) > 1 and sys.argv[1] == "call":
        call(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(main())
