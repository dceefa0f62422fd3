#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Seeds for fuzz_h2 (tests/h2/fuzz_h2.c) from the fixture captures: each
TCP connection's payload in capture order as fuzz operations (control
byte: direction in bit 0; 16-bit length; bytes), cut after LIMIT bytes and
closed with an end operation.

  make_seeds.py OUTDIR fixtures/*.pcap
"""
import os
import struct
import sys

LIMIT = 6000


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        yield link, data[off + 16:off + 16 + incl]
        off += 16 + incl


def tcp(link, pkt):
    if link != 1 or len(pkt) < 14 or pkt[12:14] != b"\x08\x00":
        return None
    ip = pkt[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 6:
        return None
    t = ip[ihl:]
    sport, dport = struct.unpack(">HH", t[:4])
    doff = (t[12] >> 4) * 4
    total = struct.unpack(">H", ip[2:4])[0]
    payload = ip[ihl + doff:total]
    return (ip[12:16], sport), (ip[16:20], dport), t[13], payload


def frame(t, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload


def lit(name, value):
    """HPACK literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2)."""
    return bytes([0x00, len(name)]) + name + bytes([len(value)]) + value


def synthetic(out):
    """Frames the fixtures do not have: padding, priority, CONTINUATION,
    PUSH_PROMISE, RST_STREAM, GOAWAY, a bad PING, an unknown type."""
    pre = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    req = lit(b":method", b"GET") + lit(b":path", b"/s?q=1") + lit(b"x-lane", b"blue")
    c = pre + frame(4, 0, 0, b"")
    c += frame(1, 0x08 | 0x20, 1, bytes([2]) + bytes(5) + req[:10] + b"\0\0")  # padded, priority
    c += frame(9, 0x04 | 0, 1, req[10:])  # CONTINUATION ends the block
    c += frame(0, 0x08 | 0x01, 1, bytes([3]) + b"body" + bytes(3))  # padded DATA, END_STREAM
    c += frame(1, 0x05, 3, req) + frame(3, 0, 3, struct.pack(">I", 8))  # then RST_STREAM
    c += frame(6, 0, 0, bytes(7)) + frame(0xfa, 0, 0, b"xyz") + frame(8, 0, 0, struct.pack(">I", 100))
    s = frame(4, 0, 0, struct.pack(">HI", 1, 8192)) + frame(4, 1, 0, b"")
    s += frame(5, 0x04, 1, struct.pack(">I", 2) + lit(b":method", b"GET") + lit(b":path", b"/p"))
    s += frame(1, 0x04, 1, lit(b":status", b"103")) + frame(1, 0x04, 1, lit(b":status", b"200"))
    s += frame(0, 0, 1, b"ok") + frame(1, 0x05, 1, lit(b"grpc-status", b"0"))
    s += frame(7, 0, 0, struct.pack(">II", 1, 0) + b"bye")
    ops = bytearray([0])
    for d, b in ((0, c), (1, s)):
        ops += bytes([d]) + struct.pack(">H", len(b)) + b
    ops += bytes([7 << 1 | 1 << 4, 0, 0])
    with open(os.path.join(out, "synthetic-frames"), "wb") as f:
        f.write(ops)
    up = bytearray([2]) + bytes([0]) + struct.pack(">H", len(pre)) + pre
    up += bytes([1]) + struct.pack(">H", 20) + frame(4, 0, 0, b"") + frame(1, 0x04, 1, b"\x88")[:11]
    with open(os.path.join(out, "synthetic-upgrade-cut"), "wb") as f:
        f.write(up)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    synthetic(out)
    for path in sys.argv[2:]:
        conns = {}
        order = []
        for link, pkt in packets(path):
            r = tcp(link, pkt)
            if not r:
                continue
            src, dst, flags, payload = r
            key = tuple(sorted([src, dst]))
            if key not in conns:
                conns[key] = {"client": None, "ops": bytearray([0]), "n": 0}
                order.append(key)
            c = conns[key]
            if c["client"] is None and flags & 0x02 and not flags & 0x10:
                c["client"] = src
            if not payload or c["n"] >= LIMIT:
                continue
            d = 0 if src == c["client"] else 1
            payload = payload[:LIMIT - c["n"]]
            c["ops"] += bytes([d]) + struct.pack(">H", len(payload)) + payload
            c["n"] += len(payload)
        base = os.path.splitext(os.path.basename(path))[0]
        for i, key in enumerate(order[:2]):
            ops = conns[key]["ops"] + bytes([7 << 1 | 1 << 4, 0, 0])
            with open(os.path.join(out, "%s-%d" % (base, i)), "wb") as f:
                f.write(ops)


if __name__ == "__main__":
    main()
