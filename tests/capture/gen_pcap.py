#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the capture edge-case pcaps used by the capture tests.

Each case is one small HTTP/1.1 conversation (or two) built packet by
packet, then reordered, duplicated, cut or re-framed to hit one edge of
decode, flow or reassembly: reorder, duplicate, overlap with different
bytes, gap, sequence wraparound, midstream pickup, RST mid-body, 802.1Q,
QinQ, Linux SLL/SLL2, raw IP, BSD null/loop, IPv6 extension headers,
pcapng, IP fragments and non-TCP noise, a file cut short.

Usage: gen_pcap.py OUTDIR           (writes OUTDIR/<case>.pcap[ng])
       gen_pcap.py --list           (prints the case names)

Formats: pcap (pcap-savefile(5), nanosecond magic 0xa1b23c4d) and pcapng
(draft-ietf-opsawg-pcapng: SHB, IDB, EPB). Only the Python standard
library is used so the generator runs anywhere the tests do.
"""
import os
import socket
import struct
import sys

T0 = 1700000000 * 10**9  # 2023-11-14, ns
MSS = 1000

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Seg:
    """One TCP segment of a conversation, before link framing."""

    def __init__(self, frm_client, flags, seq, ack, payload=b""):
        self.c = frm_client
        self.flags = flags
        self.seq = seq & 0xFFFFFFFF
        self.ack = ack & 0xFFFFFFFF
        self.payload = payload


class Conv:
    """A TCP connection between a client and a server endpoint."""

    def __init__(self, cli="10.0.0.1", cport=40000, srv="10.0.0.2", sport=80,
                 cisn=1000, sisn=5000, v6=False):
        self.v6 = v6
        fam = socket.AF_INET6 if v6 else socket.AF_INET
        self.ca = socket.inet_pton(fam, cli)
        self.sa = socket.inet_pton(fam, srv)
        self.cp, self.sp = cport, sport
        self.cseq, self.sseq = cisn, sisn
        self.segs = []

    def handshake(self):
        self.segs.append(Seg(True, SYN, self.cseq, 0))
        self.segs.append(Seg(False, SYN | ACK, self.sseq, self.cseq + 1))
        self.cseq += 1
        self.sseq += 1
        self.segs.append(Seg(True, ACK, self.cseq, self.sseq))
        return self

    def send(self, frm_client, data, mss=MSS):
        for i in range(0, len(data), mss):
            chunk = data[i:i + mss]
            if frm_client:
                self.segs.append(Seg(True, ACK | PSH, self.cseq, self.sseq, chunk))
                self.cseq += len(chunk)
            else:
                self.segs.append(Seg(False, ACK | PSH, self.sseq, self.cseq, chunk))
                self.sseq += len(chunk)
        # the receiver acknowledges
        if frm_client:
            self.segs.append(Seg(False, ACK, self.sseq, self.cseq))
        else:
            self.segs.append(Seg(True, ACK, self.cseq, self.sseq))
        return self

    def close(self):
        self.segs.append(Seg(True, FIN | ACK, self.cseq, self.sseq))
        self.cseq += 1
        self.segs.append(Seg(False, FIN | ACK, self.sseq, self.cseq))
        self.sseq += 1
        self.segs.append(Seg(True, ACK, self.cseq, self.sseq))
        return self

    def ip(self, s):
        src, dst = (self.ca, self.sa) if s.c else (self.sa, self.ca)
        sp, dp = (self.cp, self.sp) if s.c else (self.sp, self.cp)
        tcp = struct.pack("!HHIIBBHHH", sp, dp, s.seq, s.ack, 5 << 4, s.flags, 65535, 0, 0)
        tcp += s.payload
        if self.v6:
            pseudo = src + dst + struct.pack("!IxxxB", len(tcp), 6)
        else:
            pseudo = src + dst + struct.pack("!xBH", 6, len(tcp))
        c = csum(pseudo + tcp)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        if self.v6:
            return struct.pack("!IHBB", 0x60000000, len(tcp), 6, 64) + src + dst + tcp
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        return hdr + tcp


def req(method, target, body=b"", extra=b""):
    h = b"%s %s HTTP/1.1\r\nHost: example.test\r\nUser-Agent: gen_pcap/1\r\n" % (method, target)
    if body:
        h += b"Content-Length: %d\r\n" % len(body)
    return h + extra + b"\r\n" + body


def resp(status, body, extra=b""):
    return (b"HTTP/1.1 %d OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
            % (status, len(body), extra)) + body


BODY = bytes((i * 7 + 3) % 26 + 97 for i in range(2500))  # 2500 bytes, 3 segments


def basic(**kw):
    """Two keep-alive transactions, clean close."""
    c = Conv(**kw).handshake()
    c.send(True, req(b"GET", b"/one"))
    c.send(False, resp(200, BODY))
    c.send(True, req(b"POST", b"/two", b"x=1&y=2", b"x-lane: blue\r\n"))
    c.send(False, resp(201, b"created"))
    return c.close()


# ---- link framing ----

def eth(ip, v6=False, tags=()):
    hdr = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01"
    for tpid, vid in tags:
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", 0x86DD if v6 else 0x0800) + ip


def frame(conv, link, **kw):
    out = []
    for s in conv.segs:
        ip = conv.ip(s)
        if link == 1:
            out.append(eth(ip, conv.v6, kw.get("tags", ())))
        elif link == 113:  # SLL: type, arphrd, addr len, addr[8], protocol
            out.append(struct.pack("!HHH8sH", 0 if not s.c else 4, 772, 6, b"\0" * 8,
                                   0x86DD if conv.v6 else 0x0800) + ip)
        elif link == 276:  # SLL2: protocol, reserved, ifindex, arphrd, type, addr len, addr
            out.append(struct.pack("!HHIHBB8s", 0x86DD if conv.v6 else 0x0800, 0, 1, 772,
                                   0 if not s.c else 4, 6, b"\0" * 8) + ip)
        elif link == 101:
            out.append(ip)
        elif link == 0:  # host order (little endian here)
            out.append(struct.pack("<I", 30 if conv.v6 else 2) + ip)
        elif link == 108:  # network order
            out.append(struct.pack("!I", 24 if conv.v6 else 2) + ip)
        else:
            raise ValueError(link)
    return out


def write_pcap(path, link, frames, cut=0):
    parts = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, link)]
    for i, f in enumerate(frames):
        ts = T0 + i * 1000000  # 1 ms apart
        parts.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(f), len(f)) + f)
    data = b"".join(parts)
    if cut:
        data = data[:-cut]
    with open(path, "wb") as fh:
        fh.write(data)


def write_pcapng(path, link, frames):
    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
    # if_tsresol = 9 (nanoseconds)
    opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    data = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    data += block(1, struct.pack("<HHI", link, 0, 262144) + opts)
    for i, f in enumerate(frames):
        ts = T0 + i * 1000000
        data += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f)
    with open(path, "wb") as fh:
        fh.write(data)


# ---- cases ----

def data_segs(c, frm_client):
    return [i for i, s in enumerate(c.segs) if s.payload and s.c == frm_client]


def case_reorder():
    c = basic()
    d = data_segs(c, False)[:3]  # the 3 segments of the first response
    a, b, e = d
    c.segs[a], c.segs[e] = c.segs[e], c.segs[a]  # last first, first last
    return c


def case_duplicate():
    c = basic()
    for i in reversed(data_segs(c, True) + data_segs(c, False)[:2]):
        c.segs.insert(i + 1, c.segs[i])
    return c


def case_overlap_diff():
    """Response segment 2 arrives before segment 1; a retransmission of
    segment 1 overlapping segment 2 carries different bytes, and a
    retransmission of delivered bytes differs too. First seen wins."""
    c = basic()
    d = data_segs(c, False)
    s1, s2 = c.segs[d[0]], c.segs[d[1]]
    bad = Seg(False, ACK | PSH, s1.seq + 500, s1.ack, b"X" * (len(s1.payload) - 500 + 100))
    c.segs[d[0]], c.segs[d[1]] = s2, bad  # s2 buffered, then the overlapping one
    c.segs.insert(d[1] + 1, s1)  # the original segment 1 fills the rest
    late = Seg(False, ACK | PSH, s1.seq, s1.ack, b"Y" * 50)  # rewrite delivered bytes
    c.segs.insert(d[1] + 2, late)
    return c


def case_gap():
    """The middle segment of the first response is lost; the client
    acknowledges past it."""
    c = basic()
    d = data_segs(c, False)
    del c.segs[d[1]]
    return c


def case_wraparound():
    c = Conv(cisn=0xFFFFFF00, sisn=0xFFFFF800).handshake()
    c.send(True, req(b"GET", b"/wrap"))
    c.send(False, resp(200, BODY))
    c.send(True, req(b"GET", b"/after"))
    c.send(False, resp(200, b"ok"))
    return c.close()


def case_midstream():
    """Capture starts after the handshake and in the middle of a response;
    then a whole transaction follows."""
    c = basic()
    first_resp = data_segs(c, False)[1]
    c.segs = c.segs[first_resp + 1:]
    return c


def case_rst_mid_body():
    c = Conv().handshake()
    c.send(True, req(b"GET", b"/big"))
    full = resp(200, BODY * 4)
    c.send(False, full[:2500])
    c.segs.append(Seg(False, RST | ACK, c.sseq, c.cseq))
    return c


def case_port_reuse():
    a = basic()
    b = Conv(cisn=777777, sisn=888888).handshake()
    b.send(True, req(b"GET", b"/again"))
    b.send(False, resp(200, b"again"))
    b.close()
    a.segs += b.segs
    return a


def case_noise():
    """UDP, an IPv4 fragment and ARP between the packets of a transaction."""
    c = basic()
    frames = frame(c, 1)
    udp = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0, c.ca, c.sa) + b"\0" * 8
    frag = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 2, 0x2000, 64, 6, 0, c.ca, c.sa) + b"\0" * 8
    arp = b"\xff" * 6 + b"\x02\0\0\0\0\x01" + b"\x08\x06" + b"\0" * 28
    frames.insert(3, eth(udp))
    frames.insert(5, eth(frag))
    frames.insert(7, arp)
    return frames


def ipv6_ext(conv):
    """Frames of @conv with hop-by-hop and destination options headers."""
    out = []
    for s in conv.segs:
        ip = conv.ip(s)
        tcp = ip[40:]
        ext = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([6, 0, 1, 4, 0, 0, 0, 0])
        hdr = struct.pack("!IHBB", 0x60000000, len(ext) + len(tcp), 0, 64) + ip[8:40]
        out.append(eth(hdr + ext + tcp, True))
    return out


def cases():
    """name -> (filename, writer)"""
    v6 = dict(cli="2001:db8::1", srv="2001:db8::2", v6=True)
    cs = {
        "basic": lambda p: write_pcap(p, 1, frame(basic(), 1)),
        "reorder": lambda p: write_pcap(p, 1, frame(case_reorder(), 1)),
        "duplicate": lambda p: write_pcap(p, 1, frame(case_duplicate(), 1)),
        "overlap-diff": lambda p: write_pcap(p, 1, frame(case_overlap_diff(), 1)),
        "gap": lambda p: write_pcap(p, 1, frame(case_gap(), 1)),
        "wraparound": lambda p: write_pcap(p, 1, frame(case_wraparound(), 1)),
        "midstream": lambda p: write_pcap(p, 1, frame(case_midstream(), 1)),
        "rst-mid-body": lambda p: write_pcap(p, 1, frame(case_rst_mid_body(), 1)),
        "port-reuse": lambda p: write_pcap(p, 1, frame(case_port_reuse(), 1)),
        "vlan": lambda p: write_pcap(p, 1, frame(basic(), 1, tags=((0x8100, 42),))),
        "qinq": lambda p: write_pcap(p, 1, frame(basic(), 1,
                                                 tags=((0x88A8, 100), (0x8100, 42)))),
        "sll": lambda p: write_pcap(p, 113, frame(basic(), 113)),
        "sll2": lambda p: write_pcap(p, 276, frame(basic(**v6), 276)),
        "raw": lambda p: write_pcap(p, 101, frame(basic(), 101)),
        "null": lambda p: write_pcap(p, 0, frame(basic(), 0)),
        "loop6": lambda p: write_pcap(p, 108, frame(basic(**v6), 108)),
        "ipv6-ext": lambda p: write_pcap(p, 1, ipv6_ext(basic(**v6))),
        "noise": lambda p: write_pcap(p, 1, case_noise()),
        "truncated": lambda p: write_pcap(p, 1, frame(basic(), 1), cut=30),
    }
    out = {n + ".pcap": f for n, f in cs.items()}
    out["pcapng.pcapng"] = lambda p: write_pcapng(p, 1, frame(basic(), 1))
    return out


def main(argv):
    if len(argv) == 2 and argv[1] == "--list":
        print("\n".join(sorted(cases())))
        return 0
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 0 if len(argv) == 2 and argv[1] in ("-h", "--help") else 2
    os.makedirs(argv[1], exist_ok=True)
    for name, write in sorted(cases().items()):
        write(os.path.join(argv[1], name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
