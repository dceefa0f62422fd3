#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of dyetap-fastpath without a NIC (docs/dpdk.md).

Each case runs the real program on net_pcap virtual devices fed by the
deterministic capture of gen_flows.py, with no hugepages, and checks what
comes out against the lanes gen_flows.py assigned by construction:
packets are compared byte for byte (timestamps ignored; tx_pcap stamps
wall-clock time), VLAN and VXLAN output is decoded and its inner frame
compared. Output is TAP.

Usage: test_fastpath.py EXE GEN CASE
  CASE: copy dup vlan vxlan multi workers ring ring-uncolored count cli telemetry parity
        shadow shadow-down shadow-ring shadow-writes shadow-tls (these read DEMO_PCAP,
        tests/demo/demo.pcap) parity-users (tests/dpdk/users-keepalive)
        loss (reads LOSS_PCAP, tests/capture/loss/wrk-nginx-4k.pcap.xz)
        capture-counters ring-uncolored parity-h2 (tests/h2/fixtures)
"""
import json
import os
import re
import socket
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter

EAL = ["--no-huge", "-m", "256", "--no-pci", "--no-telemetry", "--no-shconf",
       "--log-level=*:warning"]
# A hang guard per run, not a speed check: tests/tsan.sh scales it with
# DYETAP_TEST_TIME_SCALE, as meson's --timeout-multiplier scales the test's.
TIMEOUT = int(20 * float(os.environ.get("DYETAP_TEST_TIME_SCALE", "1")))

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, free_port, ok  # noqa: E402


def read_pcap(path):
    """[(ts_sec, ts_usec, bytes)] of a classic little-endian pcap."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic in (0xa1b2c3d4, 0xa1b23c4d), "unexpected pcap magic %x" % magic
    off, out = 24, []
    while off + 16 <= len(data):
        s, us, cap, _ = struct.unpack("<IIII", data[off:off + 16])
        out.append((s, us, data[off + 16:off + 16 + cap]))
        off += 16 + cap
    return out


def run(exe, eal, app, cwd):
    # A slow build (ThreadSanitizer, tests/tsan.sh) on a busy machine may
    # pause an lcore longer than the usual --exit-idle: it can ask for more.
    idle = os.environ.get("DYETAP_TEST_EXIT_IDLE_MS")
    if idle:
        app = [idle if i and app[i - 1] == "--exit-idle" else a for i, a in enumerate(app)]
    cmd = [exe] + EAL + eal + ["--"] + app
    env = dict(os.environ)
    # Sanitizer builds: any report fails the run (exit code), not just a line on stderr.
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    env.setdefault("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1")
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT, universal_newlines=True)
    return p


def rules_args(exp):
    a = []
    for r in exp["rules"]:
        a += ["--color", r]
    return a


def counters(p):
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def check_counters(c, exp, frames, mirrored=True):
    want = [m for m in exp["packets"] if m["lane"]]
    lanes = Counter(m["lane"] for m in want)
    ok(c is not None, "final counters printed as JSON")
    if c is None:
        return
    ok(c["rx"] == len(frames), "rx counts every packet (%d)" % len(frames), c)
    ok(c["colored"] == len(want), "colored = packets of colored flows (%d)" % len(want), c)
    ok(c["colored"] + c["uncolored"] + c["hold_overflow"] == c["rx"],
       "every packet is colored, uncolored or counted as dropped", c)
    got = {k: v for k, v in c["lanes"].items() if v}
    ok(dict(lanes) == got and "beta" in got, "per-lane counts", "%s vs %s" % (dict(lanes), got))
    ok(c["not_ip"] == 3, "ARP frames counted as not_ip", c)
    ok(c["undecided"] == 1, "the flow whose header block exceeds the prefix cap is undecided", c)
    if mirrored:
        ok(c["mirrored"] == len(want) and c["tx_full"] == 0 and c["nombuf"] == 0,
           "every colored packet mirrored, no TX drop", c)


def check_order(out_frames, index, name):
    """Packets of one flow leave in the order they came in."""
    last = {}
    good = True
    for fr in out_frames:
        i = index.get(fr)
        if i is None:
            continue
        flow = i[1]
        if last.get(flow, -1) > i[0]:
            good = False
        last[flow] = i[0]
    ok(good, name + ": per-flow order kept")


def golden(exe, d, exp, frames, mode, name):
    out = os.path.join(d, "out_%s.pcap" % name)
    app = ["--rx", "0", "--mirror-tx", "0", "--exit-idle", "400", "--json"] + rules_args(exp)
    if mode:
        app += ["--mirror-mode", mode]
    p = run(exe, ["-l", "0,1", "--vdev", "net_pcap0,rx_pcap=in.pcap,tx_pcap=%s" % out], app, d)
    ok(p.returncode == 0, "%s: exits 0 by itself" % name, p.stderr)
    check_counters(counters(p), exp, frames)
    return [f for _, _, f in read_pcap(out)]


def expected(exp, frames):
    return [f for (_, _, f), m in zip(frames, exp["packets"]) if m["lane"]]


def index_of(exp, frames):
    return {f: (i, m["flow"]) for i, ((_, _, f), m) in enumerate(zip(frames, exp["packets"]))}


def case_copy(exe, d, exp, frames):
    out = golden(exe, d, exp, frames, None, "copy")
    want = expected(exp, frames)
    ok(Counter(out) == Counter(want), "copy: output holds exactly the colored packets",
       "out %d want %d; extra %d missing %d" % (len(out), len(want),
                                                  len(Counter(out) - Counter(want)),
                                                  len(Counter(want) - Counter(out))))
    check_order(out, index_of(exp, frames), "copy")


def case_dup(exe, d, exp, frames):
    out = golden(exe, d, exp, frames, "dup", "dup")
    want = expected(exp, frames)
    ok(Counter(out) == Counter(want), "dup: output holds exactly the colored packets")
    check_order(out, index_of(exp, frames), "dup")


def case_vlan(exe, d, exp, frames):
    out = golden(exe, d, exp, frames, "vlan=7", "vlan")
    want = expected(exp, frames)
    tags = all(f[12:14] == b"\x81\x00" and struct.unpack("!H", f[14:16])[0] & 0xfff == 7
               for f in out)
    ok(tags and len(out) > 0, "vlan: every frame carries an outer 802.1Q tag with id 7")
    inner = [f[:12] + f[16:] for f in out]
    ok(Counter(inner) == Counter(want), "vlan: untagged frames are exactly the colored packets")
    check_order(inner, index_of(exp, frames), "vlan")


def ip_csum(h):
    s = sum(struct.unpack("!10H", h))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s == 0xffff


def case_vxlan(exe, d, exp, frames):
    out = golden(exe, d, exp, frames, "vxlan=192.0.2.1,192.0.2.2,4242", "vxlan")
    want = expected(exp, frames)
    inner, bad, sport_of = [], [], {}
    idx = index_of(exp, frames)
    for f in out:
        ip = f[14:34]
        udp = f[34:42]
        vx = f[42:50]
        sp, dp, ulen, _ = struct.unpack("!HHHH", udp)
        good = (f[0:6] == b"\xff" * 6 and f[12:14] == b"\x08\x00" and ip[0] == 0x45 and
                ip[9] == 17 and ip[12:16] == bytes([192, 0, 2, 1]) and
                ip[16:20] == bytes([192, 0, 2, 2]) and ip_csum(ip) and
                struct.unpack("!H", ip[2:4])[0] == len(f) - 14 and dp == 4789 and
                ulen == len(f) - 34 and sp >= 49152 and vx[0] == 0x08 and
                vx[4:7] == (4242).to_bytes(3, "big") and vx[7] == 0)
        if not good:
            bad.append(f[:50].hex())
        inner.append(f[50:])
        flow = idx.get(f[50:], (0, None))[1]
        sport_of.setdefault(flow, set()).add(sp)
    ok(not bad and len(out) > 0, "vxlan: outer Ethernet/IPv4/UDP 4789/VXLAN VNI 4242 valid",
       "\n".join(bad[:3]))
    ok(all(len(s) == 1 for s in sport_of.values()), "vxlan: one UDP source port per inner flow")
    ok(Counter(inner) == Counter(want), "vxlan: inner frames are exactly the colored packets")
    check_order(inner, idx, "vxlan")


def case_multi(exe, d, exp, frames):
    # Two ports, two RX lcores; the mirror port has one TX queue (file) per lcore.
    eal = ["--lcores", "0@0,1@1,2@0",
           "--vdev", "net_pcap0,rx_pcap=in_a.pcap", "--vdev", "net_pcap1,rx_pcap=in_b.pcap",
           "--vdev", "net_pcap2,tx_pcap=o0.pcap,tx_pcap=o1.pcap"]
    app = ["--rx", "0,1", "--mirror-tx", "2", "--exit-idle", "400", "--json"] + rules_args(exp)
    p = run(exe, eal, app, d)
    ok(p.returncode == 0, "multi: exits 0 by itself", p.stderr)
    check_counters(counters(p), exp, frames)
    o0 = [f for _, _, f in read_pcap(os.path.join(d, "o0.pcap"))]
    o1 = [f for _, _, f in read_pcap(os.path.join(d, "o1.pcap"))]
    want = expected(exp, frames)
    ok(Counter(o0 + o1) == Counter(want), "multi: two RX lcores give the same colored set as one")
    wa = [f for (_, _, f), m in zip(frames, exp["packets"]) if m["lane"] and m["flow"] % 2 == 0]
    ok(Counter(o0) == Counter(wa) and len(o1) > 0,
       "multi: each RX lcore mirrored its own port's colored packets")
    # One port with two RX queues (net_pcap: one file per queue), one RX lcore
    # each; the port is also the mirror, with one TX queue per RX lcore.
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev",
           "net_pcap0,rx_pcap=in_a.pcap,rx_pcap=in_b.pcap,tx_pcap=q0.pcap,tx_pcap=q1.pcap"]
    app = ["--rx", "0", "--queues", "2", "--mirror-tx", "0", "--exit-idle", "400",
           "--json"] + rules_args(exp)
    p = run(exe, eal, app, d)
    ok(p.returncode == 0, "queues: exits 0 by itself", p.stderr)
    check_counters(counters(p), exp, frames)
    q0 = [f for _, _, f in read_pcap(os.path.join(d, "q0.pcap"))]
    q1 = [f for _, _, f in read_pcap(os.path.join(d, "q1.pcap"))]
    ok(Counter(q0 + q1) == Counter(want) and Counter(q0) == Counter(wa),
       "queues: two RX queues on two lcores give the same colored set")


def case_workers(exe, d, exp, frames):
    eal = ["--lcores", "0@0,1@1,2@0,3@1", "--vdev",
           "net_pcap0,rx_pcap=in.pcap,tx_pcap=out_w.pcap"]
    app = ["--rx", "0", "--mirror-tx", "0", "--workers", "2", "-w", "rec.pcap",
           "--exit-idle", "400", "--json"] + rules_args(exp)
    p = run(exe, eal, app, d)
    ok(p.returncode == 0, "workers: exits 0 by itself", p.stderr)
    c = counters(p)
    check_counters(c, exp, frames)
    want = expected(exp, frames)
    if c:
        ok(c["handed_off"] == len(want) and c["worker_written"] == len(want) and
           c["ring_full"] == 0, "workers: every colored packet handed off and recorded", c)
    r0 = read_pcap(os.path.join(d, "rec.pcap"))
    r1 = read_pcap(os.path.join(d, "rec.pcap.1"))
    rec = [f for _, _, f in r0 + r1]
    ok(Counter(rec) == Counter(want), "workers: recordings hold exactly the colored packets")
    ts = {f: (s, us) for s, us, f in frames}
    ok(all(ts.get(f) == (s, us) for s, us, f in r0 + r1),
       "workers: recorded packets keep their capture timestamps")
    idx = index_of(exp, frames)
    f0 = {idx[f][1] for _, _, f in r0}
    f1 = {idx[f][1] for _, _, f in r1}
    ok(not (f0 & f1) and f0 and f1, "workers: each flow goes to one worker, both workers used")
    check_order([f for _, _, f in r0], idx, "worker 0")
    out = [f for _, _, f in read_pcap(os.path.join(d, "out_w.pcap"))]
    ok(Counter(out) == Counter(want), "workers: mirror output unchanged by the hand-off")


def case_ring(exe, d, exp, frames):
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=in.pcap,tx_pcap=out_r.pcap"]
    app = ["--rx", "0", "--mirror-tx", "0", "--workers", "1", "--ring-size", "8", "-w",
           "rec_r.pcap", "--exit-idle", "400", "--json"] + rules_args(exp)
    p = run(exe, eal, app, d)
    ok(p.returncode == 0, "ring: exits 0 by itself with a tiny ring", p.stderr)
    c = counters(p)
    want = expected(exp, frames)
    if not ok(c is not None, "ring: counters printed"):
        return
    ok(c["ring_full"] > 0, "ring: drops on the full ring are counted (%d)" % c["ring_full"], c)
    ok(c["handed_off"] + c["ring_full"] == len(want), "ring: handed_off + ring_full = colored", c)
    ok(c["worker_pkts"] == c["handed_off"] and c["worker_written"] == c["handed_off"],
       "ring: the worker got every enqueued packet", c)
    ok(c["mirrored"] == len(want), "ring: mirroring is not affected by the slow recorder", c)
    rec = read_pcap(os.path.join(d, "rec_r.pcap"))
    ok(len(rec) == c["handed_off"], "ring: recording has the handed-off packets")


def case_ring_uncolored(exe, d, exp, frames):
    # Per-request coloring hands the packets of uncolored flows to the
    # workers too: a full ring drops them as it drops colored ones, and
    # handed_off_uncolored counts only those the ring took (docs/dpdk.md
    # "Counters"). h2c flows with a header rule: the RX lcores cannot read
    # HPACK, so every packet goes to the worker uncolored.
    pcap = h2_merged(d)
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % pcap]
    app = ["--rx", "0", "--workers", "1", "--ring-size", "8", "--exit-idle", "400", "--json",
           "--color", "blue=header:x-lane=blue"]
    p = run(exe, eal, app + ["-w", "all.dyt"], d)
    c = counters(p) or {}
    n = len(read_pcap(pcap))
    ok(p.returncode == 0 and c.get("ring_full", 0) > 0,
       "ring-uncolored: a ring of 8 drops (%d)" % c.get("ring_full", 0), (p.stderr[-300:], c))
    ok(c.get("rx") == c.get("uncolored") == n and c.get("colored") == 0,
       "ring-uncolored: all %d packets uncolored" % n, c)
    ok(c.get("handed_off_uncolored") == c.get("handed_off") == c.get("worker_pkts") and
       c.get("handed_off", 0) + c.get("ring_full", 0) == c.get("uncolored"),
       "ring-uncolored: handed_off_uncolored = handed_off = worker_pkts, "
       "+ ring_full = uncolored", c)
    # Colored and uncolored flows in the same batches: the gRPC connection
    # by port (decided at once), the others per request. -w FILE.pcap keeps
    # the packets of colored flows only, so it holds handed_off minus
    # handed_off_uncolored packets (the dead lane makes the pipelines run).
    grpc = read_pcap(h2_fixture("grpc"))[0][2]
    port = struct.unpack("!H", grpc[14 + (grpc[14] & 15) * 4 + 2:][:2])[0]
    p = run(exe, eal, app[:-2] + ["--color", "g=dport:%d" % port] + app[-2:] +
            ["-w", "mix.pcap", "--lane", "blue=http://127.0.0.1:%d" % dead_port(),
             "--drain-timeout", "1s"], d)
    c = counters(p) or {}
    rec = read_pcap(os.path.join(d, "mix.pcap")) if p.returncode == 0 else []
    ok(p.returncode == 0 and c.get("colored", 0) > 0 and c.get("ring_full", 0) > 0 and
       c.get("colored", 0) + c.get("uncolored", 0) == n ==
       c.get("handed_off", 0) + c.get("ring_full", 0),
       "ring-uncolored: mixed: colored + uncolored = handed_off + ring_full = rx",
       (p.stderr[-300:], c))
    ok(c.get("handed_off_uncolored", n) <= c.get("handed_off", 0) and
       c.get("handed_off", 0) - c.get("handed_off_uncolored", 0) == len(rec),
       "ring-uncolored: mixed: handed_off - handed_off_uncolored = the %d colored packets "
       "recorded" % len(rec), c)


def case_count(exe, d, exp, frames):
    eal = ["-l", "0,1", "--vdev", "net_pcap0,rx_pcap=in.pcap,infinite_rx=1"]
    app = ["--rx", "0", "--count", "5000", "--json"] + rules_args(exp)
    p = run(exe, eal, app, d)
    ok(p.returncode == 0, "count: stops by itself on an endless source", p.stderr)
    c = counters(p)
    ok(c is not None and c["rx"] >= 5000 and c["colored"] > 0 and c["mirrored"] == 0,
       "count: at least --count packets received, colored, nothing mirrored", c)
    ok(c is not None and c["flows"] == 63, "count: a flow seen again is looked up, not re-added",
       c)
    # Same capture, one lcore doing RX and control: the single-lcore mode.
    p = run(exe, ["-l", "0", "--vdev", "net_pcap0,rx_pcap=in.pcap"],
            ["--rx", "0", "--exit-idle", "300", "--json"] + rules_args(exp), d)
    ok(p.returncode == 0, "count: single lcore (RX on the main lcore) exits by itself", p.stderr)
    check_counters(counters(p), exp, frames, mirrored=False)


def case_cli(exe, d, exp, frames):
    p = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, universal_newlines=True,
                       timeout=TIMEOUT)
    ok(p.returncode == 0 and "--mirror-mode" in p.stdout and "--rx" in p.stdout,
       "--help describes the options")
    vd = ["-l", "0", "--vdev", "net_pcap0,rx_pcap=in.pcap"]
    p = run(exe, vd, ["--color", "blue=header:x-lane=blue"], d)
    ok(p.returncode == 2 and "--rx" in p.stderr, "missing --rx is an error naming it", p.stderr)
    p = run(exe, vd, ["--rx", "0", "--color", "blue=bogus:1"], d)
    ok(p.returncode == 2 and "bogus:1" in p.stderr, "a bad matcher is named", p.stderr)
    p = run(exe, vd, ["--rx", "0", "--mirror-mode", "vxlan=1.2.3.4", "--color", "a=port:80"], d)
    ok(p.returncode == 2 and "mirror-mode" in p.stderr, "a bad --mirror-mode is refused",
       p.stderr)
    p = run(exe, vd, ["--rx", "5", "--color", "a=port:80", "--exit-idle", "100"], d)
    ok(p.returncode == 1 and "no port 5" in p.stderr, "an unknown port is reported", p.stderr)
    p = run(exe, vd, ["--rx", "0", "--workers", "1", "--color", "a=port:80"], d)
    ok(p.returncode == 1 and "lcores" in p.stderr, "workers without lcores is reported", p.stderr)
    # L4-only rule set: decided at the first packet, nothing held.
    p = run(exe, ["-l", "0,1", "--vdev", "net_pcap0,rx_pcap=in.pcap,tx_pcap=o_l4.pcap"],
            ["--rx", "0", "--mirror-tx", "0", "--color", "corp=src:192.168.7.0/24",
             "--color", "v6=dst:2001:db8:1::/48", "--exit-idle", "300", "--json"], d)
    c = counters(p)
    want = [f for (_, _, f), m in zip(frames, exp["packets"]) if m["flow"] >= 0 and
            (m["flow"] % 10 in (4, 7))]
    out = [f for _, _, f in read_pcap(os.path.join(d, "o_l4.pcap"))]
    ok(c is not None and Counter(out) == Counter(want) and c["undecided"] == 0,
       "L3/L4 rules (IPv4 and IPv6 CIDR) mirror whole flows, none undecided", c)


def case_telemetry(exe, d, exp, frames):
    import signal
    import socket
    import time
    prefix = "fptel%d" % os.getpid()
    eal = [a for a in EAL if a not in ("--no-telemetry", "--no-shconf")]
    cmd = [exe] + eal + ["--file-prefix", prefix, "--lcores", "0@0,1@1,2@0", "--vdev",
                         "net_pcap0,rx_pcap=in.pcap,infinite_rx=1", "--", "--rx", "0",
                         "--mbufs", "2000", "--json", "--lane",
                         "blue=http://127.0.0.1:%d" % dead_port(), "--drain-timeout", "0"
                         ] + rules_args(exp)
    rundirs = [os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), "dpdk", prefix),
               os.path.join("/var/run/dpdk", prefix)]
    p = subprocess.Popen(cmd, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    reply = None
    try:
        deadline = time.time() + 10
        while reply is None and time.time() < deadline and p.poll() is None:
            time.sleep(0.2)
            for rd in rundirs:
                path = os.path.join(rd, "dpdk_telemetry.v2")
                if not os.path.exists(path):
                    continue
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                    s.connect(path)
                    s.recv(16384)  # greeting
                    s.send(b"/dyetap/stats")
                    reply = json.loads(s.recv(65536).decode())
                    s.close()
                    got = reply.get("/dyetap/stats", {})
                    if got.get("rx", 0) == 0 or got.get("pipe_packets", 0) == 0:
                        # not receiving yet, or the workers' counters not
                        # published yet (about every ms): ask again
                        reply = None
                except (OSError, ValueError):
                    reply = None
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=TIMEOUT)
        for rd in rundirs:
            shutil.rmtree(rd, ignore_errors=True)
    st = reply.get("/dyetap/stats") if reply else None
    ok(st is not None and st.get("rx", 0) > 0 and "blue" in st.get("lanes", {}),
       "telemetry: /dyetap/stats serves the counters while running", reply)
    ok(st is not None and "blue_colored" in st.get("shadow", {}) and
       "blue_dropped_target_down" in st.get("shadow", {}),
       "telemetry: and the shadow counters per lane", st and st.get("shadow"))
    ok(st is not None and st.get("pipe_packets", 0) > 0 and "reasm_gaps" in st and
       "h2_gaps" in st, "telemetry: and the workers' capture counters",
       st and {k: v for k, v in st.items() if k.startswith(("pipe_", "reasm_g"))})
    ok(p.returncode == 0, "telemetry: SIGINT stops it cleanly", err)
    last = None
    for line in out.splitlines():
        if line.startswith("{"):
            last = json.loads(line)
    ok(last is not None and st is not None and last["rx"] >= st["rx"] and
       last["colored"] >= st["colored"], "telemetry: final counters are at least the live ones")


def sessions(dyetap, paths, d):
    """Sessions of .dyt files as JSON objects minus the per-file numbering."""
    out = []
    for path in paths:
        p = subprocess.run([dyetap, "cat", "--json", path], cwd=d, stdout=subprocess.PIPE,
                           universal_newlines=True, timeout=TIMEOUT)
        for line in p.stdout.splitlines():
            o = json.loads(line)
            o.pop("id", None)
            o.pop("conn_id", None)
            out.append(json.dumps(o, sort_keys=True))
    return Counter(out)


def case_parity(exe, d, exp, frames):
    # Same capture and rules through `dyetap record` and through the fast
    # path's workers: the colored sessions must be the same.
    dyetap = os.path.abspath(os.environ["DYETAP"])
    subprocess.run([sys.executable, os.environ["GEN"], d], check=True)  # no 5 KiB header flow
    with open(os.path.join(d, "expect.json")) as f:
        exp = json.load(f)
    p = subprocess.run([dyetap, "record", "-r", "in.pcap", "-w", "rec.dyt", "--uncolored",
                        "drop"] + rules_args(exp), cwd=d, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
    ok(p.returncode == 0, "parity: dyetap record ran", p.stderr)
    want = sessions(dyetap, ["rec.dyt"], d)
    nflows = len([1 for v in exp["flows"].values() if v])
    ok(sum(want.values()) == nflows, "parity: record stored one session per colored flow (%d)"
       % nflows)

    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=in.pcap"]
    p = run(exe, eal, ["--rx", "0", "--workers", "1", "-w", "fp.dyt", "--uncolored", "drop",
                       "--exit-idle", "400", "--json"] + rules_args(exp), d)
    ok(p.returncode == 0, "parity: fast path with one worker exits 0", p.stderr)
    c = counters(p)
    ok(c is not None and c.get("sessions") == nflows, "parity: fast path reports the sessions", c)
    got = sessions(dyetap, ["fp.dyt"], d)
    ok(got == want, "parity: the fast path's sessions equal dyetap record's",
       "only fast path: %s\nonly record: %s" % (list(got - want)[:1], list(want - got)[:1]))

    # Two ports on two RX lcores, two workers: the same sessions again.
    eal = ["--lcores", "0@0,1@1,2@0,3@1,4@0", "--vdev", "net_pcap0,rx_pcap=in_a.pcap",
           "--vdev", "net_pcap1,rx_pcap=in_b.pcap"]
    p = run(exe, eal, ["--rx", "0,1", "--workers", "2", "-w", "fp2.dyt", "--uncolored",
                       "drop", "--exit-idle", "400", "--json"] + rules_args(exp), d)
    ok(p.returncode == 0, "parity: two RX lcores and two workers exit 0", p.stderr)
    got = sessions(dyetap, ["fp2.dyt", "fp2.dyt.1"], d)
    ok(got == want, "parity: two RX lcores and two workers give the same sessions",
       "only fast path: %s\nonly record: %s" % (list(got - want)[:1], list(want - got)[:1]))
    p = subprocess.run([dyetap, "info", "fp.dyt"], cwd=d, stdout=subprocess.PIPE,
                       universal_newlines=True, timeout=TIMEOUT)
    ok(p.returncode == 0 and "fp_colored" in p.stdout,
       "parity: the store trailer carries the fast path's counters", p.stdout[-400:])


def case_loss(exe, d, exp, frames):
    # Pairing after capture loss (docs/capture.md "Pairing after loss") runs
    # in the fast path's workers too: the real keep-alive capture with 20
    # payload packets removed (seeded) gives the same sessions through the
    # workers as through `dyetap record`, 20 of them flagged, and every
    # unflagged one is the full capture's.
    import lzma
    import random
    dyetap = os.path.abspath(os.environ["DYETAP"])
    if not shutil.which("editcap"):
        ok(True, "loss: # SKIP editcap not installed")
        return
    with lzma.open(os.environ["LOSS_PCAP"]) as src, open(os.path.join(d, "full.pcap"),
                                                         "wb") as dst:
        shutil.copyfileobj(src, dst)
    payload = [i + 1 for i, (_, _, b) in enumerate(read_pcap(os.path.join(d, "full.pcap")))
               if tcp_payload_len(b) > 0]
    drop = sorted(random.Random(1).sample(payload, 20))
    subprocess.run(["editcap", "-F", "pcap", "full.pcap", "cut.pcap"] + [str(n) for n in drop],
                   cwd=d, check=True, capture_output=True)
    rules = ["--color", "all=dst:127.0.0.1"]
    for name in ("full", "cut"):
        p = subprocess.run([dyetap, "record", "-r", name + ".pcap", "-w", name + ".dyt"] + rules,
                           cwd=d, capture_output=True, universal_newlines=True, timeout=TIMEOUT)
        ok(p.returncode == 0, "loss: dyetap record of the %s capture" % name, p.stderr)
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=cut.pcap"]
    # Rings and mbufs for the whole capture: net_pcap reads faster than a
    # sanitizer build's worker parses, and a full ring drops (counted).
    p = run(exe, eal, ["--rx", "0", "--workers", "1", "-w", "fp.dyt", "--exit-idle", "400",
                       "--ring-size", "16384", "--mbufs", "16384", "--json"] + rules, d)
    ok(p.returncode == 0, "loss: fast path with one worker exits 0", p.stderr)
    c = counters(p) or {}
    ok(not any(v for k, v in c.items() if "drop" in k and isinstance(v, int)),
       "loss: the fast path dropped nothing", {k: v for k, v in c.items() if "drop" in k})
    want = sessions(dyetap, ["cut.dyt"], d)
    got = sessions(dyetap, ["fp.dyt"], d)
    ok(got == want and sum(got.values()) > 3900,
       "loss: the workers' %d sessions equal dyetap record's" % sum(got.values()),
       "only fast path: %s\nonly record: %s" % (list(got - want)[:1], list(want - got)[:1]))
    flagged = [json.loads(k) for k, n in got.items() for _ in range(n) if json.loads(k)["flags"]]
    ok(0 < len(flagged) <= 40, "loss: %d sessions flagged for 20 lost packets" % len(flagged))
    def no_index(c):  # a transaction lost whole shifts the index in its connection
        out = Counter()
        for k, n in c.items():
            o = json.loads(k)
            o.pop("conn_index")
            out[json.dumps(o, sort_keys=True)] += n
        return out
    full = no_index(sessions(dyetap, ["full.dyt"], d))
    clean = no_index(Counter({k: n for k, n in got.items() if not json.loads(k)["flags"]}))
    ok(not (clean - full), "loss: every unflagged session is the full capture's",
       list(clean - full)[:1])


def tcp_payload_len(frame):
    """TCP payload bytes of an Ethernet + IPv4 frame (0 for anything else)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return 0
    ihl = (frame[14] & 15) * 4
    tot = struct.unpack(">H", frame[16:18])[0]
    doff = (frame[14 + ihl + 12] >> 4) * 4
    return tot - ihl - doff


# --- shadowing (--lane) ------------------------------------------------------

class ShadowServer:
    """A loopback HTTP/1.1 server that logs every request it receives."""

    def __init__(self):
        import http.server
        import threading
        log, lock = [], threading.Lock()
        self.log, self.lock = log, lock

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with lock:
                    log.append({"method": self.command, "target": self.path, "body": len(body),
                                "marker": self.headers.get_all("x-dyetap-shadow"),
                                "peer": self.client_address[1]})
                body = b"shadow ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _any

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.th = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.th.start()

    def requests(self):
        with self.lock:
            return list(self.log)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def dead_port():
    """A loopback port nothing listens on (bound, then closed)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def demo_pcap():
    return os.environ["DEMO_PCAP"]


def recorded_colored(dyetap, pcap, rules, d, name):
    """{lane: [(conn_id, method, target)]} of the sessions `dyetap record` colors."""
    out = os.path.join(d, name)
    args = []
    for r in rules:
        args += ["--color", r]
    p = subprocess.run([dyetap, "record", "-r", pcap, "-w", out, "--uncolored", "drop"] + args,
                       cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=TIMEOUT)
    ok(p.returncode == 0, "shadow: dyetap record ran on the capture", p.stderr)
    return sessions_by_lane(dyetap, [out], d)


def sessions_by_lane(dyetap, paths, d):
    lanes = {}
    for path in paths:
        p = subprocess.run([dyetap, "cat", "--json", path], cwd=d, stdout=subprocess.PIPE,
                           universal_newlines=True, timeout=TIMEOUT)
        for line in p.stdout.splitlines():
            o = json.loads(line)
            if o.get("lane"):
                lanes.setdefault(o["lane"], []).append(
                    (path, o["conn_id"], o["request"]["method"], o["request"]["target"]))
    return lanes


def seqs_by_conn(items):
    """Counter of per-connection request sequences: [(conn, method, target)] in order."""
    conns = {}
    for conn, m, t in items:
        conns.setdefault(conn, []).append((m, t))
    return Counter(tuple(v) for v in conns.values())


def shadow_lane(c, lane):
    return (c or {}).get("shadow", {}).get("lanes", {}).get(lane, {})


def drops(lc):
    return sum(v for k, v in lc.items() if k.startswith("dropped_"))


def case_shadow(exe, d, exp, frames):
    # The demo shop capture (tests/demo): 6 keep-alive connections, 240
    # requests (GET and HEAD). Clients 53654-53658 are lane blue, 53664-53670
    # lane canary (two targets), 53676 uncolored.
    dyetap = os.path.abspath(os.environ["DYETAP"])
    rules = ["blue=sport:53654-53658", "canary=sport:53664-53670"]
    want = recorded_colored(dyetap, demo_pcap(), rules, d, "rec.dyt")
    wb = [(c, m, t) for _, c, m, t in want.get("blue", [])]
    wc = [(c, m, t) for _, c, m, t in want.get("canary", [])]
    ok(len(wb) > 50 and len(wc) > 50, "shadow: record colors both lanes (%d, %d)"
       % (len(wb), len(wc)))
    a, b1, b2 = ShadowServer(), ShadowServer(), ShadowServer()
    try:
        eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % demo_pcap()]
        app = ["--rx", "0", "--lane", "blue=" + a.url, "--lane",
               "canary=%s,%s" % (b1.url, b2.url), "--shadow-out", "out.dyt", "--exit-idle", "400",
               "--json"]
        for r in rules:
            app += ["--color", r]
        p = run(exe, eal, app, d)
        ok(p.returncode == 0, "shadow: exits 0 by itself", p.stderr)
        c = counters(p)
        ga, gb1, gb2 = a.requests(), b1.requests(), b2.requests()
    finally:
        a.close()
        b1.close()
        b2.close()
    mt = lambda log: Counter((r["method"], r["target"]) for r in log)
    ok(len(ga) == len(wb) and mt(ga) == Counter((m, t) for _, m, t in wb),
       "shadow: lane blue's target got exactly the requests record colors blue (%d)" % len(wb),
       "got %d, want %d; extra %s; missing %s" % (
           len(ga), len(wb), list((mt(ga) - Counter((m, t) for _, m, t in wb)))[:3],
           list((Counter((m, t) for _, m, t in wb) - mt(ga)))[:3]))
    wcc = Counter((m, t) for _, m, t in wc)
    ok(mt(gb1) == wcc and mt(gb2) == wcc and len(gb1) == len(wc),
       "shadow: both targets of lane canary got exactly the canary requests (%d)" % len(wc),
       "got %d and %d, want %d" % (len(gb1), len(gb2), len(wc)))
    ok(all(r["marker"] == ["1"] for r in ga + gb1 + gb2),
       "shadow: every request carries one marker header x-dyetap-shadow: 1")
    got_seq = seqs_by_conn([(r["peer"], r["method"], r["target"]) for r in ga])
    ok(got_seq == seqs_by_conn(wb),
       "shadow: one target connection per captured connection, requests in captured order")
    lb, lcn = shadow_lane(c, "blue"), shadow_lane(c, "canary")
    # Workers see only colored flows: every request they see is colored here.
    ok(c is not None and c["shadow"]["requests"] == len(wb) + len(wc) and
       c["shadow"]["colored"] == len(wb) + len(wc) and c["shadow"]["ring_full"] == 0,
       "shadow: counters: requests seen, colored", c and c.get("shadow"))
    ok(lb.get("colored") == len(wb) and lb.get("mirrored") == len(wb) and
       lb.get("sent") == len(wb) and lb.get("ok") == len(wb) and lb.get("errors") == 0 and
       drops(lb) == 0, "shadow: lane blue counters match what the target got", lb)
    ok(lcn.get("mirrored") == len(wc) and lcn.get("sent") == 2 * len(wc) and
       lcn.get("ok") == 2 * len(wc) and drops(lcn) == 0,
       "shadow: lane canary counts each request once per target", lcn)

    # --shadow-out: each shadowed session with its production response (as
    # `dyetap record` stores it), then one result per target.
    def records(path):
        p = subprocess.run([dyetap, "cat", "--json", path], cwd=d, stdout=subprocess.PIPE,
                           universal_newlines=True, timeout=TIMEOUT)
        ss, rs = [], []
        for line in p.stdout.splitlines():
            o = json.loads(line)
            (rs if "session_id" in o else ss).append(o)
        return ss, rs
    def canon(ss):
        return Counter(json.dumps({k: v for k, v in o.items() if k not in ("id", "conn_id")},
                                  sort_keys=True) for o in ss)
    out_s, out_r = records("out.dyt")
    rec_s, _ = records("rec.dyt")
    ok(len(out_s) == len(wb) + len(wc) and canon(out_s) == canon(rec_s),
       "shadow-out: the sessions equal dyetap record's, production responses included",
       "%d sessions, want %d" % (len(out_s), len(rec_s)))
    ids = {o["id"]: o["lane"] for o in out_s}
    roles = Counter(r["role"] for r in out_r)
    ok(len(ids) == len(out_s) and roles == Counter({"blue": len(wb), "canary": 2 * len(wc)}) and
       all(r["error"] == "none" and r["response"]["status"] == 200 and
           ids.get(r["session_id"]) == r["role"] for r in out_r),
       "shadow-out: one result per target, linked to its session, role = lane", roles)
    sh = (c or {}).get("shadow", {})
    ok(sh.get("out_sessions") == len(out_s) and sh.get("out_results") == len(out_r) and
       sh.get("unpaired") == 0 and sh.get("out_lost") == 0 and sh.get("out_errors") == 0,
       "shadow-out: counters", sh)
    pd = subprocess.run([dyetap, "diff", "out.dyt"], cwd=d, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
    ok(("compared %d responses" % len(out_r)) in pd.stdout,
       "shadow-out: dyetap diff compares every shadow response with production",
       pd.stdout[:300] + pd.stderr[:300])

    # Header rule (decided from the first request), shadowing and -w in one
    # run: the target gets exactly the colored sessions the workers record.
    a = ShadowServer()
    try:
        app = ["--rx", "0", "--color", "blue=header:x-lane=blue", "--lane", "blue=" + a.url,
               "--shadow-header", "x-shadow-run:fp7", "--workers", "1", "-w", "fp.dyt",
               "--uncolored", "drop", "--exit-idle", "400", "--json"]
        p = run(exe, eal, app, d)
        ok(p.returncode == 0, "shadow+record: exits 0", p.stderr)
        c = counters(p)
        ga = a.requests()
    finally:
        a.close()
    rec = [(m, t) for _, _, m, t in sessions_by_lane(dyetap, ["fp.dyt"], d).get("blue", [])]
    ok(len(rec) > 0 and mt(ga) == Counter(rec),
       "shadow+record: the target got exactly the sessions recorded as colored (%d)" % len(rec),
       "got %d, recorded %d" % (len(ga), len(rec)))
    ok(shadow_lane(c, "blue").get("ok") == len(rec), "shadow+record: ok counter", c)
    pi = subprocess.run([dyetap, "info", "fp.dyt"], cwd=d, stdout=subprocess.PIPE,
                        universal_newlines=True, timeout=TIMEOUT)
    ok("fp_shadow_blue_ok" in pi.stdout, "shadow+record: the store trailer has the shadow "
       "counters", pi.stdout[-600:])

    # Option errors.
    vd = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % demo_pcap()]
    p = run(exe, vd, ["--rx", "0", "--color", "blue=port:80", "--lane", "blue=ftp://x"], d)
    ok(p.returncode == 2 and "--lane" in p.stderr, "shadow: a bad --lane URL is refused",
       p.stderr)
    p = run(exe, vd, ["--rx", "0", "--color", "blue=port:80", "--lane-rate", "blue=5/s"], d)
    ok(p.returncode == 2 and "without --lane" in p.stderr,
       "shadow: --lane-rate without --lane is refused", p.stderr)
    p = run(exe, vd, ["--rx", "0", "--color", "blue=port:80", "--shadow-out", "x.dyt"], d)
    ok(p.returncode == 2 and "--shadow-out needs --lane" in p.stderr,
       "shadow: --shadow-out without --lane is refused", p.stderr)


def case_shadow_down(exe, d, exp, frames):
    # The lane's target is down: every attempt is an error or a counted drop,
    # and the run still ends by itself within the drain time.
    import time
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % demo_pcap()]
    app = ["--rx", "0", "--color", "blue=sport:53654-53676", "--lane",
           "blue=http://127.0.0.1:%d" % dead_port(), "--drain-timeout", "3s",
           "--shadow-out", "down.dyt", "--exit-idle", "400", "--json"]
    t0 = time.time()
    p = run(exe, eal, app, d)
    secs = time.time() - t0
    ok(p.returncode == 0 and secs < 15, "shadow-down: exits 0 by itself (%.1f s)" % secs,
       p.stderr)
    c = counters(p)
    lb = shadow_lane(c, "blue")
    ok(lb.get("colored") == 240, "shadow-down: every request colored", lb)
    ok(lb.get("errors", 0) > 0 and lb.get("error_refused", 0) > 0 and lb.get("ok") == 0,
       "shadow-down: refused connections counted as errors", lb)
    ok(lb.get("sent") == lb.get("errors") and
       lb.get("mirrored", 0) + drops(lb) == lb.get("colored"),
       "shadow-down: every colored request is sent (and failed) or dropped with a reason", lb)
    # Requests taken after the first refusal is seen are dropped target_down;
    # how many are already queued by then depends on timing.
    ok(lb.get("error_refused", 0) + lb.get("dropped_target_down", 0) == 240,
       "shadow-down: each request refused or dropped as target_down", lb)
    sh = (c or {}).get("shadow", {})
    ok(sh.get("out_sessions") == lb.get("mirrored") and sh.get("out_results") == lb.get("sent")
       and sh.get("unpaired") == 0,
       "shadow-down: --shadow-out holds each sent request with its error result", sh)


def case_shadow_ring(exe, d, exp, frames):
    # A worker-to-sender ring of one request: the workers drop and count,
    # nothing stalls, and the target gets exactly what was queued.
    a = ShadowServer()
    try:
        eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % demo_pcap()]
        app = ["--rx", "0", "--color", "blue=sport:53654-53676", "--lane", "blue=" + a.url,
               "--shadow-ring", "1", "--shadow-out", "ring.dyt", "--exit-idle", "400", "--json"]
        p = run(exe, eal, app, d)
        ok(p.returncode == 0, "shadow-ring: exits 0 by itself with a tiny ring", p.stderr)
        c = counters(p)
        ga = a.requests()
    finally:
        a.close()
    sh = (c or {}).get("shadow", {})
    lb = shadow_lane(c, "blue")
    ok(sh.get("ring_full", 0) > 0, "shadow-ring: ring drops counted (%d)" % sh.get("ring_full", 0),
       sh)
    ok(sh.get("queued", 0) + sh.get("ring_full", 0) == 240 and
       lb.get("dropped_queue_full") == sh.get("ring_full"),
       "shadow-ring: queued + ring_full = colored requests, counted queue_full on the lane", sh)
    ok(len(ga) == lb.get("ok") == lb.get("sent") == lb.get("mirrored") == sh.get("queued"),
       "shadow-ring: the target got every queued request (%d)" % len(ga), lb)
    ok(c is not None and c["mirrored"] == 0 and c["ring_full"] == 0 and c["colored"] == 528,
       "shadow-ring: the packet path is unaffected", c)
    # Production sessions share the ring: those lost leave their request unpaired.
    ok(sh.get("out_sessions", 0) + sh.get("unpaired", 0) == lb.get("mirrored") and
       sh.get("out_results") == sh.get("out_sessions"),
       "shadow-ring: --shadow-out: every sent request written or counted unpaired", sh)
    # A packet ring of 8 (RX to worker): the packets dropped there never
    # reach the pipelines, so requests are missing from --shadow-out; the
    # diff report must say its data is incomplete and name the counter
    # (docs/diff.md "What is missing"), as it names a capture's kernel drops.
    a = ShadowServer()
    try:
        app = ["--rx", "0", "--color", "blue=sport:53654-53676", "--lane", "blue=" + a.url,
               "--ring-size", "8", "--shadow-out", "pring.dyt", "--exit-idle", "400", "--json"]
        p = run(exe, eal, app, d)
        c = counters(p) or {}
    finally:
        a.close()
    dyetap = os.path.abspath(os.environ["DYETAP"])
    r = subprocess.run([dyetap, "diff", "pring.dyt", "--json", "-", "--quiet"], cwd=d,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=TIMEOUT)
    rep = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    ok(p.returncode == 0 and c.get("ring_full", 0) > 0 and rep.get("data_incomplete") is True and
       any("fp_ring_full" in x for x in rep.get("incomplete_reasons", [])),
       "shadow-ring: packets dropped on a full worker ring (%d) make the diff report "
       "incomplete, naming fp_ring_full" % c.get("ring_full", 0),
       (p.stderr[-300:], r.stderr[-300:], rep.get("incomplete_reasons")))


def case_shadow_writes(exe, d, exp, frames):
    # tests/golden/python-post-large: a POST with a 150000-byte body (over
    # jumbo loopback frames), then a GET, on one connection.
    pcap = os.path.join(os.path.dirname(demo_pcap()), "..", "golden", "python-post-large",
                        "input.pcap")
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % pcap]
    for writes in (False, True):
        a = ShadowServer()
        name = "shadow-writes%s" % (" (--allow-writes)" if writes else "")
        try:
            app = ["--rx", "0", "--color", "blue=dport:39865", "--lane", "blue=" + a.url,
                   "--exit-idle", "400", "--json"] + (["--allow-writes"] if writes else [])
            p = run(exe, eal, app, d)
            ok(p.returncode == 0, "%s: exits 0" % name, p.stderr)
            lb = shadow_lane(counters(p), "blue")
            got = [(r["method"], r["target"], r["body"]) for r in a.requests()]
        finally:
            a.close()
        if writes:
            ok(got == [("POST", "/echo", 150000), ("GET", "/a.txt", 0)],
               "%s: the POST with its whole body, then the GET, in order" % name, got)
            ok(lb.get("ok") == 2 and drops(lb) == 0, "%s: counters" % name, lb)
        else:
            ok(got == [("GET", "/a.txt", 0)], "%s: only the GET is sent" % name, got)
            ok(lb.get("dropped_write_refused") == 1 and lb.get("ok") == 1,
               "%s: the POST is counted write_refused" % name, lb)


def users_pcap():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "users-keepalive",
                        "input.pcap")


def case_parity_users(exe, d, exp, frames):
    # tests/dpdk/users-keepalive: real keep-alive connections carrying the
    # requests of several users each (README there). A sample: rule and a
    # header rule are decided per request: the fast path must record and
    # shadow exactly what `dyetap record` and `dyetap mirror` do, not color
    # a connection by its first request.
    dyetap = os.path.abspath(os.environ["DYETAP"])
    pcap = users_pcap()
    rules = ["beta=sample:header:x-user-id:30%", "blue=header:x-lane=blue"]
    colors = []
    for r in rules:
        colors += ["--color", r]
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % pcap]
    # With --uncolored drop, also a redaction: the files' metadata must match too.
    redact = ["--redact", "header:user-agent", "--redact-defaults"]
    for unc in ("drop", "record"):
        extra = redact if unc == "drop" else []
        p = subprocess.run([dyetap, "record", "-r", pcap, "-w", "rec-%s.dyt" % unc,
                            "--uncolored", unc] + colors + extra, cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        want = sessions(dyetap, ["rec-%s.dyt" % unc], d)
        p = run(exe, eal, ["--rx", "0", "--workers", "1", "-w", "fp-%s.dyt" % unc,
                           "--uncolored", unc, "--exit-idle", "400", "--json"] + colors + extra,
                d)
        ok(p.returncode == 0, "parity-users (--uncolored %s): fast path exits 0" % unc, p.stderr)
        got = sessions(dyetap, ["fp-%s.dyt" % unc], d)
        ok(got == want and sum(want.values()) == (32 if unc == "record" else 13),
           "parity-users (--uncolored %s): the fast path's sessions equal dyetap record's (%d)"
           % (unc, sum(want.values())),
           "only fast path: %s\nonly record: %s" % (list(got - want)[:2], list(want - got)[:2]))
    meta = {}
    for f in ("rec-drop.dyt", "fp-drop.dyt"):
        pi = subprocess.run([dyetap, "info", "--json", f], cwd=d, stdout=subprocess.PIPE,
                            universal_newlines=True, timeout=TIMEOUT)
        meta[f] = json.loads(pi.stdout).get("meta", {}) if pi.returncode == 0 else {}
    mr, mf = meta["rec-drop.dyt"], meta["fp-drop.dyt"]
    ok(mr.get("rules") == mf.get("rules") == rules and
       mr.get("redactions") == mf.get("redactions") and
       "header:user-agent:mask" in (mf.get("redactions") or []) and
       mf.get("kind") == "recording" and mf.get("source") == "dpdk:rx=0" and mf.get("host"),
       "parity-users: the fast path's file carries record's metadata (rules, redactions)",
       (mr, mf))
    # The capture has what makes this test bite: a connection whose first
    # request no rule colors, with colored requests after it.
    conns = {}
    pc = subprocess.run([dyetap, "cat", "--json", "rec-record.dyt"], cwd=d,
                        stdout=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
    for line in pc.stdout.splitlines():
        o = json.loads(line)
        conns.setdefault(o["conn_id"], []).append(o.get("lane") or "")
    ok(any(v[0] == "" and any(v[1:]) for v in conns.values()) and
       any(len(set(v)) >= 3 for v in conns.values()),
       "parity-users: connections start uncolored and carry beta and blue requests later",
       conns)
    want = recorded_colored(dyetap, pcap, rules, d, "rec-lanes.dyt")

    def lane_reqs(lane):
        return Counter((m, t) for _, _, m, t in want.get(lane, []))
    for who in ("fast path", "mirror"):
        beta, blue = ShadowServer(), ShadowServer()
        try:
            lanes = ["--lane", "beta=" + beta.url, "--lane", "blue=" + blue.url]
            if who == "fast path":
                p = run(exe, eal, ["--rx", "0", "--exit-idle", "400", "--json"] + colors + lanes,
                        d)
            else:
                p = subprocess.run([dyetap, "mirror", "-r", pcap, "--json"] + colors + lanes,
                                   cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True, timeout=TIMEOUT)
            gb, gl = beta.requests(), blue.requests()
        finally:
            beta.close()
            blue.close()
        ok(p.returncode == 0, "parity-users: %s exits 0" % who, p.stderr)
        mt = lambda log: Counter((r["method"], r["target"]) for r in log)
        ok(mt(gb) == lane_reqs("beta") and mt(gl) == lane_reqs("blue") and
           len(gb) == 10 and len(gl) == 3,
           "parity-users: %s sends each lane exactly the requests record colors for it "
           "(beta 10, blue 3)" % who,
           "beta %d %s, blue %d %s" % (len(gb), sorted(mt(gb)), len(gl), sorted(mt(gl))))


def tls_files(d):
    """A CA and a server certificate for localhost signed by it (openssl)."""
    def ossl(*a):
        subprocess.run(["openssl"] + list(a), cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=dyetap test CA")
    ossl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return os.path.join(d, "ca.pem"), os.path.join(d, "srv.pem"), os.path.join(d, "srv.key")


def case_shadow_tls(exe, d, exp, frames):
    # An https lane whose certificate the system does not trust: refused as
    # a TLS error unless --insecure, or --ca with its CA (and --sni with
    # the name the certificate carries, the target being an address).
    import ssl
    if not shutil.which("openssl"):
        ok(True, "# SKIP openssl not installed")
        return
    ca, crt, key = tls_files(d)
    dyetap = os.path.abspath(os.environ["DYETAP"])
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % demo_pcap()]
    color = ["--color", "blue=sport:53654-53658"]
    n = len([1 for _, c, m, t in recorded_colored(dyetap, demo_pcap(), color[1:], d,
                                                   "rec-tls.dyt").get("blue", [])])
    for opts, good in (([], False), (["--insecure"], True),
                       (["--ca", ca, "--sni", "localhost"], True)):
        for who in ("fast path", "mirror"):
            srv = ShadowServer()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(crt, key)
            srv.srv.socket = ctx.wrap_socket(srv.srv.socket, server_side=True)
            url = srv.url.replace("http://", "https://")
            try:
                args = color + ["--lane", "blue=" + url, "--json", "--drain-timeout", "5s"] + opts
                if who == "fast path":
                    p = run(exe, eal, ["--rx", "0", "--exit-idle", "400"] + args, d)
                    lb = shadow_lane(counters(p), "blue")
                else:
                    p = subprocess.run([dyetap, "mirror", "-r", demo_pcap()] + args, cwd=d,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       universal_newlines=True, timeout=TIMEOUT)
                    c = json.loads(p.stdout) if p.stdout.startswith("{") else {}
                    lb = {k[len("lane_blue_"):]: v for k, v in c.items()
                          if k.startswith("lane_blue_")}
                got = srv.requests()
            finally:
                srv.close()
            name = "shadow-tls %s %s" % (who, " ".join(opts) or "(no option)")
            if good:
                ok(p.returncode == 0 and lb.get("ok") == n and len(got) == n,
                   "%s: the %d requests answered over TLS" % (name, n), (p.stderr[-500:], lb))
            else:
                ok(p.returncode == 0 and lb.get("ok") == 0 and lb.get("error_tls", 0) > 0 and
                   not got, "%s: refused, counted error_tls (%d)" % (name, lb.get("error_tls", 0)),
                   (p.stderr[-500:], lb))


def h2_fixture(name):
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "h2",
                        "fixtures", name + ".pcap")


H2_FIXTURES = ("nghttp", "grpc", "grpc-parallel", "h2load", "upgrade", "grpc-watch",
               "grpc-watch-early", "grpc-batch", "grpc-gzip")


def h2_merged(d, fixtures=H2_FIXTURES):
    """@d/h2-all.pcap: the h2 fixtures merged by time (mergecap -F pcap)."""
    merged = []
    for fx in fixtures:
        merged += read_pcap(h2_fixture(fx))
    merged.sort(key=lambda x: (x[0], x[1]))
    path = os.path.join(d, "h2-all.pcap")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        for sec, usec, fr in merged:
            f.write(struct.pack("<IIII", sec, usec, len(fr), len(fr)) + fr)
    return path


def wait_port(port, secs=10):
    """Until 127.0.0.1:@port accepts a connection (a server just started)."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)


def case_parity_h2(exe, d, exp, frames):
    # h2c captured by real nghttp2 and gRPC clients (tests/h2/fixtures, README
    # there): the fast path's workers parse HTTP/2 through the same pipeline
    # as `dyetap record`, so its recording must be the same streams with the
    # same colors (rules on HTTP/2 header fields and gRPC metadata), and its
    # lanes must get the same shadow requests as `dyetap mirror`'s.
    dyetap = os.path.abspath(os.environ["DYETAP"])
    rules = ["--color", "blue=header:x-lane=blue", "--color", "green=header:x-lane=green",
             "--color", "shop=path:/shop.Shop/*"]
    fixtures = H2_FIXTURES
    # All of them in one capture (12 connections, merged by time), spread
    # over three workers by flow hash: still dyetap record's streams, resets
    # (ts_reset_ns) and bodies.
    h2_merged(d, fixtures)
    for fx in fixtures + ("h2-all",):
        pcap = h2_fixture(fx) if fx != "h2-all" else os.path.join(d, "h2-all.pcap")
        p = subprocess.run([dyetap, "record", "-r", pcap, "-w", "rec-%s.dyt" % fx,
                            "--uncolored", "record"] + rules, cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        want = sessions(dyetap, ["rec-%s.dyt" % fx], d)
        nw = 3 if fx == "h2-all" else 1
        eal = ["--lcores", "0@0,1@1,2@0,3@1,4@0" if nw == 3 else "0@0,1@1,2@0",
               "--vdev", "net_pcap0,rx_pcap=%s" % pcap]
        p = run(exe, eal, ["--rx", "0", "--workers", str(nw), "-w", "fp-%s.dyt" % fx,
                           "--uncolored", "record", "--exit-idle", "400"] + rules, d)
        ok(p.returncode == 0, "parity-h2 %s: fast path exits 0" % fx, p.stderr[-500:])
        outs = ["fp-%s.dyt" % fx] + ["fp-%s.dyt.%d" % (fx, i) for i in range(1, nw)]
        got = sessions(dyetap, outs, d)
        h2 = sum(n for k, n in want.items() if json.loads(k).get("proto") == "h2c")
        ok(got == want and h2 > 0,
           "parity-h2 %s: the fast path's %d HTTP/2 streams equal dyetap record's" % (fx, h2),
           "only fast path: %s\nonly record: %s" % (list(got - want)[:2], list(want - got)[:2]))
    lanes = lambda f: Counter(json.loads(k).get("lane") or "" for k in
                              sessions(dyetap, [f], d).elements())
    # grpc.pcap: 15 calls carry x-lane: blue metadata (the first rule wins), 15 none
    ok(lanes("rec-nghttp.dyt")["blue"] == 4 and lanes("rec-grpc.dyt")["shop"] == 15 and
       lanes("rec-grpc.dyt")["blue"] == 15,
       "parity-h2: the rules color nghttp's x-lane header, gRPC metadata and :path",
       (lanes("rec-nghttp.dyt"), lanes("rec-grpc.dyt")))
    # upgrade.pcap: two GETs offering "Upgrade: h2c" (nghttp -u, curl --http2),
    # announced before their 101: the lane's HTTP/1.1 copy could not follow
    # the switch (it got a bare 101, diffed against production's 200). Both
    # are dropped as unsupported (docs/mirror.md), by the fast path and by
    # mirror alike, and nothing is sent (a dead target would count errors).
    pcap = h2_fixture("upgrade")
    args = ["--color", "green=header:x-lane=green", "--lane",
            "green=http://127.0.0.1:%d" % dead_port(), "--json", "--drain-timeout", "1s"]
    eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % pcap]
    p = run(exe, eal, ["--rx", "0", "--exit-idle", "400"] + args, d)
    lg = shadow_lane(counters(p), "green")
    p2 = subprocess.run([dyetap, "mirror", "-r", pcap] + args, cwd=d, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
    c2 = json.loads(p2.stdout) if p2.stdout.startswith("{") else {}
    ok(p.returncode == 0 and lg.get("colored") == 2 and lg.get("dropped_unsupported") == 2 and
       lg.get("sent") == 0 and c2.get("lane_green_dropped_unsupported") == 2 and
       c2.get("lane_green_sent") == 0,
       "parity-h2: the 2 Upgrade: h2c requests are not mirrored (unsupported), fast path "
       "and mirror", (p.stderr[-300:], lg, {k: v for k, v in c2.items() if "green" in k}))
    # Shadow: nghttp's 4 blue GETs (its POST is uncolored) to an h2c lane
    # served by nghttpd, from the fast path and from mirror.
    if not shutil.which("nghttpd"):
        ok(True, "# SKIP nghttpd not installed (package nghttp2-server)")
        return
    pcap = h2_fixture("nghttp")
    for who in ("fast path", "mirror"):
        port = free_port()
        log = open(os.path.join(d, "nghttpd-%d.log" % port), "w+")
        srv = subprocess.Popen(["nghttpd", "--no-tls", "-v", "-d", d, str(port)], stdout=log,
                               stderr=subprocess.STDOUT)
        try:
            wait_port(port)
            args = rules + ["--lane", "blue=http://127.0.0.1:%d" % port, "--json",
                            "--drain-timeout", "5s"]
            if who == "fast path":
                eal = ["--lcores", "0@0,1@1,2@0", "--vdev", "net_pcap0,rx_pcap=%s" % pcap]
                p = run(exe, eal, ["--rx", "0", "--exit-idle", "400"] + args, d)
                lb = shadow_lane(counters(p), "blue")
            else:
                p = subprocess.run([dyetap, "mirror", "-r", pcap] + args, cwd=d,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True, timeout=TIMEOUT)
                c = json.loads(p.stdout) if p.stdout.startswith("{") else {}
                lb = {k[len("lane_blue_"):]: v for k, v in c.items()
                      if k.startswith("lane_blue_")}
        finally:
            srv.terminate()
            srv.wait()
        log.seek(0)
        paths = sorted(re.findall(r":path: (\S+)", log.read()))
        ok(p.returncode == 0 and lb.get("ok") == 4 and
           paths == ["/a.json", "/big.txt", "/index.html", "/missing"],
           "parity-h2: %s shadows the 4 blue HTTP/2 requests to an h2c lane (nghttpd)" % who,
           (p.stderr[-500:], lb, paths))


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        for sec, usec, fr in frames:
            f.write(struct.pack("<IIII", sec, usec, len(fr), len(fr)) + fr)


def capture_keys(mirror):
    """The capture counters of a `dyetap mirror --json` report (not its
    source's, src_, nor its shadow counters, mirror_ and lane_L_NAME)."""
    return {k: v for k, v in mirror.items() if not k.startswith(("src_", "mirror_")) and
            not (k.startswith("lane_") and not k.endswith("_sessions"))}


def case_capture_counters(exe, d, exp, frames):
    # The workers' pipelines count what they lose (h2_gaps, reasm_gaps...):
    # the fast path's report, its metrics and its --shadow-out trailer carry
    # those counters as `dyetap mirror` reports them for the same capture,
    # and `dyetap diff` of the --shadow-out file sees the loss.
    dyetap = os.path.abspath(os.environ["DYETAP"])
    full = read_pcap(h2_fixture("grpc"))
    payload = [i for i, (_, _, b) in enumerate(full) if tcp_payload_len(b) > 0]
    write_pcap(os.path.join(d, "lossy.pcap"),
               [f for i, f in enumerate(full) if i not in payload[10:40:10]])
    lane = ["--color", "blue=header:x-lane=blue", "--lane",
            "blue=http://127.0.0.1:%d" % dead_port(), "--drain-timeout", "1s", "--json"]
    eal = ["--lcores", "0@0,1@1,2@0"]
    # The fast path's own keys: a run without pipelines.
    p = run(exe, eal + ["--vdev", "net_pcap0,rx_pcap=%s" % h2_fixture("grpc")],
            ["--rx", "0", "--exit-idle", "400", "--json"] + lane[:2], d)
    own = set(counters(p) or {}) | {"shadow", "sessions"}
    for name, pcap, nw in (("grpc", h2_fixture("grpc"), 1), ("lossy", "lossy.pcap", 1),
                           ("all", h2_merged(d), 2)):
        m = subprocess.run([dyetap, "mirror", "-r", pcap] + lane, cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        want = capture_keys(json.loads(m.stdout) if m.stdout.startswith("{") else {})
        lc = ["--lcores", "0@0,1@1,2@0,3@1"] if nw == 2 else eal
        p = run(exe, lc + ["--vdev", "net_pcap0,rx_pcap=%s" % pcap],
                ["--rx", "0", "--workers", str(nw), "--exit-idle", "400",
                 "--shadow-out", name + ".dyt"] + lane, d)
        c = counters(p) or {}
        # Workers add up: a peak is the sum of theirs, the flow tables are theirs.
        diff = {k: (c.get(k), v) for k, v in want.items()
                if c.get(k) != v and not (nw > 1 and (k.endswith("_peak") or
                                                      k == "flow_mem_bytes"))}
        ok(p.returncode == 0 and "h2_gaps" in want and "pipe_packets" in want and not diff and
           set(c) - set(want) <= own,
           "capture-counters %s: the --json report has dyetap mirror's %d capture counters "
           "(%d worker%s)" % (name, len(want), nw, "s" if nw > 1 else ""),
           (p.stderr[-300:], m.stderr[-300:], diff, set(c) - set(want) - own))
        if name == "lossy":
            ok(c.get("h2_gaps", 0) > 0 and c.get("reasm_gaps", 0) > 0,
               "capture-counters: the packets removed are gaps (h2_gaps %s, reasm_gaps %s)"
               % (c.get("h2_gaps"), c.get("reasm_gaps")))
        i = subprocess.run([dyetap, "info", "--json", name + ".dyt"], cwd=d,
                           stdout=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        tr = json.loads(i.stdout).get("counters", {}) if i.stdout.startswith("{") else {}
        if isinstance(tr, list):
            tr = {x["name"]: x["value"] for x in tr}
        ok(all(k in tr and tr[k] == c.get(k) for k in want),
           "capture-counters %s: the --shadow-out trailer holds them" % name,
           {k: (tr.get(k), c.get(k)) for k in want if tr.get(k) != c.get(k)})
        r = subprocess.run([dyetap, "diff", name + ".dyt", "--json", "-", "--quiet"], cwd=d,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=TIMEOUT)
        rep = json.loads(r.stdout) if r.stdout.startswith("{") else {}
        gaps = [x for x in rep.get("incomplete_reasons", []) if "gap" in x or "lost" in x]
        if name == "lossy":
            ok(rep.get("data_incomplete") is True and any("h2_gaps" in x for x in gaps),
               "capture-counters: dyetap diff of the --shadow-out file names the capture gaps "
               "as a loss", (r.stderr[-300:], rep.get("incomplete_reasons")))
        else:
            ok(r.returncode in (0, 1) and rep and not gaps,
               "capture-counters %s: no capture loss in dyetap diff" % name,
               (r.stderr[-300:], rep.get("incomplete_reasons")))
    # /metrics while running: the same counters as dyetap_NAME_total.
    import signal
    import urllib.request
    port = free_port()
    cmd = [exe] + EAL + eal + ["--vdev", "net_pcap0,rx_pcap=%s" % h2_fixture("grpc"), "--",
                               "--rx", "0", "--metrics", "127.0.0.1:%d" % port] + lane
    p = subprocess.Popen(cmd, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    text = ""
    try:
        deadline = time.time() + 10
        while time.time() < deadline and "dyetap_pipe_packets_total 78" not in text:
            time.sleep(0.1)
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                            timeout=5) as u:
                    text = u.read().decode()
            except OSError:
                pass
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=TIMEOUT)
    names = set(re.findall(r"^(dyetap_\w+?)(?:\{| )", text, re.M))
    miss = [k for k in capture_keys(want) if not k.startswith("lane_") and
            "dyetap_%s_total" % k not in names]
    ok("dyetap_pipe_packets_total 78" in text and "dyetap_h2_frames_total 250" in text and
       not miss and 'dyetap_lane_sessions_total{lane="blue"}' in text,
       "capture-counters: /metrics serves them while running", (miss, text[-500:]))


CASES = {"dup": case_dup, "parity": case_parity, "telemetry": case_telemetry, "copy": case_copy, "vlan": case_vlan, "vxlan": case_vxlan, "multi": case_multi,
         "workers": case_workers, "ring": case_ring, "ring-uncolored": case_ring_uncolored, "count": case_count, "cli": case_cli,
         "shadow": case_shadow, "shadow-down": case_shadow_down, "shadow-ring": case_shadow_ring, "shadow-writes": case_shadow_writes,
         "parity-users": case_parity_users, "parity-h2": case_parity_h2, "shadow-tls": case_shadow_tls,
         "loss": case_loss, "capture-counters": case_capture_counters}


def main():
    exe, gen, case = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    d = tempfile.mkdtemp(prefix="fp_%s_" % case)
    try:
        subprocess.run([sys.executable, gen, d, "--big"], check=True)
        with open(os.path.join(d, "expect.json")) as f:
            exp = json.load(f)
        frames = read_pcap(os.path.join(d, "in.pcap"))
        CASES[case](exe, d, exp, frames)
    except subprocess.TimeoutExpired as e:
        ok(False, "%s: finished within %d s" % (case, TIMEOUT), e)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(finish())


if __name__ == "__main__":
    main()
