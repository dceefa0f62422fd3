#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generator of the synthetic TCP/HTTP edge cases of tests/golden/edge-*/.

Writes classic pcap files (LINKTYPE_ETHERNET, microsecond timestamps) with
correct IPv4 header and TCP checksums, deterministically: the same bytes on
every run (fixed timestamps, ISNs and IP ids), so the committed input.pcap
files can be checked against a fresh run (test golden-gen-reproducible).

Each case is one or more TCP connections between 127.0.0.1:4000x (client)
and 127.0.0.1:8080 (server), built from a ground truth: the exact byte
streams each side sent. The capture is then made imperfect on purpose
(reordered, duplicated, overlapping-with-different-bytes, missing,
wrapped-around sequence numbers, no handshake, reset, unanswered).
`--truth` prints the ground truth transactions each case encodes; the
expected.jsonl files were written from it by hand (see each README).

Usage: gen_edge.py [--out DIR] [--truth | --check] [CASE...]
       (default DIR: the directory of this script; default: every case)
  --check  write nothing; TAP output, one test per case: the file in DIR
           equals what this generator writes now (byte for byte).
References: RFC 9293 (TCP, sequence space arithmetic, section 3.4),
RFC 791 / RFC 1071 (checksums), RFC 9112 (HTTP/1.1 message framing),
pcap format: https://www.tcpdump.org/manpages/pcap-savefile.5.html
"""
import os
import struct
import sys

BASE_TS_US = 1767225600 * 1000000  # 2026-01-01T00:00:00Z
CLIENT_IP = bytes([127, 0, 0, 1])
SERVER_IP = bytes([127, 0, 0, 1])
SERVER_PORT = 8080

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def csum(data):
    """RFC 1071 internet checksum."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


class Pcap:
    """Collects packets; timestamps advance 1 ms per packet from BASE_TS_US."""

    def __init__(self):
        self.pkts = []
        self.ipid = 1000

    def tcp(self, src, sport, dst, dport, seq, ack, flags, payload=b"", win=65483):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, win, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        c = csum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        self.ipid = (self.ipid + 1) & 0xFFFF
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self.ipid, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        eth = b"\0" * 12 + b"\x08\x00"
        self.pkts.append(eth + ip + tcp + payload)

    def bytes(self):
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
        for i, p in enumerate(self.pkts):
            ts = BASE_TS_US + i * 1000
            out.append(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(p), len(p)))
            out.append(p)
        return b"".join(out)


class Conn:
    """One TCP connection. Offsets are 0-based stream offsets of each side's
    payload; sequence numbers are isn + 1 + offset modulo 2^32."""

    def __init__(self, pcap, cport, cisn, sisn):
        self.p, self.cport, self.cisn, self.sisn = pcap, cport, cisn, sisn
        self.cnext = 0  # client bytes the server has acknowledged (ground truth)
        self.snext = 0

    def handshake(self):
        self.p.tcp(CLIENT_IP, self.cport, SERVER_IP, SERVER_PORT, self.cisn, 0, SYN)
        self.p.tcp(SERVER_IP, SERVER_PORT, CLIENT_IP, self.cport, self.sisn, self.cisn + 1, SYN | ACK)
        self.p.tcp(CLIENT_IP, self.cport, SERVER_IP, SERVER_PORT, self.cisn + 1, self.sisn + 1, ACK)

    def c(self, off, data, flags=PSH | ACK):
        """Client segment carrying @data at client stream offset @off."""
        self.p.tcp(CLIENT_IP, self.cport, SERVER_IP, SERVER_PORT, self.cisn + 1 + off, self.sisn + 1 + self.snext, flags, data)
        self.cnext = max(self.cnext, off + len(data))

    def s(self, off, data, flags=PSH | ACK):
        self.p.tcp(SERVER_IP, SERVER_PORT, CLIENT_IP, self.cport, self.sisn + 1 + off, self.cisn + 1 + self.cnext, flags, data)
        self.snext = max(self.snext, off + len(data))

    def c_ack(self):
        self.p.tcp(CLIENT_IP, self.cport, SERVER_IP, SERVER_PORT, self.cisn + 1 + self.cnext, self.sisn + 1 + self.snext, ACK)

    def s_ack(self):
        self.p.tcp(SERVER_IP, SERVER_PORT, CLIENT_IP, self.cport, self.sisn + 1 + self.snext, self.cisn + 1 + self.cnext, ACK)

    def close(self):
        """Client FIN, server FIN, client ACK."""
        self.c(self.cnext, b"", FIN | ACK)
        self.p.tcp(SERVER_IP, SERVER_PORT, CLIENT_IP, self.cport, self.sisn + 1 + self.snext, self.cisn + 2 + self.cnext, FIN | ACK)
        self.p.tcp(CLIENT_IP, self.cport, SERVER_IP, SERVER_PORT, self.cisn + 2 + self.cnext, self.sisn + 2 + self.snext, ACK)


def request(method, target, body=b"", extra=""):
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: gen-edge/1\r\n%s" % (method, target, extra)
    if body:
        head += "Content-Length: %d\r\nContent-Type: application/octet-stream\r\n" % len(body)
    return (head + "\r\n").encode() + body


def response(status, body, reason="OK"):
    head = "HTTP/1.1 %d %s\r\nServer: gen-edge/1\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (status, reason, len(body))
    return head.encode(), body


def pattern(n, seed):
    """Deterministic printable body bytes."""
    alpha = b"abcdefghijklmnopqrstuvwxyz0123456789"
    return bytes(alpha[(i * 7 + seed) % len(alpha)] for i in range(n))


def T(method, target, status, req_len, resp_len, flags=()):
    return {
        "method": method,
        "target": target,
        "status": status,
        "req_body_len": req_len,
        "resp_body_len": resp_len,
        "flags": sorted(flags),
    }


def send_plain(conn, req, head, body, seg=1000):
    """Client sends @req, server acks and answers head+body in @seg-byte segments."""
    if req:
        conn.c(conn.cnext, req)
        conn.s_ack()
    data = head + body
    base = conn.snext
    for i in range(0, len(data), seg):
        conn.s(base + i, data[i : i + seg])
    conn.c_ack()


# ---------------------------------------------------------------- cases


def case_reorder(p):
    """Request split in two segments that arrive swapped; response body
    segments arrive 1, 3, 2; everything present."""
    c = Conn(p, 40001, 0x11111111, 0x22222222)
    c.handshake()
    req = request("GET", "/reorder/check")
    c.c(20, req[20:])
    c.c(0, req[:20])
    c.s_ack()
    head, body = response(200, pattern(3000, 1))
    data = head + body
    c.s(0, data[:1100])
    c.s(2100, data[2100:])
    c.s(1100, data[1100:2100])
    c.c_ack()
    send_plain(c, request("GET", "/reorder/next"), *response(200, b"next\n"))
    c.close()
    return [T("GET", "/reorder/check", 200, 0, 3000), T("GET", "/reorder/next", 200, 0, 5)]


def case_duplicate(p):
    """Exact retransmissions: the SYN, a request segment, the response
    header segment and a body segment each appear twice."""
    c = Conn(p, 40002, 0x33333333, 0x44444444)
    c.p.tcp(CLIENT_IP, c.cport, SERVER_IP, SERVER_PORT, c.cisn, 0, SYN)
    c.handshake()
    req = request("POST", "/dup/upload", pattern(500, 2))
    c.c(0, req[:100])
    c.c(0, req[:100])
    c.c(100, req[100:])
    c.s_ack()
    head, body = response(201, pattern(2500, 3), "Created")
    data = head + body
    c.s(0, data[:1000])
    c.s(0, data[:1000])
    c.s(1000, data[1000:2000])
    c.s(2000, data[2000:])
    c.s(1000, data[1000:2000])
    c.c_ack()
    send_plain(c, request("GET", "/dup/next"), *response(200, b"next\n"))
    c.close()
    return [T("POST", "/dup/upload", 201, 500, 2500), T("GET", "/dup/next", 200, 0, 5)]


def case_overlap_diff(p):
    """Retransmissions that overlap earlier data with DIFFERENT bytes.
    Policy checked: first seen wins (bytes already received - in order or
    held out of order - are kept; only the new part of a segment is used).
    txn 1: the request's target, then a retransmission rewriting it;
    txn 2: the response status line, then a longer retransmission with
           another status; txn 3: out-of-order data first, then a segment
           covering it with other bytes."""
    c = Conn(p, 40003, 0x55555555, 0x66666666)
    c.handshake()
    # txn 1: first copy says /first/aaaa, the overlapping retransmission /first/bbbb.
    req = request("GET", "/first/aaaa")
    alt = request("GET", "/first/bbbb")
    assert len(req) == len(alt)
    c.c(0, req[:15])  # "GET /first/aaaa"
    c.c(4, alt[4:30])  # overlaps [4, 15) with "/first/bbbb", adds [15, 30)
    c.c(30, req[30:])
    c.s_ack()
    send_resp = response(200, pattern(10, 4))
    c.s(0, send_resp[0] + send_resp[1])
    c.c_ack()
    # txn 2: server's first segment carries a partial status line "HTTP/1.1 200";
    # the retransmission covers it with "HTTP/1.1 404" plus the rest.
    o = c.cnext
    c.c(o, request("GET", "/second"))
    c.s_ack()
    head, body = response(200, pattern(20, 5))
    head404 = head.replace(b"200 OK", b"404 OK")
    base = c.snext
    c.s(base, head[:12])
    c.s(base, head404 + body)
    c.c_ack()
    # txn 3: bytes [8, 40) of the request arrive first (out of order), then
    # a segment for [0, 40) whose bytes [8, 40) differ (kept -> lost).
    req3 = request("GET", "/third/kept-kept-kept")
    alt3 = request("GET", "/third/lost-lost-lost")
    assert len(req3) == len(alt3)
    o = c.cnext
    c.c(o + 8, req3[8:40])
    c.c(o, alt3[:40])
    c.c(o + 40, req3[40:])
    c.s_ack()
    send_plain(c, b"", *response(200, b"third\n"))
    c.close()
    return [
        T("GET", "/first/aaaa", 200, 0, 10),
        T("GET", "/second", 200, 0, 20),
        T("GET", "/third/kept-kept-kept", 200, 0, 6),
    ]


def case_gap(p):
    """The second of three 1000-byte response body segments is missing from
    the capture (the client still acknowledges it, as on a real wire). A
    second transaction follows on the same connection."""
    c = Conn(p, 40004, 0x77777777, 0x01234567)
    c.handshake()
    c.c(0, request("GET", "/gap/body"))
    c.s_ack()
    head, body = response(200, pattern(3000, 6))
    c.s(0, head)
    c.s(len(head), body[:1000])
    c.snext = len(head) + 2000  # [1000, 2000) of the body: never captured
    c.s(len(head) + 2000, body[2000:])
    c.c_ack()
    send_plain(c, request("GET", "/gap/after"), *response(200, b"after\n"))
    c.close()
    return [T("GET", "/gap/body", 200, 0, 3000, ["gap"]), T("GET", "/gap/after", 200, 0, 6)]


def case_wraparound(p):
    """Both ISNs just below 2^32: the request body and the response body
    cross the sequence number wrap (0xffffffff -> 0) in their middle."""
    c = Conn(p, 40005, 0xFFFFFE00, 0xFFFFF000)
    c.handshake()
    req = request("POST", "/wrap/upload", pattern(1200, 7))
    # client data starts at seq 0xfffffe01: 511 bytes before the wrap.
    c.c(0, req[:400])
    c.c(400, req[400:])
    c.s_ack()
    head, body = response(200, pattern(10000, 8))
    data = head + body
    # server data starts at 0xfffff001: 4095 bytes before the wrap; segments of 1460.
    for i in range(0, len(data), 1460):
        c.s(i, data[i : i + 1460])
    c.c_ack()
    send_plain(c, request("GET", "/wrap/after"), *response(200, b"after wrap\n"))
    c.close()
    return [T("POST", "/wrap/upload", 200, 1200, 10000), T("GET", "/wrap/after", 200, 0, 11)]


def case_midstream(p):
    """No handshake in the capture: it starts with a request in an already
    open connection (keep-alive), two transactions, then FIN."""
    c = Conn(p, 40006, 0x10000000, 0x20000000)
    # as if 500 bytes had already gone each way before the capture started
    c.cnext = 500
    c.snext = 700
    send_plain(c, request("GET", "/mid/one"), *response(200, pattern(1500, 9)))
    send_plain(c, request("GET", "/mid/two"), *response(404, b"not here\n", "Not Found"))
    c.close()
    return [
        T("GET", "/mid/one", 200, 0, 1500, ["midstream"]),
        T("GET", "/mid/two", 404, 0, 9, ["midstream"]),
    ]


def case_midstream_tail(p):
    """No handshake, and the capture starts in the middle of a response
    body: first the last 800 bytes of an earlier response (server to
    client), the client's ACK, then a whole keep-alive transaction, FIN."""
    c = Conn(p, 40012, 0x1A000000, 0x2B000000)
    c.cnext = 90
    c.snext = 4000
    # tail of a body whose header is not in the capture; it ends in CRLF like
    # most text bodies, so the next response starts at a line start AND at a
    # segment start: a resync on either finds it.
    c.s(c.snext, pattern(798, 14) + b"\r\n")
    c.c_ack()
    send_plain(c, request("GET", "/tail/next"), *response(200, pattern(1200, 15)))
    c.close()
    return [T("GET", "/tail/next", 200, 0, 1200, ["midstream"])]


def case_rst_mid_body(p):
    """The server announces Content-Length 5000, sends 2000 body bytes, then
    resets the connection."""
    c = Conn(p, 40007, 0x30000000, 0x40000000)
    c.handshake()
    send_plain(c, request("GET", "/rst/first"), *response(200, b"fine\n"))
    o = c.cnext
    c.c(o, request("GET", "/rst/body"))
    c.s_ack()
    head, body = response(200, pattern(5000, 10))
    base = c.snext
    c.s(base, head + body[:1000])
    c.s(base + len(head) + 1000, body[1000:2000])
    c.c_ack()
    c.s(c.snext, b"", RST | ACK)
    return [
        T("GET", "/rst/first", 200, 0, 5),
        T("GET", "/rst/body", 200, 0, 2000, ["incomplete", "reset"]),
    ]


def case_no_response(p):
    """Two connections. 1: one answered request, then a second request the
    server never answers before it closes the connection (FIN).
    2: a request, acknowledged, and the capture ends with the connection
    still open."""
    c = Conn(p, 40008, 0x50000000, 0x60000000)
    c.handshake()
    send_plain(c, request("GET", "/nr/answered"), *response(200, b"yes\n"))
    c.c(c.cnext, request("GET", "/nr/unanswered"))
    c.s_ack()
    # server closes first, client follows
    c.p.tcp(SERVER_IP, SERVER_PORT, CLIENT_IP, c.cport, c.sisn + 1 + c.snext, c.cisn + 1 + c.cnext, FIN | ACK)
    c.snext += 1
    c.c(c.cnext, b"", FIN | ACK)
    c.p.tcp(SERVER_IP, SERVER_PORT, CLIENT_IP, c.cport, c.sisn + 1 + c.snext, c.cisn + 2 + c.cnext, ACK)
    d = Conn(p, 40009, 0x70000000, 0x08000000)
    d.handshake()
    d.c(0, request("POST", "/nr/open", pattern(300, 11)))
    d.s_ack()
    return [
        T("GET", "/nr/answered", 200, 0, 4),
        T("GET", "/nr/unanswered", None, 0, None, ["no_response"]),
        T("POST", "/nr/open", None, 300, None, ["no_response"]),
    ]


def chunked(head_status, chunks, reason="OK"):
    """A chunked response: its head, and the encoded body with the data
    offset and size of every chunk (offsets relative to the body)."""
    head = ("HTTP/1.1 %d %s\r\nServer: gen-edge/1\r\nContent-Type: text/plain\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % (head_status, reason)).encode()
    enc, where = b"", []
    for ch in chunks:
        enc += b"%x\r\n" % len(ch)
        where.append((len(enc), len(ch)))
        enc += ch + b"\r\n"
    enc += b"0\r\n\r\n"
    return head, enc, where


def send_lossy(conn, req, head, enc, lost, seg=1000):
    """Client sends @req; the server answers head + @enc in @seg-byte
    segments, of which those starting at the response offsets in @lost are
    missing from the capture (the client still acknowledges them)."""
    conn.c(conn.cnext, req)
    conn.s_ack()
    data = head + enc
    base = conn.snext
    for i in range(0, len(data), seg):
        if i not in lost:
            conn.s(base + i, data[i : i + seg])
    conn.snext = base + len(data)
    conn.c_ack()


def case_chunked_gap(p):
    """Chunked response bodies that lose segments (docs/capture.md "Gaps"):
    1. a 1000-byte segment inside the second of three 2500-byte chunks:
       bridged like a Content-Length body, body_len exact (7500);
    2. a segment across the end of a 700-byte chunk, the next chunk-size
       line and the start of the chunk after it: the body goes on at the
       following chunk-size line; body_len counts what was seen plus the
       rest of the chunk the gap began in, not the chunk it took whole nor
       the tail of the next, whose size line it took (7 chunks of 700:
       0, 1, 2 and, after the resumption, 5 and 6 count: 3500);
    3. the segment holding the last chunk and the final 0-size chunk: the
       next response on the connection begins, the chunked one ends at the
       gap, flagged, and the next is in step;
    4. a plain response after them, complete."""
    c = Conn(p, 40012, 0x1234ABCD, 0x2345BCDE)
    c.handshake()
    head, enc, _ = chunked(200, [pattern(2500, k) for k in (1, 2, 3)])
    send_lossy(c, request("GET", "/chunk/inside"), head, enc, {len(head) // 1000 * 1000 + 3000})
    head, enc, where = chunked(200, [pattern(700, k) for k in range(7)])
    # the segment starting in chunk 2's data [where[2]], spanning chunk 3
    start = len(head) + where[2][0] + 500
    lost = start // 1000 * 1000
    send_lossy(c, request("GET", "/chunk/across"), head, enc, {lost})
    head, enc, _ = chunked(200, [pattern(900, 9), pattern(600, 8)])
    send_lossy(c, request("GET", "/chunk/end"), head, enc, {1000})
    send_plain(c, request("GET", "/chunk/after"), *response(200, b"after\n"))
    c.close()
    return [
        T("GET", "/chunk/inside", 200, 0, 7500, ["gap"]),
        T("GET", "/chunk/across", 200, 0, 3500, ["gap"]),
        T("GET", "/chunk/end", 200, 0, 900, ["gap"]),
        T("GET", "/chunk/after", 200, 0, 6),
    ]


def case_tunnel(p):
    """Two connections whose HTTP ends in a tunnel. 1: CONNECT answered
    200, then opaque bytes both ways (a TLS-like record each way). 2: GET
    with Upgrade: websocket answered 101, then WebSocket frames both ways
    that happen to contain text looking like HTTP requests and responses,
    which must NOT become transactions."""
    c = Conn(p, 40010, 0x0A000000, 0x0B000000)
    c.handshake()
    c.c(0, b"CONNECT backend.example:443 HTTP/1.1\r\nHost: backend.example:443\r\n\r\n")
    c.s_ack()
    c.s(0, b"HTTP/1.1 200 Connection established\r\n\r\n")
    c.c(c.cnext, bytes([0x16, 0x03, 0x01, 0x00, 0x30]) + pattern(48, 12))
    c.s(c.snext, bytes([0x16, 0x03, 0x03, 0x00, 0x40]) + pattern(64, 13))
    c.c_ack()
    c.close()
    d = Conn(p, 40011, 0x0C000000, 0x0D000000)
    d.handshake()
    d.c(
        0,
        request(
            "GET",
            "/chat",
            extra="Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        ),
    )
    d.s_ack()
    d.s(
        0,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    )
    text = b"GET /not-a-request HTTP/1.1\r\nHost: x\r\n\r\n"
    # masked client text frame (mask key 0) and an unmasked server text frame
    d.c(d.cnext, bytes([0x81, 0x80 | len(text), 0, 0, 0, 0]) + text)
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    d.s(d.snext, bytes([0x81, len(reply)]) + reply)
    d.c_ack()
    d.close()
    return [
        T("CONNECT", "backend.example:443", 200, 0, 0, ["tunnel"]),
        T("GET", "/chat", 101, 0, 0, ["tunnel"]),
    ]


CASES = {
    "edge-reorder": case_reorder,
    "edge-duplicate": case_duplicate,
    "edge-overlap-diff": case_overlap_diff,
    "edge-gap": case_gap,
    "edge-wraparound": case_wraparound,
    "edge-midstream": case_midstream,
    "edge-midstream-tail": case_midstream_tail,
    "edge-rst-mid-body": case_rst_mid_body,
    "edge-no-response": case_no_response,
    "edge-tunnel": case_tunnel,
    "edge-chunked-gap": case_chunked_gap,
}


def main(argv):
    out = os.path.dirname(os.path.abspath(__file__))
    truth = False
    check = False
    names = []
    i = 1
    while i < len(argv):
        if argv[i] == "--out":
            out = argv[i + 1]
            i += 1
        elif argv[i] == "--truth":
            truth = True
        elif argv[i] == "--check":
            check = True
        elif argv[i] in CASES:
            names.append(argv[i])
        else:
            sys.exit("gen_edge: unknown argument %r\n%s" % (argv[i], __doc__.split("\n\n")[3]))
        i += 1
    import json

    names = names or list(CASES)
    if check:
        print("1..%d" % len(names))
    failed = 0
    for n, name in enumerate(names, 1):
        p = Pcap()
        txns = CASES[name](p)
        if check:
            path = os.path.join(out, name, "input.pcap")
            try:
                with open(path, "rb") as f:
                    same = f.read() == p.bytes()
            except OSError:
                same = False
            failed += not same
            print("%s %d - %s%s" % ("ok" if same else "not ok", n, name, "" if same else " (differs from a fresh run)"))
            continue
        if truth:
            print("# " + name)
            for t in txns:
                print(json.dumps(t, separators=(", ", ": ")))
            continue
        os.makedirs(os.path.join(out, name), exist_ok=True)
        with open(os.path.join(out, name, "input.pcap"), "wb") as f:
            f.write(p.bytes())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
