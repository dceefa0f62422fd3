#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the small hostile captures of tests/capture/hostile_e2e.py.

Each is a real-looking HTTP/1.1 conversation (built with gen_pcap.py's
Conv) with the packets an attacker on the path or a broken capture adds:

  rst-spoof.pcap      6 keep-alive exchanges; after the first, an RST from
                      the "server" 2^31 off its sequence and one from the
                      "client" 100 bytes behind what the server
                      acknowledged (both blind forgeries)
  fin-spoof.pcap      6 exchanges; after the first, a FIN from the
                      "client" 20 bytes ahead of its position
  rst-real.pcap       2 exchanges, then the server's RST at its exact
                      position, then a client request nobody answers (the
                      control: real RSTs still close)
  syn-data.pcap       a SYN carrying "GET /evil", then the real "GET /real"
                      at the same sequence numbers after the handshake
  clock-jump.pcap     3 keep-alive connections; between their first and
                      second exchange one packet of another connection
                      stamped ten years ahead
  be-section.pcapng   a pcapng section written big-endian (for joining
                      with a little-endian one written by editcap)
  tsresol.pcapng      one interface with if_tsresol = 1 s and timestamps
                      near 2^63 s, one with 2^-20 s resolution and an
                      if_tsoffset: each carries a whole exchange

Usage: gen_hostile.py OUTDIR
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_pcap as g  # noqa: E402

T0 = g.T0


def exchanges(c, n, first=0):
    for i in range(first, first + n):
        c.send(True, g.req(b"GET", b"/item/%d" % i))
        c.send(False, g.resp(200, b"item %d" % i))
    return c


def write_pcap_ts(path, frames):
    """Classic pcap (nanosecond magic) with a timestamp per frame."""
    parts = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    for ts, f in frames:
        parts.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(f), len(f)) + f)
    with open(path, "wb") as fh:
        fh.write(b"".join(parts))


def rst_spoof():
    c = exchanges(g.Conv().handshake(), 1)
    c.segs.append(g.Seg(False, g.RST, c.sseq + 2**31, 0))
    c.segs.append(g.Seg(True, g.RST | g.ACK, c.cseq - 100, c.sseq))
    return exchanges(c, 5, 1).close()


def fin_spoof():
    c = exchanges(g.Conv().handshake(), 1)
    c.segs.append(g.Seg(True, g.FIN | g.ACK, c.cseq + 20, c.sseq))
    return exchanges(c, 5, 1).close()


def rst_real():
    c = exchanges(g.Conv().handshake(), 2)
    c.segs.append(g.Seg(False, g.RST | g.ACK, c.sseq, c.cseq))
    c.segs.append(g.Seg(True, g.ACK | g.PSH, c.cseq, c.sseq, g.req(b"GET", b"/late")))
    return c


def syn_data():
    c = g.Conv()
    c.segs.append(g.Seg(True, g.SYN, c.cseq, 0, g.req(b"GET", b"/evil")))
    c.segs.append(g.Seg(False, g.SYN | g.ACK, c.sseq, c.cseq + 1))
    c.cseq += 1
    c.sseq += 1
    c.segs.append(g.Seg(True, g.ACK, c.cseq, c.sseq))
    c.send(True, g.req(b"GET", b"/real"))
    c.send(False, g.resp(200, b"real"))
    return c.close()


def clock_jump(path):
    convs = [exchanges(g.Conv(cport=41000 + i).handshake(), 1) for i in range(3)]
    frames = []
    ts = T0
    for c in convs:
        for f in g.frame(c, 1):
            frames.append((ts, f))
            ts += 10**6
    stray = g.Conv(cport=42000)
    stray.segs.append(g.Seg(True, g.SYN, 1, 0))
    frames.append((ts + 10 * 365 * 86400 * 10**9, g.frame(stray, 1)[0]))
    for c in convs:
        n = g.Conv(cport=c.cp)
        n.cseq, n.sseq = c.cseq, c.sseq
        exchanges(n, 2, 1).close()
        for f in g.frame(n, 1):
            frames.append((ts, f))
            ts += 10**6
    write_pcap_ts(path, frames)


def ng_block(order, btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def ng_shb(order):
    return ng_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def ng_idb(order, link, opts=b""):
    return ng_block(order, 1, struct.pack(order + "HHI", link, 0, 262144) + opts +
                    (struct.pack(order + "HH", 0, 0) if opts else b""))


def ng_opt(order, code, value):
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def ng_epb(order, iface, units, f):
    return ng_block(order, 6, struct.pack(order + "IIIII", iface, units >> 32,
                                          units & 0xFFFFFFFF, len(f), len(f)) + f)


def be_section(path):
    o = ">"
    c = exchanges(g.Conv(cport=43000).handshake(), 2).close()
    data = ng_shb(o) + ng_idb(o, 1, ng_opt(o, 9, b"\x09"))
    for i, f in enumerate(g.frame(c, 1)):
        data += ng_epb(o, 0, T0 + i * 10**6, f)
    with open(path, "wb") as fh:
        fh.write(data)


def tsresol(path):
    o = "<"
    data = ng_shb(o)
    data += ng_idb(o, 1, ng_opt(o, 9, b"\x00"))  # 10^0: whole seconds
    # 2^-20 s, offset one day
    data += ng_idb(o, 1, ng_opt(o, 9, b"\x94") + ng_opt(o, 14, struct.pack(o + "q", 86400)))
    a = exchanges(g.Conv(cport=44000).handshake(), 1).close()
    for i, f in enumerate(g.frame(a, 1)):
        data += ng_epb(o, 0, 2**63 - 10 + i, f)  # seconds: far past int64 ns
    b = exchanges(g.Conv(cport=44001).handshake(), 1).close()
    for i, f in enumerate(g.frame(b, 1)):
        data += ng_epb(o, 1, (1700000000 << 20) + i * 1024, f)
    with open(path, "wb") as fh:
        fh.write(data)


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    d = argv[1]
    os.makedirs(d, exist_ok=True)
    for name, conv in (("rst-spoof", rst_spoof()), ("fin-spoof", fin_spoof()),
                       ("rst-real", rst_real()), ("syn-data", syn_data())):
        g.write_pcap(os.path.join(d, name + ".pcap"), 1, g.frame(conv, 1))
    clock_jump(os.path.join(d, "clock-jump.pcap"))
    be_section(os.path.join(d, "be-section.pcapng"))
    tsresol(os.path.join(d, "tsresol.pcapng"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
