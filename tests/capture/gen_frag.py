#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generator of captures with IP fragments (tests/capture/ipfrag_e2e.py).

Writes classic pcap files (LINKTYPE_ETHERNET, microsecond timestamps, 1 ms
apart from 2026-01-01T00:00:00Z) with correct IPv4 header, TCP and UDP-less
checksums, deterministically. HTTP/1.1 keep-alive connections between a
client and a server on port 8080 whose large TCP segments travel as IP
fragments (RFC 791 section 3.2 for IPv4; RFC 8200 section 4.5 for IPv6,
a Fragment header after the fixed header), the way a host without path
MTU discovery or a tunnel with a small MTU sends them:

  complete.pcap  every fragment present, so tshark (which reassembles IP
                 by default) can serve as the oracle:
    1. IPv4: a POST whose 3000-byte request segment is three fragments in
       order; the 2500-byte response segment's fragments in reverse order;
       a GET split into 8-byte fragments, shuffled, one sent twice and one
       overlapping its neighbours with the same bytes.
    2. IPv6 (::1): the same exchange with Fragment headers, the last
       fragment of the response sent first and twice.
  lossy.pcap     one connection whose request's middle fragment never
                 arrives: its datagram stays incomplete, so the whole TCP
                 segment (the request) is lost, the server's ACK proves it,
                 and the response is recorded without a request, flagged;
                 the next transaction is complete.

Usage: gen_frag.py OUT_DIR      (writes OUT_DIR/complete.pcap, lossy.pcap)
       gen_frag.py --truth      (the transactions each file encodes)
References: RFC 791, RFC 8200, RFC 9293, RFC 1071; pcap format:
https://www.tcpdump.org/manpages/pcap-savefile.5.html
"""
import json
import os
import random
import struct
import sys

BASE_TS_US = 1767225600 * 1000000
V4_C, V4_S = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
V6_C, V6_S = bytes(15) + b"\x01", bytes(15) + b"\x02"
PORT = 8080
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


class Pcap:
    def __init__(self):
        self.pkts = []

    def add(self, ip, v6):
        self.pkts.append(b"\0" * 12 + (b"\x86\xdd" if v6 else b"\x08\x00") + ip)

    def bytes(self):
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
        for i, p in enumerate(self.pkts):
            ts = BASE_TS_US + i * 1000
            out.append(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(p), len(p)))
            out.append(p)
        return b"".join(out)


def tcp_bytes(src, dst, sport, dport, seq, ack, flags, payload, v6):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, 65535, 0, 0)
    if v6:
        pseudo = src + dst + struct.pack("!IxxxB", len(tcp) + len(payload), 6)
    else:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    c = csum(pseudo + tcp + payload)
    return tcp[:16] + struct.pack("!H", c) + tcp[18:] + payload


class Conn:
    """A TCP connection; segments over @frag bytes of IP payload travel as
    fragments, each datagram's fragments in the order @shape picks."""

    ident = 7000

    def __init__(self, pcap, v6, cport, cisn, sisn):
        self.p, self.v6, self.cport = pcap, v6, cport
        self.c, self.s = (V6_C, V6_S) if v6 else (V4_C, V4_S)
        self.cseq, self.sseq = cisn + 1, sisn + 1
        self.seg(True, cisn, 0, SYN)
        self.seg(False, sisn, cisn + 1, SYN | ACK)
        self.seg(True, cisn + 1, sisn + 1, ACK)

    def ip(self, src, dst, l4, off=0, more=False, ident=0, frag=False):
        if self.v6:
            if not frag:
                return struct.pack("!IHBB", 6 << 28, len(l4), 6, 64) + src + dst + l4
            fh = struct.pack("!BBHI", 6, 0, off | more, ident)
            return struct.pack("!IHBB", 6 << 28, len(fh) + len(l4), 44, 64) + src + dst + fh + l4
        Conn.ident += 1
        ff = (0x2000 if more else 0) | (off // 8) if frag else 0x4000
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident or Conn.ident, ff, 64, 6, 0,
                        src, dst)
        return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4

    def seg(self, from_client, seq, ack, flags, payload=b"", frag=0, shape=None, drop=()):
        src, dst = (self.c, self.s) if from_client else (self.s, self.c)
        sp, dp = (self.cport, PORT) if from_client else (PORT, self.cport)
        l4 = tcp_bytes(src, dst, sp, dp, seq, ack, flags, payload, self.v6)
        if not frag or len(l4) <= frag:
            self.p.add(self.ip(src, dst, l4), self.v6)
            return
        Conn.ident += 1
        ident = Conn.ident
        pieces = [(o, l4[o:o + frag]) for o in range(0, len(l4), frag)]
        order = shape(pieces) if shape else pieces
        for i, (o, b) in enumerate(order):
            if i in drop:
                continue
            self.p.add(self.ip(src, dst, b, o, o + len(b) < len(l4), ident, True), self.v6)

    def send(self, from_client, data, **kw):
        if from_client:
            self.seg(True, self.cseq, self.sseq, PSH | ACK, data, **kw)
            self.cseq += len(data)
            self.seg(False, self.sseq, self.cseq, ACK)
        else:
            self.seg(False, self.sseq, self.cseq, PSH | ACK, data, **kw)
            self.sseq += len(data)
            self.seg(True, self.cseq, self.sseq, ACK)

    def close(self):
        self.seg(True, self.cseq, self.sseq, FIN | ACK)
        self.seg(False, self.sseq, self.cseq + 1, FIN | ACK)
        self.seg(True, self.cseq + 1, self.sseq + 1, ACK)


def body(n, seed):
    a = b"abcdefghijklmnopqrstuvwxyz0123456789"
    return bytes(a[(i * 7 + seed) % len(a)] for i in range(n))


def request(method, target, b=b""):
    h = "%s %s HTTP/1.1\r\nHost: frag.test\r\nUser-Agent: gen-frag/1\r\n" % (method, target)
    if b:
        h += "Content-Length: %d\r\n" % len(b)
    return (h + "\r\n").encode() + b


def response(b):
    return ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
            % len(b)).encode() + b


def tiny_shuffled(pieces):
    """Shuffled, the fourth sent twice, and one fragment made of the third
    and fourth together (overlapping both with the same bytes)."""
    rnd = random.Random(20260101)
    out = list(pieces)
    rnd.shuffle(out)
    (o3, b3), (o4, b4) = pieces[2], pieces[3]
    return out[:5] + [pieces[3], (o3, b3 + b4)] + out[5:]


def exchange(c, tag):
    c.send(True, request("POST", "/frag/%s/post" % tag, body(3000, 1)), frag=1480)
    c.send(False, response(body(2500, 2)), frag=1480, shape=lambda p: p[::-1])
    c.send(True, request("GET", "/frag/%s/tiny" % tag), frag=8, shape=tiny_shuffled)
    last_twice = lambda p: [p[-1]] + p + [p[-1]]  # noqa: E731
    c.send(False, response(body(3100, 3)), frag=1232, shape=last_twice)


def complete():
    p = Pcap()
    a = Conn(p, False, 40100, 0x10000000, 0x20000000)
    exchange(a, "v4")
    a.close()
    b = Conn(p, True, 40101, 0x30000000, 0x40000000)
    exchange(b, "v6")
    b.close()
    return p


def lossy():
    p = Pcap()
    c = Conn(p, False, 40102, 0x50000000, 0x60000000)
    c.send(True, request("POST", "/frag/lossy", body(3000, 4)), frag=1480, drop=(1,))
    c.send(False, response(body(10, 5)))
    c.send(True, request("GET", "/frag/after"))
    c.send(False, response(body(6, 6)))
    c.close()
    return p


TRUTH = {
    "complete.pcap": [
        ["POST", "/frag/v4/post", 200, 3000, 2500, []],
        ["GET", "/frag/v4/tiny", 200, 0, 3100, []],
        ["POST", "/frag/v6/post", 200, 3000, 2500, []],
        ["GET", "/frag/v6/tiny", 200, 0, 3100, []],
    ],
    "lossy.pcap": [
        ["", "", 200, 0, 10, ["gap", "no_request"]],
        ["GET", "/frag/after", 200, 0, 6, []],
    ],
}


def main(argv):
    if argv[1:] == ["--truth"]:
        for name, txns in TRUTH.items():
            print("# " + name)
            for t in txns:
                print(json.dumps(dict(zip(["method", "target", "status", "req_body_len",
                                           "resp_body_len", "flags"], t))))
        return 0
    out = argv[1]
    for name, make in (("complete.pcap", complete), ("lossy.pcap", lossy)):
        with open(os.path.join(out, name), "wb") as f:
            f.write(make().bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
