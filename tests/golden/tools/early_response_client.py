#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw-socket client for a POST whose response arrives before its body ends.

Sends a POST's header block and the first 1000 bytes of a BODY_LEN-byte
body, waits until the server has answered (nginx answers a `return`
location at once and discards the rest of the body), then sends the rest
of the body, then a GET with "Connection: close" on the same connection, and
reads until the server closes. Used by tests/golden/make-golden.sh to capture a
response that precedes the end of its request (RFC 9112 section 9.3: a
server may respond before the request is complete).

Usage: early_response_client.py HOST PORT POST_PATH BODY_LEN GET_PATH
"""
import socket
import sys


def main():
    host, port, post, n, get = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    body = bytes((i * 31 + 7) % 251 for i in range(n))
    head = (
        "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: early-response-client/1\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (post, host, port, n)
    ).encode()
    s = socket.create_connection((host, port))
    s.sendall(head + body[:1000])
    got = b""
    while b"\r\n\r\n" not in got or not got.endswith(b"\n"):
        part = s.recv(65536)
        if not part:
            sys.exit("early_response_client: server closed early")
        got += part
    s.sendall(body[1000 : n // 2])
    s.sendall(body[n // 2 :])
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (get, host, port)).encode())
    while True:
        part = s.recv(65536)
        if not part:
            break
        got += part
    s.close()
    print("early_response_client: %d bytes, %d status lines" % (len(got), got.count(b"HTTP/1.1 ")))


if __name__ == "__main__":
    main()
