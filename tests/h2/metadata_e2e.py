#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gRPC custom metadata end to end: binary ("-bin") metadata and trailing
metadata, recorded live from python3-grpcio peers, replayed and diffed.

python3-grpcio's client and server both send SETTINGS 0xfe03
(GRPC_ALLOW_TRUE_BINARY_METADATA), so between them a "-bin" value goes
as a NUL byte and the raw bytes, not base64 (PROTOCOL-HTTP2.md
"Binary-Header"). `dyetap record -i lo` (root) records such calls; the
replay (whose client sends no 0xfe03) must send them with the value base64
encoded - not skip them as unsafe for the NUL -, so the server gets the
same bytes; the target answers with base64 "-bin" values, which diff
compares with the recorded raw ones by their bytes: the same build finds
no difference. The candidate changes trailing metadata (`x-trail`,
`x-trail-bin`, in the trailers) and a binary initial metadata value:
each is a difference. An error answer that is Trailers-Only on one build
(its trailing metadata in its one header block) and not on the other,
with the same metadata, is no difference.

  metadata_e2e.py DYETAP
  metadata_e2e.py serve PORT baseline|candidate LOG   (the service)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
PY = "/usr/bin/python3"


def serve(port, variant, log):
    from concurrent import futures

    import grpc
    cand = variant == "candidate"

    def call(req, ctx):
        md = dict(ctx.invocation_metadata())
        with open(log, "a") as f:
            f.write("%s\n" % md.get("x-req-bin", b"").hex())
        ctx.send_initial_metadata((("x-init", "v"),
                                   ("x-init-bin", b"\x00\x01" + (b"\xff" if cand else b"\xfe"))))
        ctx.set_trailing_metadata((("x-trail", "c" if cand else "b"),
                                   ("x-trail-bin", b"\x00" + (b"\x02" if cand else b"\x03"))))
        return b"\x08\x01"

    def fail(req, ctx):
        # the same status and metadata; the baseline sends its headers
        # first, the candidate answers Trailers-Only
        if not cand:
            ctx.send_initial_metadata(())
        ctx.set_trailing_metadata((("x-why", "gone"), ("x-why-bin", b"\x00\x07")))
        ctx.abort(grpc.StatusCode.NOT_FOUND, "gone")

    ident = lambda b: b  # noqa: E731
    h = grpc.method_handlers_generic_handler("meta.M", {
        "Call": grpc.unary_unary_rpc_method_handler(call, ident, ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, ident, ident),
    })
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers((h,))
    s.add_insecure_port("127.0.0.1:%d" % port)
    s.start()
    print("ready", flush=True)
    s.wait_for_termination()


def client(port):
    import grpc
    ident = lambda b: b  # noqa: E731
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        c = ch.unary_unary("/meta.M/Call", ident, ident)
        for i in range(3):
            c(b"\x08\x01", metadata=(("x-req-bin", b"\x00\x01\x02" + bytes([i])),), timeout=5)
        f = ch.unary_unary("/meta.M/Fail", ident, ident)
        try:
            f(b"", timeout=5)
        except grpc.RpcError:
            pass


def main():
    from tap_util import finish, free_port, ok, stop_all
    dyetap = sys.argv[1]
    if os.geteuid() != 0:
        print("1..0 # SKIP live capture needs root")
        return 0
    if not os.access(PY, os.X_OK) or subprocess.run(
            [PY, "-c", "import grpc"], capture_output=True).returncode != 0:
        print("1..0 # SKIP /usr/bin/python3 has no grpc (python3-grpcio, tests/setup.sh)")
        return 0
    tmp = tempfile.mkdtemp(prefix="h2-meta-")
    procs = []

    def start(port, variant):
        log = os.path.join(tmp, "srv-%d.log" % port)
        out = open(os.path.join(tmp, "srv-%d.out" % port), "w")
        p = subprocess.Popen([PY, __file__, "serve", str(port), variant, log], stdout=out,
                             stderr=subprocess.STDOUT)
        procs.append(p)
        for _ in range(100):
            time.sleep(0.1)
            if "ready" in open(out.name).read():
                break
        return log

    def read(path):
        return open(path).read() if os.path.exists(path) else ""

    def dy(*args):
        return subprocess.run([dyetap] + list(args), capture_output=True, text=True)

    def diff(res):
        r = dy("diff", res, "--json", "-", "--quiet")
        return {(d["location"], d["kind"]): d for d in json.loads(r.stdout)["differences"]
                if not d["noise"]}

    try:
        prod, base, cand = free_port(), free_port(), free_port()
        prod_log = start(prod, "baseline")
        base_log = start(base, "baseline")
        start(cand, "candidate")
        rec = os.path.join(tmp, "rec.dyt")
        err = open(os.path.join(tmp, "rec.err"), "w+")
        r = subprocess.Popen([dyetap, "record", "-i", "lo", "tcp port %d" % prod, "-w", rec],
                             stdout=subprocess.DEVNULL, stderr=err)
        procs.append(r)
        for _ in range(100):
            time.sleep(0.1)
            if "capturing on lo" in open(err.name).read():
                break
        subprocess.run([PY, __file__, "client", str(prod)], check=True)
        time.sleep(0.5)
        r.send_signal(2)
        r.wait(timeout=10)
        sess = [json.loads(x) for x in dy("cat", "--json", rec).stdout.splitlines()]
        raw = [dict(s["request"]["headers"]).get("x-req-bin", "") for s in sess]
        ok(len(sess) == 4 and sum(v.startswith("\u0000") for v in raw) == 3,
           "record: 4 calls, x-req-bin in true binary form (NUL first: SETTINGS 0xfe03)", raw)
        sent_prod = read(prod_log).split()

        res = os.path.join(tmp, "same.dyt")
        r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % base, "-o", res,
               "--allow-writes")
        ok(r.returncode == 0 and "unsafe 0" in r.stdout and " ok 4 " in r.stdout,
           "replay: the calls with binary metadata are sent, none skipped as unsafe",
           r.stdout + r.stderr[-600:])
        got = read(base_log).split()
        ok(got == sent_prod and len(got) == 3,
           "replay: the server gets the recorded x-req-bin bytes", (sent_prod, got))
        d = diff(res)
        ok(not d, "diff, same build: recorded raw -bin values equal the replay's base64 ones; "
           "Trailers-Only or not, the same trailing metadata is equal", list(d))

        res = os.path.join(tmp, "cand.dyt")
        r = dy("replay", rec, "--target", "http://127.0.0.1:%d" % cand, "-o", res,
               "--allow-writes")
        d = diff(res)
        want = {("header:x-trail", "value_changed"): ("b", "c"),
                ("header:x-trail-bin", "value_changed"): ("AAM=", "AAI="),
                ("header:x-init-bin", "value_changed"): ("AAH+", "AAH/")}
        for k, (pv, cv) in want.items():
            ex = d.get(k, {}).get("examples", [{}])[0]
            ok(d.get(k, {}).get("count") == 3 and ex.get("primary_value") == pv and
               ex.get("candidate_value") == cv,
               "diff, candidate: %s %s -> %s in 3 calls" % (k[0], pv, cv), d.get(k))
        ok(set(d) == set(want), "diff, candidate: nothing else", list(d))
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        client(int(sys.argv[2]))
    else:
        sys.exit(main())
