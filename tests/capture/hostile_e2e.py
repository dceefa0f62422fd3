#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Capture under attack (docs/capture.md "Hostile traffic"): `dyetap record`
and `dyetap mirror -r` on captures written by the committed generators
(tests/capture/gen_hostile.py, bench/gen_flows_pcap.c), each asserting the
fixed behaviour and an upper bound on work: operation counts from the
counters, or CPU time (user + system of the child, never wall time) at
most a generous ratio to a control input run just before it.

usage: hostile_e2e.py DYETAP GEN_FLOWS_PCAP SOURCE_ROOT GROUP      (TAP output)

state  forged RSTs (far, exactly 2^31 away, stale) and a forged FIN
       ahead: 6 of 6 transactions, as tshark reads the capture without
       the forged packets (editcap deletes them); a real RST still closes;
       data on a SYN is not delivered; a packet ten years ahead times out
       nothing
pcapng a file of two interfaces of different link types (mergecap), a
       little-endian section (editcap) joined with a big-endian one,
       timestamps in seconds near 2^63 and in 2^-20 s with an offset:
       read as tshark reads them
flood  40 000 SYNs whose IPv6 sources collided in the old unkeyed hash,
       within 3x the CPU of 40 000 ordinary ones (record and mirror);
       250 000 one-byte segments behind a hole within 3x of the same bytes
       in order, the piece cap counted; 1 000 000 SYN-only connections
       under the documented memory bound (DESIGN.md §13: 512 MiB)
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

DYETAP, GEN_FLOWS, ROOT, GROUP = sys.argv[1:5]
HERE = os.path.join(ROOT, "tests", "capture")
sys.path.insert(0, os.path.dirname(HERE))
from tap_util import finish, ok  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dyetap-hostile-")


def path(name):
    return os.path.join(TMP, name)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def record(pcap, *extra, stdin=None):
    """Run `dyetap record --json`: (returncode, counters, cpu seconds, stderr)."""
    out = path("out.dyt")
    t0 = children_cpu()
    r = subprocess.run([DYETAP, "record", "-r", pcap, "-w", out, "--json"] + list(extra),
                       stdin=stdin, capture_output=True, text=True)
    cpu = children_cpu() - t0
    try:
        c = json.loads(r.stdout)
        c = c.get("counters", c)
    except ValueError:
        c = {}
    return r.returncode, c, cpu, r.stderr


def sessions(dyt=None):
    r = subprocess.run([DYETAP, "cat", "--json", dyt or path("out.dyt")],
                       capture_output=True, text=True)
    return [json.loads(x) for x in r.stdout.splitlines() if x.strip()]


def tshark(pcap, *args):
    r = subprocess.run(["tshark", "-r", pcap] + list(args), capture_output=True, text=True)
    return r.stdout.splitlines()


def pick(c, *names):
    return {n: c.get(n) for n in names}


def tshark_requests(pcap):
    return tshark(pcap, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri")


def without(pcap, display_filter, out):
    """@pcap minus the frames matching @display_filter (editcap deletes them)."""
    nums = tshark(pcap, "-Y", display_filter, "-T", "fields", "-e", "frame.number")
    subprocess.run(["editcap", pcap, out] + nums, check=True, capture_output=True)
    return nums


def group_state():
    subprocess.run([sys.executable, os.path.join(HERE, "gen_hostile.py"), TMP], check=True)

    # Forged RSTs: the capture without them is what happened.
    forged = without(path("rst-spoof.pcap"), "tcp.flags.reset == 1", path("rst-clean.pcap"))
    truth = tshark_requests(path("rst-clean.pcap"))
    rc, c, _, err = record(path("rst-spoof.pcap"))
    got = [s["request"]["target"] for s in sessions()]
    ok(len(forged) == 2 and len(truth) == 6, "tshark: 6 requests once the 2 forged RSTs are cut",
       truth)
    ok(rc == 0 and got == truth and c.get("txn_sessions_complete") == 6,
       "6 of 6 transactions through the forged RSTs, all complete",
       pick(c, "pipe_sessions", "txn_sessions_complete", "flow_closed_rst"))
    ok(c.get("flow_rst_ignored") == 2 and c.get("flow_closed_rst") == 0 and
       c.get("flow_pkts_after_close") == 1 and c.get("flow_closed_fin") == 1,
       "both RSTs counted as ignored, the connection closes by FIN (its last ACK after)",
       pick(c, "flow_rst_ignored", "flow_closed_rst", "flow_pkts_after_close",
            "flow_closed_fin"))

    # A forged FIN 20 bytes ahead of the client.
    without(path("fin-spoof.pcap"), "tcp.flags.fin == 1 && frame.number < 12",
            path("fin-clean.pcap"))
    truth = tshark_requests(path("fin-clean.pcap"))
    rc, c, _, err = record(path("fin-spoof.pcap"))
    ss = sessions()
    ok(len(truth) == 6 and [s["request"]["target"] for s in ss] == truth and
       all(not s["flags"] for s in ss),
       "6 of 6 transactions through a forged FIN, none flagged", truth)
    ok(c.get("flow_fin_ignored") == 1 and c.get("reasm_after_fin_bytes") == 0 and
       c.get("txn_orphan_responses") == 0,
       "the FIN counted as ignored; no byte dropped after it, no orphan response",
       pick(c, "flow_fin_ignored", "reasm_after_fin_bytes", "txn_orphan_responses"))

    # The control: a real RST at the server's position still closes.
    rc, c, _, err = record(path("rst-real.pcap"))
    ok(c.get("flow_closed_rst") == 1 and c.get("pipe_sessions") == 2 and
       c.get("flow_pkts_after_close") == 1 and c.get("flow_rst_ignored") == 0,
       "a real RST closes the connection, the request after it is counted",
       pick(c, "flow_closed_rst", "pipe_sessions", "flow_pkts_after_close"))

    # Data on a SYN: Linux without TCP Fast Open drops it; the real
    # request at the same sequence numbers is what the server read.
    rc, c, _, err = record(path("syn-data.pcap"))
    ss = sessions()
    ok(len(ss) == 1 and ss[0]["request"]["target"] == "/real" and not ss[0]["flags"],
       "the request after the handshake wins over the SYN's payload",
       [s["request"]["target"] for s in ss])
    ok(c.get("flow_syn_payload") == 1, "flow_syn_payload counted", pick(c, "flow_syn_payload"))

    # A packet stamped ten years ahead between the exchanges.
    truth = tshark_requests(path("clock-jump.pcap"))
    rc, c, _, err = record(path("clock-jump.pcap"))
    ss = sessions()
    ok(len(truth) == 9 and len(ss) == 9 and all(not s["flags"] for s in ss) and
       c.get("txn_sessions_complete") == 9,
       "9 of 9 transactions around a clock jump, none flagged midstream",
       pick(c, "pipe_sessions", "txn_sessions_complete", "flow_midstream"))
    ok(c.get("flow_clock_jumps") == 2 and c.get("flow_timeouts") == 0 and
       c.get("flow_closed_fin") == 3,
       "two epochs counted (there and back), no connection timed out",
       pick(c, "flow_clock_jumps", "flow_timeouts", "flow_closed_fin"))


def group_pcapng():
    subprocess.run([sys.executable, os.path.join(HERE, "gen_pcap.py"), TMP], check=True)
    subprocess.run([sys.executable, os.path.join(HERE, "gen_hostile.py"), TMP], check=True)
    golden = os.path.join(ROOT, "tests", "golden")

    # Two interfaces: Ethernet and Linux cooked v2.
    mi = path("two-links.pcapng")
    subprocess.run(["mergecap", "-F", "pcapng", "-w", mi,
                    os.path.join(golden, "nginx-static", "input.pcap"), path("sll2.pcap")],
                   check=True, capture_output=True)
    links = set(tshark(mi, "-T", "fields", "-e", "frame.interface_id", "-e", "frame.encap_type"))
    truth = tshark_requests(mi)
    frames = len(tshark(mi, "-T", "fields", "-e", "frame.number"))
    rc, c, _, err = record(mi)
    ok(len(links) == 2, "mergecap wrote two interfaces of two link types", links)
    ok(rc == 0 and c.get("src_packets") == frames and c.get("decode_unknown_linktype") == 0 and
       sorted(s["request"]["target"] for s in sessions()) == sorted(truth) and len(truth) == 8,
       "every packet and request of both interfaces read, as tshark reads them (%d, %d)"
       % (frames, len(truth)), pick(c, "src_packets", "pipe_sessions", "src_truncated_files"))
    want = len(tshark(mi, "-Y", "tcp.port == 80", "-T", "fields", "-e", "frame.number"))
    rc, c, _, err = record(mi, "tcp", "port", "80")
    ok(rc == 0 and c.get("src_packets") == want and want == 16 and c.get("pipe_sessions") == 2,
       "a BPF filter is compiled per link type: 'tcp port 80' passes the %d SLL2 packets "
       "tshark's 'tcp.port == 80' finds" % want, pick(c, "pipe_sessions", "src_packets"))

    # Sections in both byte orders, joined as pcapng allows.
    le = path("le.pcapng")
    subprocess.run(["editcap", "-F", "pcapng",
                    os.path.join(golden, "curl-keepalive-python", "input.pcap"), le],
                   check=True, capture_output=True)
    joined = path("two-orders.pcapng")
    with open(joined, "wb") as out:
        for part in (le, path("be-section.pcapng")):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    truth = tshark_requests(joined)
    frames = len(tshark(joined, "-T", "fields", "-e", "frame.number"))
    rc, c, _, err = record(joined)
    ok(rc == 0 and c.get("src_packets") == frames and c.get("src_truncated_files") == 0 and
       sorted(s["request"]["target"] for s in sessions()) == sorted(truth) and len(truth) == 7,
       "a little- and a big-endian section: all %d packets, %d requests" % (frames, len(truth)),
       pick(c, "src_packets", "pipe_sessions", "src_truncated_files"))
    rc, c, _, err = record("-", stdin=open(joined, "rb"))
    ok(rc == 0 and c.get("src_packets") == frames, "the same from standard input",
       pick(c, "src_packets"))
    fifo = path("fifo")
    os.mkfifo(fifo)
    feeder = subprocess.Popen(["sh", "-c", 'cat "$0" > "$1"', joined, fifo])
    rc, c, _, err = record(fifo)
    feeder.wait()
    ok(rc == 0 and c.get("src_packets") == frames, "the same from a FIFO (no seeking back)",
       pick(c, "src_packets"))

    # Timestamp resolutions: whole seconds near 2^63 (saturated, no
    # overflow), 2^-20 s with a one-day offset (exact to the ns tshark gives).
    rc, c, _, err = record(path("tsresol.pcapng"))
    ss = sorted(sessions(), key=lambda s: s["src"])
    want = [int(t.replace(".", "")) for t in
            tshark(path("tsresol.pcapng"), "-Y", "http.request", "-T", "fields", "-e",
                   "frame.time_epoch")[1:]]
    ok(rc == 0 and "runtime error" not in err and len(ss) == 2,
       "seconds near 2^63: read without overflow", err)
    ok(ss[0]["ts_request_ns"] == 2**63 - 1 and [ss[1]["ts_request_ns"]] == want,
       "saturated at the int64 maximum; 2^-20 s + if_tsoffset as tshark reads it",
       ([s["ts_request_ns"] for s in ss], want))

    # Damaged and cut files: a counted warning, never a crash.
    data = open(joined, "rb").read()
    shb = int.from_bytes(data[4:8], "little")  # the second block's length field follows
    for name, blob in (("cut", data[:-7]),
                       ("bad-len", data[:shb + 4] + b"\xff\xff\xff\x7f" + data[shb + 8:])):
        p = path(name + ".pcapng")
        open(p, "wb").write(blob)
        rc, c, _, err = record(p)
        ok(rc == 0 and c.get("src_truncated_files") == 1 and "runtime error" not in err,
           "%s pcapng: the rest skipped with a warning, counted" % name, err)


def ratio_line(what, attack, control):
    return "%s: %.2f s vs %.2f s CPU (%.1fx)" % (what, attack, control,
                                                  attack / max(control, 0.01))


def group_flood():
    def gen(name, n, shape):
        p = path(name)
        subprocess.run([GEN_FLOWS, p, str(n), shape], check=True, capture_output=True)
        return p

    # Hash flooding, against record and mirror.
    ctl, att = gen("syn6.pcap", 40000, "syn6"), gen("collide.pcap", 40000, "collide")
    _, c1, cpu_c, _ = record(ctl)
    _, c2, cpu_a, _ = record(att)
    ok(c1.get("flow_created") == 40000 and c2.get("flow_created") == 40000,
       "40 000 connections each", (pick(c1, "flow_created"), pick(c2, "flow_created")))
    ok(cpu_a <= 3 * max(cpu_c, 0.05), "record: " + ratio_line("colliding SYNs", cpu_a, cpu_c))
    cpu = []
    for p in (ctl, att):
        t0 = children_cpu()
        r = subprocess.run([DYETAP, "mirror", "-r", p, "--color", "blue=method:GET", "--lane",
                            "blue=http://127.0.0.1:9", "--drain-timeout", "0"],
                           capture_output=True, text=True)
        cpu.append(children_cpu() - t0)
    ok(r.returncode == 0 and cpu[1] <= 3 * max(cpu[0], 0.05),
       "mirror: " + ratio_line("colliding SYNs", cpu[1], cpu[0]), r.stderr)

    # An out-of-order flood: 250 000 one-byte segments behind a hole.
    ctl, att = gen("inorder.pcap", 250000, "inorder"), gen("ooo.pcap", 250000, "ooo")
    _, c1, cpu_c, _ = record(ctl)
    _, c2, cpu_a, _ = record(att)
    ok(cpu_a <= 3 * max(cpu_c, 0.05),
       ratio_line("250k one-byte segments behind a hole", cpu_a, cpu_c))
    ok(c2.get("reasm_out_of_order") == 4097 and c2.get("reasm_seg_cap_hits") == 1 and
       c2.get("reasm_memcap_hits") == 0 and c2.get("reasm_gaps") == 1 and
       c2.get("txn_gap_sessions") == 1 and c2.get("pipe_sessions") == 1,
       "at the 4097th piece the stream stops waiting: the hole is a gap, the session flagged",
       pick(c2, "reasm_out_of_order", "reasm_seg_cap_hits", "reasm_gaps", "pipe_sessions"))
    ok(c1.get("txn_sessions_complete") == 1 and c1.get("reasm_gaps") == 0,
       "the control is one complete session", pick(c1, "txn_sessions_complete", "reasm_gaps"))

    # A million SYN-only connections, open at once, piped from the generator.
    g = subprocess.Popen([GEN_FLOWS, "-", "1000000", "syn"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    rc, c, _, err = record("-", "--max-flows", "1000000", stdin=g.stdout)
    g.wait()
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    held = c.get("flow_mem_bytes", 1 << 40) + c.get("pipe_txn_mem_peak", 0) + \
        c.get("reasm_buffered_peak", 0)
    ok(rc == 0 and c.get("flow_active_peak") == 1000000 and c.get("flow_evicted") == 0,
       "1 000 000 SYN-only connections open at once", pick(c, "flow_active_peak",
                                                          "flow_evicted"))
    ok(c.get("pipe_txn_mem_peak") == 0 and held <= 264 << 20,
       "they hold their flow entries only: %d MiB (bound: 1 M x 248 B + buckets)"
       % (held >> 20), pick(c, "flow_mem_bytes", "pipe_txn_mem_peak"))
    ok(rss_kib <= 512 * 1024, "peak RSS %d MiB <= 512 MiB (DESIGN.md §13)" % (rss_kib >> 10))
    # The default table: the flood evicts half-open connections only.
    g = subprocess.Popen([GEN_FLOWS, "-", "300000", "syn"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    rc, c, _, err = record("-", stdin=g.stdout)
    g.wait()
    ok(rc == 0 and c.get("flow_evicted") == 300000 - 262144 and
       c.get("flow_evicted_new") == c.get("flow_evicted"),
       "over --max-flows the oldest half-open connections are evicted, counted",
       pick(c, "flow_evicted", "flow_evicted_new"))


try:
    {"state": group_state, "pcapng": group_pcapng, "flood": group_flood}[GROUP]()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(finish())
