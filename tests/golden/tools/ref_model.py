#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reference model: a small, slow, independent pcap -> transactions reader.

It implements the policies tests/golden/README.md states (first seen wins
on overlaps, 64-bit stream offsets across sequence wraparound, gaps inside
bodies of known length, midstream pickup with resynchronisation, tunnels,
RST/close/end-of-capture handling) in the plainest way, to cross-check
every expected.jsonl independently of tshark and of the generator's own
bookkeeping. It is not dyetap and shares no code with it.

Usage: ref_model.py FILE.pcap            prints the canonical lines
       ref_model.py --check CASE_DIR...  TAP: equals CASE/expected.jsonl
Limits: classic pcap, Ethernet, IPv4/IPv6 without extension headers, TCP;
bodies in memory (fine for the golden cases, not for big captures).
References: RFC 9293 section 3.4 (sequence numbers), RFC 9112 sections 6
(message body length) and 9.3 (pipelining), RFC 9110 section 9.3.6 (CONNECT).
"""
import json
import os
import re
import struct
import sys

# A method is any RFC 9110 token (section 9.1), extension methods included.
METHOD_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64} [^ \r\n]+ HTTP/1\.[01]\r\n")
STATUS_RE = re.compile(rb"HTTP/1\.[01] [0-9]{3}")
# RFC 1945 section 4.1: an HTTP/0.9 simple request, a line without version.
SIMPLE_RE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}) ([^ \r\n]+)\r?\n")
FIN, SYN, RST = 0x01, 0x02, 0x04


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack(end + "I", data[20:24])[0]
    assert linktype == 1, "ethernet only"
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(end + "IIII", data[pos : pos + 16])
        pkt = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ts = sec * 10**9 + (frac if nano else frac * 1000)
        etype = struct.unpack("!H", pkt[12:14])[0]
        if etype == 0x0800:
            ihl = (pkt[14] & 0x0F) * 4
            total = struct.unpack("!H", pkt[16:18])[0]
            if pkt[23] != 6:
                continue
            src, dst = pkt[26:30], pkt[30:34]
            tcp = pkt[14 + ihl : 14 + total]
        elif etype == 0x86DD:
            plen = struct.unpack("!H", pkt[18:20])[0]
            if pkt[20] != 6:
                continue
            src, dst = pkt[22:38], pkt[38:54]
            tcp = pkt[54 : 54 + plen]
        else:
            continue
        sport, dport, seq, _, off, flags = struct.unpack("!HHIIBB", tcp[:14])
        payload = tcp[(off >> 4) * 4 :]
        yield ts, (src, sport), (dst, dport), seq, flags, payload


class Dir:
    """One direction: first-seen-wins byte store on 64-bit offsets."""

    def __init__(self):
        self.isn = None  # sequence number of stream offset 0
        self.last = None  # last 64-bit absolute sequence seen (for unwrapping)
        self.bytes = {}
        self.first_ts = None

    def absolute(self, seq):
        if self.last is None:
            self.last = seq
            return seq
        d = (seq - (self.last & 0xFFFFFFFF)) & 0xFFFFFFFF
        if d >= 1 << 31:
            d -= 1 << 32
        self.last += d
        return self.last

    def add(self, seq, payload, ts):
        a = self.absolute(seq)
        if self.isn is None:
            self.isn = a
        off = a - self.isn
        for i, b in enumerate(payload):
            if off + i >= 0:
                self.bytes.setdefault(off + i, b)  # first seen wins
        if payload and self.first_ts is None:
            self.first_ts = ts

    def stream(self):
        """(bytes with holes zero-filled, set of missing offsets, length)."""
        if not self.bytes:
            return b"", set(), 0
        n = max(self.bytes) + 1
        buf = bytearray(n)
        missing = set()
        for i in range(n):
            if i in self.bytes:
                buf[i] = self.bytes[i]
            else:
                missing.add(i)
        return bytes(buf), missing, n


def parse_head(buf, pos):
    end = buf.find(b"\r\n\r\n", pos)
    if end < 0:
        return None
    lines = buf[pos:end].decode("latin-1").split("\r\n")
    hdr = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdr[k.strip().lower()] = v.strip()
    return lines[0], hdr, end + 4


CHUNK_LINE_RE = re.compile(rb"[0-9A-Fa-f]{1,16}(;[^\r\n]*)?\r\n")


def next_missing(miss, pos):
    return min((i for i in miss if i >= pos), default=None)


def hunt(buf, q, n, miss, start_re):
    """After bytes lost in a chunked body (from q on): the next chunk-size
    line or message start at a line start, a start after a hole counting
    as one. -> ("chunk"|"msg"|"end", offset)."""
    while q < n and q in miss:
        q += 1
    p = q
    while p < n:
        at_line = p == q or (p - 1) in miss or (buf[p - 2 : p] == b"\r\n" and not {p - 1, p - 2} & miss)
        if at_line and p not in miss:
            if start_re.match(buf, p):
                return "msg", p
            m = CHUNK_LINE_RE.match(buf, p)
            if m and not any(i in miss for i in range(p, m.end())):
                return "chunk", p
        p += 1
    return "end", n


def chunked_body(buf, pos, n, miss, start_re):
    """Chunked body with the loss policy of docs/capture.md ("Gaps"): a
    loss inside a chunk's data is bridged; one running past it counts the
    rest of that chunk and goes on at the next chunk-size line, or ends the
    body at the next message start. -> (body_len, new_pos, complete)."""
    tot = 0
    while True:
        e = buf.find(b"\r\n", pos)
        fm = next_missing(miss, pos)
        if fm is not None and (e < 0 or fm < e + 2):  # the size line was lost
            what, pos = hunt(buf, fm, n, miss, start_re)
            if what == "chunk":
                continue
            return tot, pos, what == "msg"
        if e < 0:
            return tot, n, False
        sz = int(buf[pos:e].split(b";")[0], 16)
        pos = e + 2
        if sz == 0:
            while True:  # trailer section
                e = buf.find(b"\r\n", pos)
                if e < 0:
                    return tot, n, False
                line, pos = buf[pos:e], e + 2
                if not line:
                    return tot, pos, True
        if pos + sz + 2 > n:
            return tot + max(0, n - pos), n, False
        fm = next_missing(miss, pos)
        tot += sz
        if fm is None or fm >= pos + sz + 2 or not any(i in miss for i in range(pos + sz, pos + sz + 2)):
            pos += sz + 2  # seen whole, or lost inside the data only: bridged
            continue
        what, pos = hunt(buf, fm, n, miss, start_re)
        if what != "chunk":
            return tot, pos, what == "msg"


def body(buf, pos, n, hdr, is_resp, close_ok, miss=frozenset(), start_re=None):
    """-> (body_len, new_pos, complete)."""
    if "chunked" in hdr.get("transfer-encoding", "").lower():
        return chunked_body(buf, pos, n, miss, start_re)
    if "content-length" in hdr:
        cl = int(hdr["content-length"])
        if pos + cl > n:
            return n - pos, n, False
        return cl, pos + cl, True
    if is_resp:
        return n - pos, n, close_ok
    return 0, pos, True


def resync(buf, pos, rx):
    """Offset of the next line start at or after pos matching rx."""
    while pos < len(buf):
        if rx.match(buf, pos):
            return pos
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return len(buf)
        pos = nl + 1
    return pos


def conn_txns(c):
    cli, srv = c["dirs"][c["client"]], c["dirs"][c["server"]]
    cb, cmiss, cn = cli.stream()
    sb, smiss, sn = srv.stream()
    mid = not c["syn"]
    reset = c["rst"]
    reqs = []
    pos = resync(cb, 0, METHOD_RE) if mid else 0
    cruft = False
    while pos < cn:
        m09 = SIMPLE_RE.match(cb, pos)
        if m09 and not METHOD_RE.match(cb, pos):
            reqs.append({"method": m09.group(1).decode(), "target": m09.group(2).decode(),
                         "req_body_len": 0, "gap": False, "done": True, "http09": True})
            pos = m09.end()
            continue
        if not METHOD_RE.match(cb, pos):
            cruft = True  # bytes that are no request: nothing of its own
            break
        h = parse_head(cb, pos)
        if h is None:
            break
        first, hdr, p = h
        method, target = first.split(" ")[0], first.split(" ")[1]
        blen, p2, done = body(cb, p, cn, hdr, False, False, cmiss, METHOD_RE)
        gap = any(i in cmiss for i in range(pos, p2))
        reqs.append({"method": method, "target": target, "req_body_len": blen, "gap": gap, "done": done})
        pos = p2
    txns = []
    pos = resync(sb, 0, STATUS_RE) if mid else 0
    tunnel = False
    for rq in reqs:
        t = {"method": rq["method"], "target": rq["target"], "status": None, "req_body_len": rq["req_body_len"], "resp_body_len": None}
        flags = set(["midstream"] if mid else [])
        if rq["gap"]:
            flags.add("gap")
        if tunnel:
            break
        if rq.get("http09") and pos < sn and not sb.startswith(b"HTTP/", pos):
            # the answer is a bare body until the server closes
            t["status"], t["resp_body_len"] = 0, sn - pos
            flags.add("http09")
            pos = sn
            t["flags"] = sorted(flags)
            txns.append(t)
            continue
        if rq.get("http09"):
            flags.add("http09")
        while pos < sn:
            h = parse_head(sb, pos)
            if h is None:
                break
            first, hdr, p = h
            code = int(first.split(" ")[1])
            if 100 <= code < 200 and code != 101:
                pos = p
                continue
            t["status"] = code
            if code == 101 or (rq["method"] == "CONNECT" and 200 <= code < 300):
                t["resp_body_len"] = 0
                flags.add("tunnel")
                tunnel = True
                pos = sn
                break
            if rq["method"] == "HEAD" or code in (204, 304):
                blen, p2, done = 0, p, True
            else:
                blen, p2, done = body(sb, p, sn, hdr, True, c["server_fin"], smiss, STATUS_RE)
            if any(i in smiss for i in range(pos, p2 if done else sn)):
                flags.add("gap")
            if not done:
                flags.add("incomplete")
                if reset:
                    flags.add("reset")
                if smiss:
                    blen = p2 - p - sum(1 for i in smiss if i >= p)
            t["resp_body_len"] = blen
            pos = p2
            break
        if t["status"] is None:
            flags.add("no_response")
        t["flags"] = sorted(flags)
        txns.append(t)
    # Responses left over answer no request seen; after bytes that were no
    # request (e.g. a TLS hello to an HTTP port) they say so.
    while not mid and pos < sn and STATUS_RE.match(sb, pos):
        h = parse_head(sb, pos)
        if h is None:
            break
        first, hdr, p = h
        blen, p2, done = body(sb, p, sn, hdr, True, c["server_fin"], smiss, STATUS_RE)
        flags = {"no_request"} | ({"parse_error"} if cruft else set())
        txns.append({"method": "", "target": "", "status": int(first.split(" ")[1]),
                     "req_body_len": 0, "resp_body_len": blen, "flags": sorted(flags)})
        pos = p2
    return txns


def transactions(path):
    conns = {}
    for ts, a, b, seq, flags, payload in packets(path):
        key = tuple(sorted([a, b]))
        c = conns.setdefault(key, {"dirs": {}, "syn": False, "client": None, "rst": False, "fin": False, "server_fin": False, "order": len(conns)})
        d = c["dirs"].setdefault(a, Dir())
        c["dirs"].setdefault(b, Dir())
        if flags & SYN:
            d.isn = None
            d.last = None
            d.absolute(seq)
            d.isn = d.last + 1
            if not flags & 0x10:
                c["syn"] = True
                c["client"] = a
            continue
        if flags & RST:
            c["rst"] = True
        if flags & FIN:
            c["fin"] = True
            if c["client"] is not None and a != c["client"]:
                c["server_fin"] = True
            c.setdefault("fins", set()).add(a)
        if payload:
            d.add(seq, payload, ts)
            if c["client"] is None and METHOD_RE.match(payload):
                c["client"] = a
    out = []
    for key, c in conns.items():
        if c["client"] is None:
            if not any(d.bytes for d in c["dirs"].values()):
                continue
            c["client"] = max(key, key=lambda e: e[1])  # higher port
        c["server"] = key[0] if key[1] == c["client"] else key[1]
        c["server_fin"] = c["server"] in c.get("fins", set())
        ts = c["dirs"][c["client"]].first_ts or 0
        txns = conn_txns(c)
        if txns and not txns[0]["method"] and not txns[0]["target"]:
            ts = 0  # no request: its time is 0 in the canonical order
        out.append((ts, c["order"], txns))
    out.sort(key=lambda x: (x[0], x[1]))
    return [t for _, _, ts in out for t in ts]


def line(t):
    return json.dumps(t, separators=(", ", ": "))


def main(argv):
    if len(argv) >= 2 and argv[1] == "--check":
        cases = argv[2:]
        print("1..%d" % len(cases))
        bad = 0
        for i, case in enumerate(cases, 1):
            got = [line(t) for t in transactions(os.path.join(case, "input.pcap"))]
            with open(os.path.join(case, "expected.jsonl"), encoding="utf-8") as f:
                want = [line(json.loads(ln)) for ln in f if ln.strip()]
            ok = got == want
            bad += not ok
            print("%s %d - %s" % ("ok" if ok else "not ok", i, os.path.basename(os.path.normpath(case))))
            if not ok:
                for w, g in zip(want + [""] * len(got), got + [""] * len(want)):
                    if w != g:
                        print("#  expected: %s\n#  model:    %s" % (w, g))
        return 1 if bad else 0
    for t in transactions(argv[1]):
        print(line(t))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
