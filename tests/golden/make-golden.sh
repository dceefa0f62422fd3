#!/bin/bash
# SPDX-License-Identifier: MIT
# Re-creates the captured golden cases under tests/golden/<case>/: runs real
# servers (nginx, python3 http.server) and real clients (curl, wrk, a raw
# socket client) on loopback only (127.0.0.1 / ::1, random free ports),
# records them with tcpdump on lo, then writes expected.jsonl from tshark
# (tests/golden/tshark_oracle.py --flags). Review every expected.jsonl by
# hand after a re-capture (git diff) and keep the READMEs in step.
# The synthetic edge cases are made by tests/golden/gen_edge.py instead.
#
# Needs root (tcpdump on lo), nginx, curl, wrk, tcpdump, tshark, python3.
# Usage: tests/golden/make-golden.sh [CASE...]      (default: every captured case)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
gold="$top/tests/golden"
tools="$gold/tools"
work=$(mktemp -d /tmp/make-golden.XXXXXX)
pids=()

cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

log() { echo "make-golden: $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port HOST PORT: until a TCP connect succeeds (10 s at most).
wait_port() {
    python3 - "$1" "$2" <<'EOF'
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
for _ in range(200):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("port %s:%d never opened" % (host, port))
EOF
}

# Static files served by both servers, deterministic content.
make_www() {
    mkdir -p "$work/www/dir"
    python3 - "$work/www" <<'EOF'
import json, random, sys
root = sys.argv[1]
rnd = random.Random(20261126)
words = ["lane", "blue", "canary", "replay", "session", "capture", "golden", "tap"]
text = " ".join(rnd.choice(words) for _ in range(2200))
open(root + "/index.html", "w").write("<!doctype html>\n<html><body><p>" + text + "</p></body></html>\n")
open(root + "/a.txt", "w").write("alpha\n")
open(root + "/b.json", "w").write(json.dumps({"id": 7, "items": list(range(40))}) + "\n")
open(root + "/dir/index.html", "w").write("<html><body>dir</body></html>\n")
open(root + "/blob.bin", "wb").write(bytes(rnd.getrandbits(8) for _ in range(20000)))
open(root + "/post-body.bin", "wb").write(bytes(rnd.getrandbits(8) for _ in range(150000)))
open(root + "/post-small.bin", "wb").write(bytes(rnd.getrandbits(8) for _ in range(40000)))
open(root + "/expect-body.bin", "wb").write(bytes(rnd.getrandbits(8) for _ in range(64000)))
EOF
    # Fixed mtime so Last-Modified / ETag are the same on every re-capture.
    find "$work/www" -type f -exec touch -d '2026-01-02 03:04:05 UTC' {} +
}

# nginx_start LISTEN: nginx with a config generated in $work/nginx-N; sets ngx_pid.
nginx_start() {
    local listen=$1 dir
    dir=$(mktemp -d "$work/nginx-XXXX")
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections 64; }
http {
    access_log $dir/logs/access.log;
    # What nginx itself saw and sent, for cases whose expected list comes
    # from the server rather than tshark (expected_from_nginx).
    log_format golden '\$request_method|\$request_uri|\$status|\$content_length|\$body_bytes_sent';
    access_log $dir/logs/golden.log golden;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types { text/html html; text/plain txt; application/json json; application/octet-stream bin; }
    keepalive_requests 10000;
    server {
        listen $listen;
        root $work/www;
        gzip on;
        gzip_min_length 100;
        gzip_types text/plain application/json;
        location /upload { client_max_body_size 1m; return 200 "upload ok\n"; }
    }
}
EOF
    nginx -p "$dir" -c "$dir/nginx.conf" 2>"$dir/logs/stderr.log" &
    ngx_pid=$!
    ngx_dir=$dir
    pids+=("$ngx_pid")
}

# pyserver_start HOST PORT: tests/golden/tools/golden_server.py; sets py_pid.
pyserver_start() {
    python3 "$tools/golden_server.py" --host "$1" --port "$2" --root "$work/www" \
        >"$work/pyserver-$2.out" 2>"$work/pyserver-$2.log" &
    py_pid=$!
    pids+=("$py_pid")
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# cap_start CASE PORT: tcpdump on lo for that port; returns once it listens.
# --immediate-mode: without it packets still in the TPACKET_V3 block when
# SIGINT arrives are never written ("0 packets captured").
cap_start() {
    cap_case=$1
    cap_file="$work/$1.pcap"
    tcpdump -i lo --immediate-mode -U -Z root -s 0 -w "$cap_file" "tcp port $2" 2>"$work/tcpdump-$1.log" &
    cap_pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$work/tcpdump-$1.log" && break
        sleep 0.05
    done
    grep -q "listening on" "$work/tcpdump-$1.log" || {
        cat "$work/tcpdump-$1.log" >&2
        exit 1
    }
}

# cap_stop: SIGINT tcpdump, install the capture and its tshark-derived expected.
cap_stop() {
    sleep 0.5
    kill -INT "$cap_pid"
    wait "$cap_pid" || true
    grep -E "captured|dropped" "$work/tcpdump-$cap_case.log" >&2
    # A capture with a hole is no golden case: tcpdump must have dropped
    # nothing and tshark must see every segment.
    if ! grep -q "^0 packets dropped by kernel" "$work/tcpdump-$cap_case.log"; then
        log "$cap_case: tcpdump dropped packets, capture rejected"
        cap_ok=0
        return 0
    fi
    local lost
    lost=$(tshark -r "$cap_file" -Y 'tcp.analysis.lost_segment or tcp.analysis.ack_lost_segment' 2>/dev/null | wc -l)
    if [ "$lost" -ne 0 ]; then
        log "$cap_case: tshark reports $lost lost segments, capture rejected"
        cap_ok=0
        return 0
    fi
    cap_ok=1
    mkdir -p "$gold/$cap_case"
    cp "$cap_file" "$gold/$cap_case/input.pcap"
    if [ -n "${cap_expected:-}" ]; then
        "$cap_expected" >"$gold/$cap_case/expected.jsonl"
        cap_expected=
    else
        python3 "$gold/tshark_oracle.py" --flags "$gold/$cap_case/input.pcap" >"$gold/$cap_case/expected.jsonl"
    fi
    log "$cap_case: $(stat -c %s "$gold/$cap_case/input.pcap") bytes," \
        "$(wc -l <"$gold/$cap_case/expected.jsonl") transactions"
}

curl_q() { curl -sS "$@" >/dev/null; }

case_curl_keepalive_python() {
    local p
    p=$(free_port)
    pyserver_start 127.0.0.1 "$p"
    wait_port 127.0.0.1 "$p"
    cap_start curl-keepalive-python "$p"
    curl_q "http://127.0.0.1:$p/a.txt" "http://127.0.0.1:$p/b.json" \
        "http://127.0.0.1:$p/index.html" "http://127.0.0.1:$p/missing.txt" \
        "http://127.0.0.1:$p/dir/"
    cap_stop
    stop_pid "$py_pid"
}

case_nginx_static() {
    local p
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    cap_start nginx-static "$p"
    curl_q "http://127.0.0.1:$p/index.html" "http://127.0.0.1:$p/blob.bin" \
        "http://127.0.0.1:$p/dir" "http://127.0.0.1:$p/nope"
    curl_q "http://127.0.0.1:$p/dir/" "http://127.0.0.1:$p/a.txt"
    cap_stop
    stop_pid "$ngx_pid"
}

case_nginx_gzip_chunked() {
    local p
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    cap_start nginx-gzip-chunked "$p"
    # gzip on: nginx compresses on the fly and sends chunked; a.txt is under
    # gzip_min_length and goes out plain with Content-Length.
    curl_q --compressed "http://127.0.0.1:$p/index.html" "http://127.0.0.1:$p/b.json" \
        "http://127.0.0.1:$p/a.txt"
    cap_stop
    stop_pid "$ngx_pid"
}

case_python_chunked() {
    local p
    p=$(free_port)
    pyserver_start 127.0.0.1 "$p"
    wait_port 127.0.0.1 "$p"
    cap_start python-chunked "$p"
    curl_q "http://127.0.0.1:$p/chunked" "http://127.0.0.1:$p/a.txt" "http://127.0.0.1:$p/chunked"
    cap_stop
    stop_pid "$py_pid"
}

case_nginx_conditional_304() {
    local p lm etag u
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    u="http://127.0.0.1:$p/b.json"
    lm=$(curl -sSI "$u" | tr -d '\r' | sed -n 's/^Last-Modified: //Ip')
    etag=$(curl -sSI "$u" | tr -d '\r' | sed -n 's/^ETag: //Ip')
    cap_start nginx-conditional-304 "$p"
    curl_q "$u" \
        --next -o /dev/null -H "If-Modified-Since: $lm" "$u" \
        --next -o /dev/null -H "If-None-Match: $etag" "$u" \
        --next -o /dev/null -H 'If-None-Match: "not-the-etag"' "$u"
    cap_stop
    stop_pid "$ngx_pid"
}

case_nginx_head() {
    local p u
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    u="http://127.0.0.1:$p"
    cap_start nginx-head "$p"
    # HEAD then GET then HEAD on one connection: the HEAD answers carry
    # Content-Length but no body.
    curl_q -I "$u/index.html" --next -o /dev/null "$u/index.html" \
        --next -o /dev/null -I "$u/blob.bin" --next -o /dev/null "$u/a.txt"
    cap_stop
    stop_pid "$ngx_pid"
}

case_python_post_large() {
    local p u
    p=$(free_port)
    pyserver_start 127.0.0.1 "$p"
    wait_port 127.0.0.1 "$p"
    u="http://127.0.0.1:$p"
    cap_start python-post-large "$p"
    # -H 'Expect:' keeps curl from adding Expect: 100-continue on its own.
    curl_q -H 'Expect:' -H 'Content-Type: application/octet-stream' \
        --data-binary "@$work/www/post-body.bin" "$u/echo" --next -o /dev/null "$u/a.txt"
    cap_stop
    stop_pid "$py_pid"
}

case_nginx_post_early_response() {
    local p u
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    u="http://127.0.0.1:$p"
    cap_start nginx-post-early-response "$p"
    # The POST body is sent in three parts, the last two only after nginx
    # has answered: the response precedes the end of its request.
    python3 "$tools/early_response_client.py" 127.0.0.1 "$p" /upload 40000 /a.txt >&2
    cap_stop
    stop_pid "$ngx_pid"
}

case_expect_100_continue() {
    local p u
    p=$(free_port)
    pyserver_start 127.0.0.1 "$p"
    wait_port 127.0.0.1 "$p"
    u="http://127.0.0.1:$p"
    cap_start expect-100-continue "$p"
    curl_q -H 'Expect: 100-continue' --data-binary "@$work/www/expect-body.bin" "$u/echo" \
        --next -o /dev/null "$u/a.txt"
    cap_stop
    stop_pid "$py_pid"
}

case_nginx_ipv6() {
    local p
    p=$(free_port)
    nginx_start "[::1]:$p"
    wait_port ::1 "$p"
    cap_start nginx-ipv6 "$p"
    curl_q -g "http://[::1]:$p/a.txt" "http://[::1]:$p/b.json" "http://[::1]:$p/blob.bin"
    cap_stop
    stop_pid "$ngx_pid"
}

case_pipeline_raw() {
    local p
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    cap_start pipeline-raw "$p"
    python3 "$tools/pipeline_client.py" 127.0.0.1 "$p" /a.txt /nope /b.json >&2
    cap_stop
    stop_pid "$ngx_pid"
}

case_wrk_nginx() {
    local p
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    # A 25 ms think time per request keeps the capture to a few dozen
    # transactions instead of tens of thousands (wrk takes whole seconds).
    echo 'function delay() return 25 end' >"$work/delay.lua"
    cap_start wrk-nginx "$p"
    wrk -t1 -c2 -d1s -s "$work/delay.lua" "http://127.0.0.1:$p/b.json" >&2
    cap_stop
    stop_pid "$ngx_pid"
}

case_http10_close() {
    local p
    p=$(free_port)
    pyserver_start 127.0.0.1 "$p"
    wait_port 127.0.0.1 "$p"
    cap_start http10-close "$p"
    # curl -0: HTTP/1.0 requests, one connection each; /nolength has no
    # Content-Length, its body ends when the server closes.
    curl_q -0 "http://127.0.0.1:$p/b.json"
    curl_q -0 "http://127.0.0.1:$p/nolength"
    cap_stop
    stop_pid "$py_pid"
}

# expected_from_nginx: the canonical lines from nginx's own log (status and
# body bytes sent, one line per request in order) and the requests the case
# sent ($ngx_requests: "METHOD TARGET REQ_BODY_LEN" per line, in order; the
# log has "-" for a request line nginx could not parse). Flags: none.
expected_from_nginx() {
    sleep 0.3 # nginx writes its log line after the response
    python3 - "$ngx_dir/logs/golden.log" "$ngx_requests" <<'EOF'
import json, sys
log = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
sent = [l.split() for l in sys.argv[2].strip().splitlines()]
assert len(log) == len(sent), (log, sent)
for (m, t, n), (lm, lt, st, _, bb) in zip(sent, log):
    assert lm in (m, "-") and lt in (t, "-"), (m, t, lm, lt)
    print(json.dumps({"method": m, "target": t, "status": int(st), "req_body_len": int(n),
                      "resp_body_len": 0 if m == "HEAD" else int(bb), "flags": []}))
EOF
}

# Extension methods (RFC 9110 section 9.1: any token) on one keep-alive
# connection: nginx answers 405 to the ones it does not serve, 200 to GET,
# and 400 (then closes) to the lowercase "get", which its parser refuses.
# tshark does not know CCM_POST or X-MS-ENUMATTS: the expected list comes
# from curl's command line and nginx's log.
case_ext_methods() {
    local p u
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    u="http://127.0.0.1:$p"
    cap_start ext-methods "$p"
    curl_q -X CCM_POST -H 'Content-Type: text/plain' --data-binary 'ccm body' "$u/a.txt" \
        --next -X PROPFIND -H 'Depth: 1' "$u/dir/" \
        --next -X X-MS-ENUMATTS "$u/a.txt" \
        --next -X BREW "$u/b.json" \
        --next "$u/a.txt" \
        --next -X get "$u/a.txt" || true
    ngx_requests="CCM_POST /a.txt 8
PROPFIND /dir/ 0
X-MS-ENUMATTS /a.txt 0
BREW /b.json 0
GET /a.txt 0
get /a.txt 0"
    cap_expected=expected_from_nginx
    cap_stop
    stop_pid "$ngx_pid"
}

# Answers without a request line of HTTP/1.x: an HTTP/0.9 request (a raw
# socket sends "GET /a.txt" CRLF; nginx answers the bare file and closes)
# and curl speaking TLS to the plain-HTTP port (nginx answers 400 to the
# ClientHello and closes). Expected from nginx's log and RFC 1945 §4.1.
case_http09_tls_nginx() {
    local p
    p=$(free_port)
    nginx_start "127.0.0.1:$p"
    wait_port 127.0.0.1 "$p"
    cap_start http09-tls-nginx "$p"
    python3 - "$p" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /a.txt\r\n")
while s.recv(65536):
    pass
s.close()
EOF
    sleep 0.2
    curl -sS -k "https://127.0.0.1:$p/a.txt" 2>/dev/null || true
    cap_expected=expected_http09_tls
    cap_stop
    stop_pid "$ngx_pid"
}

# The two lines of http09-tls-nginx: the TLS connection first (its only
# session has no request, so it sorts first in the canonical order).
expected_http09_tls() {
    sleep 0.3
    python3 - "$ngx_dir/logs/golden.log" <<'EOF'
import json, sys
log = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
assert [l[:3] for l in log] == [["GET", "/a.txt", "200"], ["-", "-", "400"]], log
print(json.dumps({"method": "", "target": "", "status": 400, "req_body_len": 0,
                  "resp_body_len": int(log[1][4]), "flags": ["no_request", "parse_error"]}))
print(json.dumps({"method": "GET", "target": "/a.txt", "status": 0, "req_body_len": 0,
                  "resp_body_len": int(log[0][4]), "flags": ["http09"]}))
EOF
}

all_cases="curl-keepalive-python nginx-static nginx-gzip-chunked python-chunked
 nginx-conditional-304 nginx-head python-post-large nginx-post-early-response
 expect-100-continue nginx-ipv6 pipeline-raw wrk-nginx http10-close ext-methods
 http09-tls-nginx"

[ "$(id -u)" -eq 0 ] || {
    log "needs root for tcpdump on lo"
    exit 1
}
make_www
# shellcheck disable=SC2086 # case names are single words
[ $# -gt 0 ] || set -- $all_cases
for c in "$@"; do
    for attempt in 1 2 3; do
        log "capturing $c (attempt $attempt)"
        cap_ok=0
        "case_${c//-/_}"
        [ "$cap_ok" -eq 1 ] && break
    done
    [ "$cap_ok" -eq 1 ] || {
        log "$c: no complete capture after 3 attempts"
        exit 1
    }
done
log "done; review: git diff -- tests/golden"
