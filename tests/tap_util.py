# SPDX-License-Identifier: MIT
"""TAP helpers shared by the Python end-to-end tests (tests/*/..._e2e.py):
numbered `ok`/`not ok` lines with a few lines of detail on failure, the
closing plan line, a free port on 127.0.0.1 (tests talk to loopback
only), a threaded HTTP server there, and stopping the servers a test
started."""
import http.server
import socket
import subprocess
import sys
import threading

_n_tests = 0
_n_failed = 0


def ok(cond, what, detail=None):
    """One TAP line for @cond; on failure up to 20 lines of @detail as comments."""
    global _n_tests, _n_failed
    _n_tests += 1
    if not cond:
        _n_failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (_n_tests, what))
    if not cond and detail is not None:
        for line in str(detail).splitlines()[:20]:
            print("# " + line)
    sys.stdout.flush()
    return cond


def finish():
    """Print the plan line; the exit status: 1 when any check failed."""
    print("1..%d" % _n_tests)
    return 1 if _n_failed else 0


def free_port(avoid=()):
    """A TCP port on 127.0.0.1 that was free a moment ago, not in @avoid
    (the kernel may hand a just released port out again: a test that picks
    a closed "production" port and then a live one must not get both equal)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in avoid:
            return p


def serve_http(handler):
    """A threaded HTTP server on 127.0.0.1 with request handler class @handler,
    serving on a daemon thread: (server, port). server.log starts empty for the
    handler to append to; a client closing mid-request is not an error."""
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    s.daemon_threads = True
    s.handle_error = lambda *a: None
    s.log = []
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s, s.server_address[1]


class LoopbackServer:
    """A raw TCP server on 127.0.0.1 (a free port, self.port): each
    connection accepted is served on its own daemon thread by
    self.serve(conn, n), n counting connections from 1 (self.conns, under
    self.lock). Subclasses set their own state before calling __init__."""

    def __init__(self):
        self.lock = threading.Lock()
        self.conns = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self.serve, args=(c, n), daemon=True).start()

    def serve(self, conn, n):
        raise NotImplementedError


def stop_all(procs, timeout=5):
    """Terminate every process of @procs, killing those still running after
    @timeout seconds."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
