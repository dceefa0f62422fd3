#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/2 capture of hand-made h2c conversations: each case is written as
a pcap here (frames per RFC 9113 §4/§6, header blocks as HPACK literals
without indexing, RFC 7541 §6.2.2, so no table is needed), recorded with
`dyetap record --stats --json`, and its sessions' flags and the h2_
counters are checked against docs/http2.md ("Flags", "Counters") and
docs/format.md §2.1:

* a server that answers in full and then sends RST_STREAM(NO_ERROR)
  before the client ended its request (RFC 9113 §8.1) cuts the request
  short: `reset`, `incomplete`, not a whole session;
* a gap inside a response header block before `:status` decoded leaves
  no response (`gap`, `no_response`, as HTTP/1.x when a gap takes a
  response head); after `:status` the response is kept, `gap`,
  `incomplete`;
* a frame longer than SETTINGS_MAX_FRAME_SIZE (16 384 until the receiver
  raises it) is a bad frame, not an unknown one; a raised setting lets a
  larger frame through;
* who reset a stream mid-response: RST_STREAM(CANCEL) from the client is
  `reset`, from the server (INTERNAL_ERROR) `reset` and `server_reset`;
  replayed to nghttpd serving both paths in full, the one the client
  cancelled is cancelled again once its recorded bytes came ("cancelled
  as recorded"), the one the server reset is the target's to answer:
  answered whole (docs/http2.md "Replay").

  crafted_e2e.py DYETAP
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap_util import finish, free_port, ok  # noqa: E402

DYETAP = sys.argv[1]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS = 0, 1, 3, 4
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid) + payload


def read_preface(c):
    """Read the client connection preface from socket @c: the bytes after
    it, or None when the client closed first; ValueError when the first
    24 bytes are not the preface."""
    buf = b""
    while len(buf) < 24:
        d = c.recv(65536)
        if not d:
            return None
        buf += d
    if buf[:24] != PREFACE:
        raise ValueError("no client preface")
    return buf[24:]


def take_frame(buf):
    """The first whole frame of @buf: ((type, flags, stream id, payload),
    the bytes after it), or (None, @buf) when it is not all there yet."""
    if len(buf) < 9:
        return None, buf
    ln = int.from_bytes(buf[:3], "big")
    if len(buf) < 9 + ln:
        return None, buf
    sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
    return (buf[3], buf[4], sid, buf[9:9 + ln]), buf[9 + ln:]


class HeaderBlocks:
    """Assembles request header blocks from HEADERS and CONTINUATION frames
    (padding and the PRIORITY fields taken off, RFC 9113 §6.2, §6.10)."""

    def __init__(self):
        self.block, self.sid = b"", 0

    def feed(self, ftype, flags, sid, payload):
        """(stream id, header block) when @ftype's frame ends a block, else None."""
        if ftype == 1:
            pad = payload[0] if flags & 0x8 else 0
            payload = payload[1 if flags & 0x8 else 0:len(payload) - pad]
            if flags & 0x20:  # PRIORITY
                payload = payload[5:]
            self.block, self.sid = b"", sid
        self.block += payload
        return (self.sid, self.block) if flags & 0x4 else None  # END_HEADERS


def hpack_int(v, prefix_bits, first=0):
    """RFC 7541 §5.1 integer with an N-bit prefix."""
    top = (1 << prefix_bits) - 1
    if v < top:
        return bytes([first | v])
    out, v = [first | top], v - top
    while v >= 128:
        out.append(v % 128 + 128)
        v //= 128
    return bytes(out + [v])


def block(fields):
    """Literal header fields without indexing, new names, no Huffman."""
    out = b""
    for name, value in fields:
        n, v = name.encode(), value.encode()
        out += b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v
    return out


def headers(sid, fields, end_stream):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, block(fields))


def get(sid, path):
    return headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test"),
                         (":path", path)], True)


def data(sid, payload, end_stream=True):
    return frame(DATA, END_STREAM if end_stream else 0, sid, payload)


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def write_pcap(path, segments):
    """segments: ('c'|'s', bytes[, 'lost']) in wire order; a lost one is
    left out of the file but takes its sequence numbers (a capture gap)."""
    cli, srv = (b"\x0a\x00\x00\x01", 41000), (b"\x0a\x00\x00\x02", 8080)
    seq = {"c": 100, "s": 9000}
    pkts = []

    def tcp(who, flags, payload=b""):
        (sa, sp), (da, dp) = (cli, srv) if who == "c" else (srv, cli)
        other = "s" if who == "c" else "c"
        th = struct.pack(">HHIIBBHHH", sp, dp, seq[who] & 0xffffffff,
                         seq[other] & 0xffffffff, 0x50, flags, 65535, 0, 0)
        ih = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(th) + len(payload), 1, 0x4000, 64,
                         6, 0, sa, da)
        return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ih + th + payload

    pkts.append(tcp("c", 0x02))  # SYN
    seq["c"] += 1
    pkts.append(tcp("s", 0x12))  # SYN-ACK
    seq["s"] += 1
    pkts.append(tcp("c", 0x10))
    for seg in segments:
        who, payload = seg[0], seg[1]
        for off in range(0, len(payload), 1400):
            piece = payload[off:off + 1400]
            if len(seg) < 3:
                pkts.append(tcp(who, 0x18, piece))
            seq[who] += len(piece)
    for who in ("c", "s"):
        pkts.append(tcp(who, 0x11))  # FIN
        seq[who] += 1
    pkts.append(tcp("c", 0x10))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(pkts):
            f.write(struct.pack("<IIII", 1750000000, i * 100, len(p), len(p)) + p)


def record(tmp, name, segments):
    pcap, out = os.path.join(tmp, name + ".pcap"), os.path.join(tmp, name + ".dyt")
    write_pcap(pcap, segments)
    r = subprocess.run([DYETAP, "record", "-r", pcap, "-w", out, "--stats", "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        ok(False, "%s: dyetap record ran" % name, r.stderr)
        return {}, {}
    stats = json.loads(r.stdout)
    r = subprocess.run([DYETAP, "cat", out, "--json"], capture_output=True, text=True, check=True)
    sessions = {}
    for line in r.stdout.splitlines():
        s = json.loads(line)
        sessions[s["stream"]] = s
    return sessions, stats


def h2(stats):
    return {k: v for k, v in stats.items() if k.startswith("h2_") and v}


def case_rst_no_error(tmp):
    post = headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "h2.test"),
                       (":path", "/upload")], False)
    s, st = record(tmp, "rst-no-error", [
        ("c", PREFACE + settings() + post + data(1, b"first", end_stream=False)),
        ("s", settings() + headers(1, [(":status", "413")], False) + data(1, b"too large")
         + frame(RST_STREAM, 0, 1, struct.pack(">I", 0))),
        ("c", get(3, "/after")),
        ("s", headers(3, [(":status", "200")], False) + data(3, b"fine")),
    ])
    one = s.get(1, {})
    ok(one.get("flags") == ["incomplete", "reset", "server_reset"],
       "RST_STREAM(NO_ERROR) from the server after the response, request unfinished: reset, "
       "server_reset, incomplete",
       json.dumps(one))
    ok((one.get("response") or {}).get("status") == 413
       and one["response"]["body_len"] == 9 and one["request"]["body_len"] == 5,
       "... the whole response and the part of the request seen are kept", json.dumps(one))
    ok(s.get(3, {}).get("flags") == [], "... the next stream is whole", json.dumps(s.get(3)))
    ok(st.get("h2_sessions_complete") == 1 and st.get("h2_sessions_emitted") == 2
       and st.get("h2_rst_streams") == 1,
       "... only the whole stream counts in h2_sessions_complete", h2(st))


def case_header_gap(tmp):
    reqs = PREFACE + settings() + get(1, "/a") + get(3, "/b") + get(5, "/c")
    head3 = headers(3, [(":status", "200"), ("x-pad", "p" * 300)], False)
    # lost from inside ":status"'s literal (9-byte frame header, then
    # 0x00, name length, ":status", value length, "200")
    cut = 9 + 1 + 1 + 7 + 1 + 1
    s, st = record(tmp, "hdr-gap-status", [
        ("c", reqs),
        ("s", settings() + headers(1, [(":status", "200")], False) + data(1, b"A")
         + head3[:cut]),
        ("s", head3[cut:cut + 40], "lost"),
        ("s", head3[cut + 40:] + data(3, b"B") + headers(5, [(":status", "200")], True)),
    ])
    ok(s.get(1, {}).get("flags") == [], "gap in a header block: the stream before is whole",
       json.dumps(s.get(1)))
    three = s.get(3, {})
    ok(three.get("response") is None and three.get("flags") == ["gap", "no_response"],
       "gap before :status decoded: no response, gap, no_response", json.dumps(three))
    ok(s.get(5, {}).get("flags") == ["gap", "no_response"],
       "... the stream still open after it: gap, no_response", json.dumps(s.get(5)))
    ok(st.get("h2_no_response") == 2 and st.get("h2_gaps") == 1,
       "... counted in h2_no_response and h2_gaps", h2(st))

    cut = 9 + 13 + 40  # inside x-pad's value: ":status" decoded
    s, st = record(tmp, "hdr-gap-after-status", [
        ("c", reqs),
        ("s", settings() + headers(1, [(":status", "200")], False) + data(1, b"A")
         + head3[:cut]),
        ("s", head3[cut:cut + 40], "lost"),
        ("s", head3[cut + 40:] + data(3, b"B")),
    ])
    three = s.get(3, {})
    resp = three.get("response") or {}
    ok(resp.get("status") == 200 and resp.get("headers") == [[":status", "200"]]
       and three.get("flags") == ["gap", "incomplete"],
       "gap after :status decoded: the response kept with the fields decoded, gap, incomplete",
       json.dumps(three))


def case_frame_size(tmp):
    big = bytes(range(256)) * 80  # 20 480 bytes
    # 0x68656c: "hel" read as a frame length, 6 841 708 bytes
    s, st = record(tmp, "frame-too-large", [
        ("c", PREFACE + settings() + get(1, "/a")),
        ("s", settings() + headers(1, [(":status", "200")], False)),
        ("c", b"hello, this is no frame\r\n" * 4),
        ("s", data(1, b"ok")),
    ])
    ok(st.get("h2_bad_frames") == 1 and not st.get("h2_unknown_frames"),
       "a frame over SETTINGS_MAX_FRAME_SIZE: h2_bad_frames, not h2_unknown_frames", h2(st))
    ok(s.get(1, {}).get("flags") == [] and s[1]["response"]["body_len"] == 2,
       "... skipped: the stream is recorded whole", json.dumps(s.get(1)))

    s, st = record(tmp, "frame-size-raised", [
        ("c", PREFACE + settings([(5, 32768)]) + get(1, "/big")),
        ("s", settings() + headers(1, [(":status", "200")], False) + data(1, big)),
    ])
    one = s.get(1, {})
    ok(one.get("flags") == [] and (one.get("response") or {}).get("body_len") == len(big)
       and not st.get("h2_bad_frames"),
       "a 20 KiB DATA frame after the client raised SETTINGS_MAX_FRAME_SIZE is taken",
       [json.dumps(one)[:300], h2(st)])

    s, st = record(tmp, "frame-size-default", [
        ("c", PREFACE + settings() + get(1, "/big")),
        ("s", settings() + headers(1, [(":status", "200")], False) + data(1, big)),
    ])
    ok(st.get("h2_bad_frames") == 1 and s.get(1, {}).get("flags") == ["incomplete"],
       "... without the setting it is a bad frame; the response never ends: incomplete",
       [json.dumps(s.get(1))[:300], h2(st)])


def case_reset_sides(tmp):
    s, st = record(tmp, "reset-sides", [
        ("c", PREFACE + settings() + get(1, "/by-client") + get(3, "/by-server")),
        ("s", settings() + headers(1, [(":status", "200")], False)
         + data(1, b"first part", end_stream=False)
         + headers(3, [(":status", "200")], False) + data(3, b"first part", end_stream=False)),
        ("c", frame(RST_STREAM, 0, 1, struct.pack(">I", 0x8))),  # CANCEL
        ("s", frame(RST_STREAM, 0, 3, struct.pack(">I", 0x2))),  # INTERNAL_ERROR
    ])
    ok(s.get(1, {}).get("flags") == ["incomplete", "reset"] and
       s.get(3, {}).get("flags") == ["incomplete", "reset", "server_reset"],
       "RST_STREAM mid-response: from the client reset, from the server reset + server_reset",
       [s.get(1, {}).get("flags"), s.get(3, {}).get("flags")])
    if not shutil.which("nghttpd"):
        ok(True, "replay of the two # SKIP nghttpd not installed (nghttp2-server)")
        return
    docs = os.path.join(tmp, "docs")
    os.makedirs(docs)
    for name in ("by-client", "by-server"):
        with open(os.path.join(docs, name), "wb") as f:
            f.write(b"x" * 200000)  # DATA frames of 16 KiB, the last with END_STREAM
    port = free_port()
    srv = subprocess.Popen(["nghttpd", "--no-tls", "-d", docs, str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        res = os.path.join(tmp, "reset-sides-res.dyt")
        r = subprocess.run([DYETAP, "replay", os.path.join(tmp, "reset-sides.dyt"), "-t",
                            "http://127.0.0.1:%d" % port, "-o", res, "--json", "--quiet"],
                           capture_output=True, text=True)
        js = json.loads(r.stdout) if r.stdout.startswith("{") else {}
        c = subprocess.run([DYETAP, "cat", res, "--json", "--type", "result", "--no-body"],
                           capture_output=True, text=True)
        by = {x["session_id"]: x for x in map(json.loads, c.stdout.splitlines())}
        sid = {st_: x["id"] for st_, x in s.items()}
        one, three = by.get(sid.get(1), {}), by.get(sid.get(3), {})
        ok(r.returncode == 0 and js.get("ok") == 2 and
           js.get("counters", {}).get("h2_cancelled_as_recorded") == 1 and
           one.get("error_msg", "").startswith("cancelled as recorded") and
           three.get("error") == "none" and not three.get("error_msg") and
           (three.get("response") or {}).get("body_len") == 200000,
           "replayed: the stream the client cancelled is cancelled again, the one the server "
           "reset is answered whole (200000 bytes)",
           (r.returncode, r.stderr[-300:], js.get("counters", {}).get("h2_cancelled_as_recorded"),
            one.get("error_msg"), three.get("error"), three.get("error_msg"),
            (three.get("response") or {}).get("body_len")))
    finally:
        srv.terminate()
        srv.wait(timeout=5)


def main():
    with tempfile.TemporaryDirectory(prefix="dyetap-h2-crafted-") as tmp:
        case_rst_no_error(tmp)
        case_header_gap(tmp)
        case_frame_size(tmp)
        case_reset_sides(tmp)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
