#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw-socket HTTP/1.1 pipelining client used by tests/golden/make-golden.sh.

Sends every request in ONE write (one TCP segment on loopback), the last one
with "Connection: close", then reads until the server closes and prints how
many status lines it saw. Used to capture real pipelined traffic
(RFC 9112 section 9.3.2: responses come back in request order).

Usage: pipeline_client.py HOST PORT PATH [PATH...]
"""
import socket
import sys


def main():
    host, port, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    reqs = []
    for i, p in enumerate(paths):
        last = i == len(paths) - 1
        reqs.append(
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: pipeline-client/1\r\n"
            "Accept: */*\r\n%s\r\n" % (p, host, port, "Connection: close\r\n" if last else "")
        )
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall("".join(reqs).encode())
    data = b""
    while True:
        got = s.recv(65536)
        if not got:
            break
        data += got
    s.close()
    print("pipeline_client: %d bytes, %d status lines" % (len(data), data.count(b"HTTP/1.1 ")))


if __name__ == "__main__":
    main()
