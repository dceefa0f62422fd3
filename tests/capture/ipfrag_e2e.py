#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""IP fragments reassembled (docs/capture.md "IP fragments").

tests/capture/gen_frag.py writes captures of HTTP traffic whose TCP
segments travel as IPv4 and IPv6 fragments (in order, reversed, shuffled,
duplicated, overlapping with the same bytes). `dyetap record` must find
the transactions tshark finds (tshark reassembles IP by default;
tests/golden/tshark_oracle.py), which are also the generator's ground
truth, and count the reassembly; a datagram missing a fragment must end
as a counted, unfinished datagram and a TCP gap that flags what it took.

Usage: ipfrag_e2e.py DYETAP   (skips without tshark)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "golden"))
import tests.tap_util as tap  # noqa: E402
from run_golden import dyetap_transactions  # noqa: E402


def record(dyetap, pcap, d):
    out = os.path.join(d, os.path.basename(pcap) + ".dyt")
    st = json.loads(subprocess.run([dyetap, "record", "-r", pcap, "-w", out, "--json"],
                                   check=True, capture_output=True, text=True).stdout)
    lines = subprocess.run([dyetap, "cat", "--json", "--no-body", out], check=True,
                           capture_output=True, text=True).stdout.splitlines()
    diag = []
    txns = dyetap_transactions(lines, diag)
    return st, txns, diag


def main():
    dyetap = sys.argv[1]
    if not shutil.which("tshark"):
        print("1..0 # SKIP tshark not installed (tests/setup.sh)")
        return 0
    truth = {}
    name = None
    for ln in subprocess.run([sys.executable, os.path.join(HERE, "gen_frag.py"), "--truth"],
                             check=True, capture_output=True, text=True).stdout.splitlines():
        if ln.startswith("# "):
            name = ln[2:]
            truth[name] = []
        else:
            truth[name].append(json.loads(ln))
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, os.path.join(HERE, "gen_frag.py"), d], check=True)
        full = os.path.join(d, "complete.pcap")
        st, got, diag = record(dyetap, full, d)
        tap.ok(got == truth["complete.pcap"], "complete.pcap: the generator's transactions",
               "\n".join(diag + [json.dumps(t) for t in got or []]))
        ora = subprocess.run([sys.executable, os.path.join(HERE, "..", "golden",
                                                           "tshark_oracle.py"), "--flags", full],
                             check=True, capture_output=True, text=True).stdout.splitlines()
        ora = [json.loads(x) for x in ora]
        strip = [dict(t, flags=[]) for t in got or []]
        tap.ok(ora == strip and len(ora) == 4, "complete.pcap: the transactions tshark finds",
               "\n".join(json.dumps(t) for t in ora))
        # The last fragment sent again after its datagram was whole (once
        # per connection) begins a datagram of its own that never ends.
        tap.ok(st["ipfrag_reassembled"] == 8 and st["ipfrag_invalid"] == 0 and
               st["ipfrag_unfinished"] == 2 and st["reasm_gaps"] == 0,
               "complete.pcap: 8 datagrams reassembled, the 2 late copies unfinished, no gap",
               {k: v for k, v in st.items() if k.startswith("ipfrag_")})
        tap.ok(st["ipfrag_overlaps"] >= 1 and st["ipfrag_duplicates"] >= 3 and
               st["ipfrag_overlap_diff"] == 0,
               "complete.pcap: the overlap and the duplicates counted",
               {k: v for k, v in st.items() if k.startswith("ipfrag_")})
        st, got, diag = record(dyetap, os.path.join(d, "lossy.pcap"), d)
        tap.ok(got == truth["lossy.pcap"], "lossy.pcap: the request with a lost fragment is a "
               "gap, its response flagged, the next transaction complete",
               "\n".join(diag + [json.dumps(t) for t in got or []]))
        tap.ok(st["ipfrag_unfinished"] == 1 and st["reasm_gap_bytes"] >= 3092,
               "lossy.pcap: one datagram unfinished at the end, its segment a TCP gap",
               {k: v for k, v in st.items() if k.startswith(("ipfrag_", "reasm_gap"))})
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
