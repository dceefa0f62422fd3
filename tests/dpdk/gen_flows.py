#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Deterministic input for the fast path tests (tests/dpdk).

Writes OUT/in.pcap: several HTTP/1.1 conversations over TCP (handshake,
request - sometimes split over two or three segments -, response, FIN),
interleaved packet by packet as a busy link would carry them, plus UDP
datagrams and ARP frames. Some requests carry `x-lane: blue`, some a
`lane=canary` cookie on /api/*, some come from 192.168.7.0/24, some ride
VLAN 42, some are IPv6, one starts midstream (no handshake), one has a
header block larger than the fast path's request prefix cap.

Also writes OUT/in_a.pcap and OUT/in_b.pcap (the flows split in two, for
the multi-port test) and OUT/expect.json: for every packet of in.pcap its
flow and the lane the rules below must give it (null: uncolored), decided
here by construction from each flow's attributes, first rule first:

    blue=header:x-lane=blue
    canary=cookie:lane=canary,path:/api/*
    corp=src:192.168.7.0/24
    tagged=vlan:42
    beta=sample:header:x-user-id:5%     (docs/rules.md: fmix64(fnv1a64(value)) % 1e6 < 50000)

Usage: gen_flows.py OUTDIR [--flows N] [--big] [--resp-bytes N]
       gen_flows.py OUTDIR --tiny N      (default 60 flows)

--resp-bytes N makes each response body N bytes (in 1448-byte segments),
for a benchmark capture with a realistic packet size mix. --tiny N writes
OUT/tiny.pcap instead: N TCP flows of 16 minimum-size (60-byte, 64 on the
wire) frames each, from 10.0.0.0/24 and 10.0.1.0/24 alternately.
"""
import json
import os
import struct
import sys

RULES = [
    "blue=header:x-lane=blue",
    "canary=cookie:lane=canary,path:/api/*",
    "corp=src:192.168.7.0/24",
    "tagged=vlan:42",
    "beta=sample:header:x-user-id:5%",
]


def fnv1a(b):
    h = 0xcbf29ce484222325
    for c in b:
        h ^= c
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return h


def fmix64(h):
    m = 0xffffffffffffffff
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & m
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & m
    h ^= h >> 33
    return h


def sampled(value, rate_percent):
    return fmix64(fnv1a(value)) % 1000000 < rate_percent * 10000


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip6(s):
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def frame(fl, from_client, flags, seq, ack, payload=b""):
    """One Ethernet frame of flow @fl."""
    src, dst = (fl["cip"], fl["sip"]) if from_client else (fl["sip"], fl["cip"])
    sp, dp = (fl["cport"], 80) if from_client else (80, fl["cport"])
    tcp = struct.pack("!HHIIBBHHH", sp, dp, seq & 0xffffffff, ack & 0xffffffff,
                      5 << 4, flags, 65535, 0, 0)
    if fl["v6"]:
        pseudo = src + dst + struct.pack("!IxxxB", len(tcp) + len(payload), 6)
        c = csum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        l3 = struct.pack("!IHBB", 6 << 28, len(tcp) + len(payload), 6, 64) + src + dst
        et = 0x86dd
    else:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        c = csum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload),
                          fl["ipid"] & 0xffff, 0x4000, 64, 6, 0, src, dst)
        fl["ipid"] += 1
        l3 = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        et = 0x0800
    cmac = bytes([0x02, 0, 0, 0, 0, fl["id"] & 0xff])
    smac = bytes([0x02, 0, 0, 0, 1, 1])
    eth = (smac + cmac) if from_client else (cmac + smac)
    if fl["vlan"]:
        eth += struct.pack("!HH", 0x8100, fl["vlan"])
    eth += struct.pack("!H", et)
    f = eth + l3 + tcp + payload
    if len(f) < 60:
        f += b"\0" * (60 - len(f))
    return f


def lane_of(fl):
    h = {k.lower(): v for k, v in fl["headers"]}
    if h.get("x-lane") == "blue":
        return "blue"
    cookies = dict(p.strip().split("=", 1) for p in h.get("cookie", "").split(";") if "=" in p)
    if cookies.get("lane") == "canary" and fl["path"].startswith("/api/"):
        return "canary"
    if fl["cip_text"].startswith("192.168.7."):
        return "corp"
    if fl["vlan"] == 42:
        return "tagged"
    if "x-user-id" in h and sampled(h["x-user-id"].encode(), 5):
        return "beta"
    return None


def make_flow(i, big):
    kind = i % 10
    fl = {"id": i, "v6": False, "vlan": 0, "ipid": i * 100, "cport": 40000 + i,
          "headers": [("Host", "shop.example"), ("User-Agent", "gen/1"), ("Accept", "*/*")],
          "path": "/item/%d" % i, "split": 1, "midstream": False, "huge": False}
    fl["cip_text"] = "10.0.%d.%d" % (i // 200, i % 200 + 2)
    if kind == 0:
        fl["headers"].append(("x-lane", "blue"))
    elif kind == 1:
        fl["headers"].append(("X-Lane", "blue"))
        fl["split"] = 3  # header block over three segments
    elif kind == 2:
        fl["headers"].append(("Cookie", "sid=%d; lane=canary" % i))
        fl["path"] = "/api/cart/%d" % i
    elif kind == 3:
        fl["headers"].append(("Cookie", "lane=canary"))  # wrong path: not canary
    elif kind == 4:
        fl["cip_text"] = "192.168.7.%d" % (i % 200 + 2)
    elif kind == 5:
        fl["vlan"] = 42
    elif kind == 6:
        fl["vlan"] = 43
        fl["headers"].append(("x-lane", "green"))
    elif kind == 7:
        fl["v6"] = True
        fl["headers"].append(("x-lane", "blue"))
    elif kind == 8:
        fl["midstream"] = True
        fl["headers"].append(("x-lane", "blue"))
        fl["split"] = 2
    else:
        # docs/rules.md: "1007" is in at 5 %, "user-3" is out.
        fl["headers"].append(("x-user-id", "1007" if i % 20 == 9 else "user-3"))
    if big and i == 19:
        # A header block over the 4 KiB request prefix: left uncolored.
        fl["headers"].insert(0, ("x-pad", "p" * 5000))
        fl["headers"].append(("x-lane", "blue"))
        fl["split"] = 4
        fl["huge"] = True
    if fl["v6"]:
        fl["cip"] = ip6("2001:db8::%x" % (i + 2))
        fl["sip"] = ip6("2001:db8:1::80")
    else:
        fl["cip"] = ip4(fl["cip_text"])
        fl["sip"] = ip4("10.1.0.1")
    fl["lane"] = None if fl["huge"] else lane_of(fl)
    return fl


RESP_BYTES = 0


def flow_packets(fl):
    req = ("GET %s HTTP/1.1\r\n" % fl["path"]).encode()
    for k, v in fl["headers"]:
        req += ("%s: %s\r\n" % (k, v)).encode()
    req += b"\r\n"
    body = b'{"item":%d}' % fl["id"]
    if RESP_BYTES > len(body):
        body += b" " * (RESP_BYTES - len(body))
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" \
        % len(body) + body
    cs, ss = 1000 + fl["id"] * 1000, 500000 + fl["id"]
    out = []
    if not fl["midstream"]:
        out.append(frame(fl, True, 0x02, cs, 0))
        out.append(frame(fl, False, 0x12, ss, cs + 1))
        out.append(frame(fl, True, 0x10, cs + 1, ss + 1))
    seq = cs + 1
    n = fl["split"]
    step = (len(req) + n - 1) // n
    for k in range(0, len(req), step):
        seg = req[k:k + step]
        while seg:
            part, seg = seg[:1400], seg[1400:]
            out.append(frame(fl, True, 0x18, seq, ss + 1, part))
            seq += len(part)
    for k in range(0, len(resp), 1448):
        out.append(frame(fl, False, 0x18, ss + 1 + k, seq, resp[k:k + 1448]))
    out.append(frame(fl, True, 0x11, seq, ss + 1 + len(resp)))
    out.append(frame(fl, False, 0x11, ss + 1 + len(resp), seq + 1))
    out.append(frame(fl, True, 0x10, seq + 1, ss + 2 + len(resp)))
    return out


def udp_frame(i):
    src, dst = ip4("10.9.0.%d" % (i + 1)), ip4("10.9.0.53")
    payload = b"q%03d" % i
    udp = struct.pack("!HHHH", 5000 + i, 53, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    f = b"\x02\0\0\0\x09\x01\x02\0\0\0\x09\x02\x08\x00" + hdr + udp
    return f + b"\0" * max(0, 60 - len(f))


def arp_frame(i):
    f = b"\xff" * 6 + b"\x02\0\0\0\x0a\x01" + b"\x08\x06" + struct.pack(
        "!HHBBH", 1, 0x0800, 6, 4, 1) + b"\x02\0\0\0\x0a\x01" + ip4("10.0.0.%d" % (i + 1)) \
        + b"\0" * 6 + ip4("10.0.0.254")
    return f + b"\0" * (60 - len(f))


def write_pcap(path, frames, t0=1700000000, slots=None):
    """Packet n is stamped t0 + slots[n] * 137 us (slots: its place in in.pcap)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for n, fr in enumerate(frames):
            us = (slots[n] if slots else n) * 137
            f.write(struct.pack("<IIII", t0 + us // 1000000, us % 1000000, len(fr), len(fr)))
            f.write(fr)


def tiny(out, n):
    frames = []
    flows = []
    for i in range(n):
        fl = {"id": i, "v6": False, "vlan": 0, "ipid": 0, "cport": 1024 + i % 60000,
              "cip": ip4("10.0.%d.%d" % (i % 2, 1 + (i // 2) % 250)), "sip": ip4("10.1.0.1")}
        flows.append(fl)
    for k in range(16):
        for fl in flows:
            frames.append(frame(fl, k % 2 == 0, 0x02 if k == 0 else 0x10, 1 + k, 1))
    write_pcap(os.path.join(out, "tiny.pcap"), frames)


def main():
    global RESP_BYTES
    out = sys.argv[1]
    if "--resp-bytes" in sys.argv:
        RESP_BYTES = int(sys.argv[sys.argv.index("--resp-bytes") + 1])
    if "--tiny" in sys.argv:
        os.makedirs(out, exist_ok=True)
        tiny(out, int(sys.argv[sys.argv.index("--tiny") + 1]))
        return
    nflows = 60
    if "--flows" in sys.argv:
        nflows = int(sys.argv[sys.argv.index("--flows") + 1])
    big = "--big" in sys.argv
    os.makedirs(out, exist_ok=True)
    flows = [make_flow(i, big) for i in range(nflows)]
    queues = [[(fl["id"], fl["lane"], p) for p in flow_packets(fl)] for fl in flows]
    # Interleave: at most 8 flows open at once, one packet each in turn.
    frames, meta = [], []
    active, nxt = [], 0
    extra = 0
    while active or nxt < len(queues):
        while len(active) < 8 and nxt < len(queues):
            active.append(queues[nxt])
            nxt += 1
        for q in list(active):
            fid, lane, p = q.pop(0)
            frames.append(p)
            meta.append({"flow": fid, "lane": lane})
            if not q:
                active.remove(q)
        if extra < 6 and len(frames) % 40 < 8:
            frames.append(udp_frame(extra) if extra % 2 else arp_frame(extra))
            meta.append({"flow": -1 - extra, "lane": None})
            extra += 1
    write_pcap(os.path.join(out, "in.pcap"), frames)
    # The same packets with the same timestamps, split by flow over two files.
    for name, parity in (("in_a.pcap", 0), ("in_b.pcap", 1)):
        idx = [n for n, m in enumerate(meta) if m["flow"] % 2 == parity]
        write_pcap(os.path.join(out, name), [frames[n] for n in idx], slots=idx)
    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump({"rules": RULES, "packets": meta,
                   "flows": {str(fl["id"]): fl["lane"] for fl in flows}}, f)


if __name__ == "__main__":
    main()
