#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tshark oracle: the canonical transaction list of a pcap, as tshark sees it.

Usage: tshark_oracle.py [--flags] [--count-requests] FILE.pcap

Prints one JSON line per HTTP/1.x transaction with the keys
method, target, status, req_body_len, resp_body_len (and, with --flags,
"flags": ["no_response"] for a request tshark saw no answer to, else []),
in the canonical order of tests/golden/README.md: connections ordered by the
capture time of their first request, transactions in request order inside a
connection. With --count-requests it prints only the number of requests.

How tshark is asked (Wireshark 4.0):
  tshark -r FILE -Y http -T json -x --no-duplicate-keys
         -o http.decompress_body:FALSE -o http.dechunk_body:TRUE
         -o tcp.reassemble_out_of_order:TRUE (and the desegment options on)
  - tcp.reassemble_out_of_order on (off by default in 4.0: a request whose
    segments arrive swapped is then not reported at all); harmless on
    complete in-order captures.
  - decompress_body off: body lengths are those of the entity as sent
    (gzip bytes), never the decoded content; dechunk_body on: chunked bodies
    are measured after removing the chunk framing (RFC 9112 section 7.1).
  - Body length of a message, in this order: chunked -> sum of the
    http.chunk_size fields; else the length of http.file_data's raw bytes
    (the 3rd element of http.file_data_raw, exact even for binary bodies,
    unlike the escaped FT_STRING value of -T fields); else, when the message
    has Content-Length and can carry a body, that value (tshark adds no
    file_data for content-encoded bodies when decompression is off);
    else 0. A response to HEAD, a 1xx, 204 or 304 has no body.
  - Pairing: per tcp.stream, the i-th request with the i-th final (non-1xx)
    response (RFC 9112 section 9.3.2: responses come in request order).
    http.request_in cannot be used alone: with pipelining, three requests in
    one frame share one frame number (and http.response_in needs a second
    pass, -2, which this oracle does not need).
References: RFC 9110 section 6.4.1 (bodies of HEAD/1xx/204/304 responses).
"""
import json
import subprocess
import sys

TSHARK_ARGS = [
    "-Y",
    "http",
    "-T",
    "json",
    "-x",
    "--no-duplicate-keys",
    "-o",
    "http.decompress_body:FALSE",
    "-o",
    "http.dechunk_body:TRUE",
    "-o",
    "tcp.desegment_tcp_streams:TRUE",
    "-o",
    "tcp.reassemble_out_of_order:TRUE",
    "-o",
    "http.desegment_headers:TRUE",
    "-o",
    "http.desegment_body:TRUE",
]


def _walk(obj, key, out):
    """Collect every value stored under @key anywhere below @obj."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                if isinstance(v, list) and not (key.endswith("_raw") and v and not isinstance(v[0], list)):
                    out.extend(v)
                else:
                    out.append(v)
            else:
                _walk(v, key, out)
    elif isinstance(obj, list):
        for x in obj:
            _walk(x, key, out)
    return out


def _first(obj, key):
    vals = _walk(obj, key, [])
    return vals[0] if vals else None


def _as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _messages(path):
    """Yield (frame, stream, ts, http_layer) for every HTTP message tshark reports."""
    cmd = ["tshark", "-r", path] + TSHARK_ARGS
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if res.returncode != 0:
        sys.exit("tshark_oracle: tshark failed (%d): %s" % (res.returncode, res.stderr.decode(errors="replace")))
    text = res.stdout.decode("utf-8", errors="replace").strip()
    pkts = json.loads(text) if text else []
    for p in pkts:
        layers = p["_source"]["layers"]
        frame = int(_first(layers.get("frame"), "frame.number"))
        ts = float(_first(layers.get("frame"), "frame.time_epoch"))
        tcp = layers.get("tcp")
        if isinstance(tcp, list):
            tcp = tcp[0]
        if tcp is None:
            continue  # HTTP over UDP (SSDP): not ours
        stream = int(_first(tcp, "tcp.stream"))
        for h in _as_list(layers.get("http")):
            yield frame, stream, ts, h


def _body_len(h, no_body):
    if no_body:
        return 0
    sizes = _walk(h, "http.chunk_size", [])
    if sizes:
        return sum(int(s) for s in sizes)
    raw = _walk(h, "http.file_data_raw", [])
    if raw:
        r = raw[0]
        return int(r[2])
    cl = _first(h, "http.content_length")
    if cl is not None:
        return int(cl)
    return 0


def transactions(path):
    """The canonical list of dicts (method, target, status, req/resp body length)."""
    reqs = {}  # stream -> list of [ts, method, target, req_len]
    resps = {}  # stream -> list of (status, h)
    for frame, stream, ts, h in _messages(path):
        method = _first(h, "http.request.method")
        code = _first(h, "http.response.code")
        if method is not None:
            reqs.setdefault(stream, []).append(
                {
                    "ts": ts,
                    "frame": frame,
                    "method": method,
                    "target": _first(h, "http.request.uri"),
                    "req_body_len": _body_len(h, False),
                }
            )
        elif code is not None:
            code = int(code)
            if 100 <= code < 200 and code != 101:
                continue  # interim responses are not transactions
            resps.setdefault(stream, []).append((code, h))
    out = []
    for stream in sorted(reqs, key=lambda s: (reqs[s][0]["ts"], s)):
        rs = resps.get(stream, [])
        for i, rq in enumerate(reqs[stream]):
            t = {
                "method": rq["method"],
                "target": rq["target"],
                "status": None,
                "req_body_len": rq["req_body_len"],
                "resp_body_len": None,
            }
            if i < len(rs):
                code, h = rs[i]
                no_body = rq["method"] == "HEAD" or code in (204, 304) or 100 <= code < 200
                t["status"] = code
                t["resp_body_len"] = _body_len(h, no_body)
            out.append(t)
        for code, _ in rs[len(reqs[stream]) :]:
            sys.stderr.write("tshark_oracle: stream %d: response %d without a request\n" % (stream, code))
    return out


def main(argv):
    flags = "--flags" in argv
    count = "--count-requests" in argv
    files = [a for a in argv[1:] if not a.startswith("--")]
    if len(files) != 1:
        sys.exit(__doc__.split("\n\n")[1])
    txns = transactions(files[0])
    if count:
        print(len(txns))
        return 0
    for t in txns:
        if flags:
            t["flags"] = ["no_response"] if t["status"] is None else []
        print(json.dumps(t, separators=(", ", ": ")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
