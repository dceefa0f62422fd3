#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""dyetap mirror --config FILE (docs/operations.md "Config file").

usage: config_check.py DYETAP SOURCE_ROOT     (TAP output)

On the bundled demo capture (tests/demo/demo.pcap: real traffic of the
demo shop, half of it `x-lane: blue`) and a real HTTP server as the lane
target:
  - the same options given on the command line and in a config file give
    the same counters;
  - the command line comes after the file (-w there wins over `write`);
  - docs/mirror.conf.example, with its interface, paths and target made
    local, runs as it is;
  - mistakes are refused with exit 2 naming the file and the line.
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile

DYETAP, ROOT = os.path.abspath(sys.argv[1]), sys.argv[2]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, ok, serve_http  # noqa: E402

PCAP = os.path.join(ROOT, "tests", "demo", "demo.pcap")
KEYS = ["src_packets", "pipe_sessions", "lane_blue_colored", "lane_blue_mirrored",
        "lane_blue_ok", "mirror_sessions"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.log.append(self.path)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def mirror(*args):
    r = subprocess.run([DYETAP, "mirror"] + list(args), capture_output=True, text=True,
                       timeout=120)
    js = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    return r, js


def main():
    b, pb = serve_http(Handler)
    lane = "blue=http://127.0.0.1:%d" % pb
    with tempfile.TemporaryDirectory() as d:
        r1, js1 = mirror("-r", PCAP, "--color", "blue=header:x-lane=blue", "--lane", lane,
                         "--json", "--drain-timeout", "3s")
        ok(r1.returncode == 0 and js1.get("lane_blue_mirrored", 0) > 0,
           "options: mirror runs on the demo capture", r1.stderr)
        cfg = os.path.join(d, "m.conf")
        with open(cfg, "w") as f:
            f.write("# the same, as a file\n\nread %s\n  color   blue=header:x-lane=blue  \n"
                    "lane %s\njson\ndrain-timeout 3s\nwrite %s/from-file.dyt\n"
                    % (PCAP, lane, d))
        r2, js2 = mirror("--config", cfg, "-w", os.path.join(d, "from-cli.dyt"))
        ok(r2.returncode == 0 and all(js1.get(k) == js2.get(k) for k in KEYS),
           "config: the same counters as the options", [(k, js1.get(k), js2.get(k)) for k in KEYS])
        ok(os.path.exists(os.path.join(d, "from-cli.dyt")) and
           not os.path.exists(os.path.join(d, "from-file.dyt")),
           "config: -w on the command line replaces the file's write")

        ex = open(os.path.join(ROOT, "docs", "mirror.conf.example")).read()
        ex = (ex.replace("interface eth0", "read " + PCAP)
              .replace("filter tcp port 8080", "filter tcp")
              .replace("rules /etc/dyetap/rules.txt", "")
              .replace("http://10.0.0.7:8080", "http://127.0.0.1:%d" % pb)
              .replace("/var/lib/dyetap-mirror", d).replace("/run/dyetap-mirror", d)
              .replace("127.0.0.1:9464", "127.0.0.1:0"))
        with open(cfg, "w") as f:
            f.write(ex)
        r3, js3 = mirror("--config", cfg, "--json", "--drain-timeout", "3s")
        ok(r3.returncode == 0 and js3.get("lane_blue_mirrored", 0) > 0 and
           os.path.exists(os.path.join(d, "mirror.dyt")) and
           os.path.exists(os.path.join(d, "reports", "report.json")),
           "docs/mirror.conf.example runs (interface, paths and target made local)",
           r3.stderr[-1000:])

        bad = [("read %s\ncolor blue=header:x-lane=blue\nbogus 1\n" % PCAP,
                ":3: 'bogus' is not an option"),
               ("read %s\nlane\n" % PCAP, ":2: lane needs a value"),
               ("json yes\n", ":1: json takes no value"),
               ("--lane %s\n" % lane, ":1: write option names without the leading dashes"),
               ("read %s\n\n# x\nlane-rate blue=fast\n" % PCAP, ":4: bad --lane-rate 'fast'"),
               ("config other.conf\n", ":1: 'config' is not an option")]
        for text, want in bad:
            with open(cfg, "w") as f:
                f.write(text)
            r, _ = mirror("--config", cfg, "--lane", lane)
            ok(r.returncode == 2 and (cfg + want) in r.stderr,
               "refused naming file and line: %s" % want.split(": ", 1)[1], r.stderr)
        r, _ = mirror("--config", os.path.join(d, "none.conf"))
        ok(r.returncode == 2 and "none.conf: No such file" in r.stderr,
           "a missing config file is refused", r.stderr)
    sys.exit(finish())


if __name__ == "__main__":
    main()
