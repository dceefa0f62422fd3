#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A real gRPC service and client (Debian's python3-grpcio) for the HTTP/2
tests: shop.Shop/GetItem from shop.proto, whose messages are built at run
time from the FileDescriptorSet `protoc -o` makes (the same file
`dyetap diff --proto` reads), so there is no generated code.

  grpc_shop.py serve PORT --variant baseline|candidate [--pb shop.pb]
                     [--delay S [--delay-ids 4,7]] [--watch-delay S] [--watch-error]
                     [--concurrency-log FILE]
                     [--gzip] [--name-repeat N]
  grpc_shop.py call PORT --calls N [--lane blue] [--every K] [--parallel P]
                    [--pb shop.pb] [--watch | --watch-cancel-after S] [--gzip]
                    [--batch N] [--deadline S]

The server listens on 127.0.0.1:PORT in plaintext (h2c, prior knowledge)
and prints "ready" once it does. Item fields: id, name, price, tags
(repeated Tag{name, weight}), served_at_ms (the wall clock: noise),
in_stock. The candidate variant plants these changes (CHANGES below, used
by the tests as the expected causes):
  - id % 5 == 3: price + 1.00                      -> $.price  ($.3 schema-less)
  - id % 7 == 2: the second tag's weight 9 (not 1)  -> $.tags[*].weight ($.4[*].7)
  - id == 11: NOT_FOUND "item retired"             -> grpc-status / grpc-message
Watch (server streaming, no proto change: a generic handler) sends the
requested item every 50 ms until the client cancels; `call --watch`
opens it, reads 2 items, cancels it (RST_STREAM CANCEL), then makes the
GetItem calls with a 3 s deadline, as a client of a watch API does;
`call --watch-cancel-after S` opens it and cancels it after S seconds
whatever came (before any response when the server's --watch-delay is
longer), then makes the same calls.
The client sends `--calls` GetItem calls with ids 1..N on one channel,
with metadata x-lane: LANE on every K-th call (all when K is 1); with
`--parallel P` in batches of P concurrent calls, each batch after the
previous one ended; each call with a deadline of `--deadline` seconds
(default 5, 3 after a watch). The server can wait `--delay` seconds in
each call (only in those of `--delay-ids` when given)
(`--watch-delay` seconds before a Watch's first item, its response
fields going with that item; `--watch-error`: a Watch is answered at once
with INTERNAL "watch broken", a broken build) and
write the most calls it had in progress at once to `--concurrency-log`.
Batch (bidirectional streaming, a generic handler too) answers each
request message of its stream with the item; `call --batch N` sends ids
1..N in one Batch call before the GetItem calls.
`--gzip` (both sides) turns on gRPC's gzip message compression;
`--name-repeat N` makes each item's name N copies of "item-ID" so that
the answers are worth compressing (grpcio sends a message uncompressed,
flag 0, when compressing would not make it smaller).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = os.path.dirname(os.path.abspath(__file__))

CHANGES = {
    "price": lambda i: i % 5 == 3,
    "tag_weight": lambda i: i % 7 == 2,
    "status": lambda i: i == 11,
}


def load_messages(pb):
    if pb is None:
        fd, pb = tempfile.mkstemp(suffix=".pb")
        os.close(fd)
        subprocess.run(["protoc", "-I", HERE, "-o", pb, "--include_imports",
                        os.path.join(HERE, "shop.proto")], check=True)
    fds = descriptor_pb2.FileDescriptorSet()
    with open(pb, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fdp in fds.file:
        pool.Add(fdp)
    get = message_factory.MessageFactory(pool).GetPrototype
    return (get(pool.FindMessageTypeByName("shop.ItemRequest")),
            get(pool.FindMessageTypeByName("shop.Item")))


def serve(args):
    Req, Item = load_messages(args.pb)
    cand = args.variant == "candidate"
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def get_item(req, ctx):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            if args.concurrency_log:
                with open(args.concurrency_log, "w") as f:
                    f.write("%d\n" % state["max"])
        try:
            if args.delay and (not args.delay_ids or req.id in args.delay_ids):
                time.sleep(args.delay)
            return answer(req, ctx)
        finally:
            with lock:
                state["now"] -= 1

    def answer(req, ctx):
        i = req.id
        if cand and CHANGES["status"](i):
            ctx.abort(grpc.StatusCode.NOT_FOUND, "item retired")
        it = Item(id=i, name=" ".join(["item-%d" % i] * args.name_repeat), price=10.0 + i,
                  served_at_ms=int(time.time() * 1000), in_stock=i % 2 == 0)
        it.tags.add(name="new", weight=3)
        w = 9 if cand and CHANGES["tag_weight"](i) else 1
        it.tags.add(name="sale", weight=w)
        if cand and CHANGES["price"](i):
            it.price += 1.0
        return it

    def watch(req, ctx):
        if args.watch_error:
            ctx.abort(grpc.StatusCode.INTERNAL, "watch broken")
        if args.watch_delay:
            time.sleep(args.watch_delay)
        while ctx.is_active():
            yield answer(req, ctx)
            time.sleep(0.05)

    def batch(reqs, ctx):
        for req in reqs:
            yield answer(req, ctx)

    handler = grpc.method_handlers_generic_handler("shop.Shop", {
        "GetItem": grpc.unary_unary_rpc_method_handler(
            get_item, request_deserializer=Req.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "Watch": grpc.unary_stream_rpc_method_handler(
            watch, request_deserializer=Req.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "Batch": grpc.stream_stream_rpc_method_handler(
            batch, request_deserializer=Req.FromString,
            response_serializer=lambda m: m.SerializeToString()),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         compression=grpc.Compression.Gzip if args.gzip else None)
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port("127.0.0.1:%d" % args.port) == 0:
        print("cannot listen on port %d" % args.port, file=sys.stderr)
        return 2
    server.start()
    print("ready", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    return 0


def call(args):
    Req, Item = load_messages(args.pb)
    ok = bad = 0
    watching = args.watch or args.watch_cancel_after
    with grpc.insecure_channel("127.0.0.1:%d" % args.port,
                               compression=grpc.Compression.Gzip if args.gzip else None) as ch:
        rpc = ch.unary_unary("/shop.Shop/GetItem",
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=Item.FromString)
        if args.watch:
            stream = ch.unary_stream("/shop.Shop/Watch",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=Item.FromString)(Req(id=100))
            for n, _ in enumerate(stream, 1):
                if n == 2:
                    break
            stream.cancel()
            print("watch cancelled after 2 items")
        if args.watch_cancel_after:
            stream = ch.unary_stream("/shop.Shop/Watch",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=Item.FromString)(Req(id=100))
            time.sleep(args.watch_cancel_after)
            stream.cancel()
            print("watch cancelled after %.3f s" % args.watch_cancel_after)
        if args.batch:
            stream = ch.stream_stream("/shop.Shop/Batch",
                                      request_serializer=lambda m: m.SerializeToString(),
                                      response_deserializer=Item.FromString)
            got = list(stream(iter([Req(id=i) for i in range(1, args.batch + 1)]), timeout=5))
            print("batch of %d: %d items" % (args.batch, len(got)))
        for first in range(1, args.calls + 1, args.parallel):
            calls = []
            for i in range(first, min(first + args.parallel, args.calls + 1)):
                md = []
                if args.lane and (i - 1) % args.every == 0:
                    md.append(("x-lane", args.lane))
                calls.append(rpc.future(Req(id=i, lane=args.lane or ""), metadata=md,
                                        timeout=args.deadline or (3 if watching else 5)))
            for c in calls:
                try:
                    c.result()
                    ok += 1
                except grpc.RpcError:
                    bad += 1
            if args.pause:
                time.sleep(args.pause)
    print("ok %d errors %d" % (ok, bad))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("--variant", choices=["baseline", "candidate"], default="baseline")
    s.add_argument("--pb")
    s.add_argument("--delay", type=float, default=0.0)
    s.add_argument("--delay-ids", type=lambda v: {int(x) for x in v.split(",")}, default=set())
    s.add_argument("--watch-delay", type=float, default=0.0)
    s.add_argument("--watch-error", action="store_true")
    s.add_argument("--concurrency-log")
    s.add_argument("--gzip", action="store_true")
    s.add_argument("--name-repeat", type=int, default=1)
    c = sub.add_parser("call")
    c.add_argument("port", type=int)
    c.add_argument("--calls", type=int, default=20)
    c.add_argument("--lane")
    c.add_argument("--every", type=int, default=1)
    c.add_argument("--pause", type=float, default=0.0)
    c.add_argument("--parallel", type=int, default=1)
    c.add_argument("--pb")
    c.add_argument("--watch", action="store_true")
    c.add_argument("--watch-cancel-after", type=float, default=0.0)
    c.add_argument("--gzip", action="store_true")
    c.add_argument("--batch", type=int, default=0)
    c.add_argument("--deadline", type=float, default=0.0)
    a = ap.parse_args()
    return serve(a) if a.cmd == "serve" else call(a)


if __name__ == "__main__":
    sys.exit(main())
