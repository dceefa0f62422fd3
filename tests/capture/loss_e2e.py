#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Capture loss must not multiply (docs/capture.md "Pairing after loss").

A real keep-alive capture (tests/capture/loss/README.md) is recorded
whole, then again with N payload packets removed by editcap (a seeded
choice, so every run removes the same ones). The full capture is the
oracle: every session of the damaged recording that is not flagged must
be exactly the full recording's session with the same client and request
time (all fields but the file-wide id and the index in the connection);
every flagged session must belong to a transaction one of the removed
frames was part of (tshark maps frames to transactions); every
transaction no removed frame touched must be there unflagged; and the
flagged sessions must be at most 2 per removed frame.

Usage: loss_e2e.py DYETAP CAPTURE[.xz] [--drop N --seed S]... (default:
20 frames, seeds 1-4, then 200 frames, seed 5). Needs tshark and editcap
(else skips).
"""
import json
import lzma
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import tests.tap_util as tap  # noqa: E402


def ns_of(epoch):
    s, _, f = epoch.partition(".")
    return int(s) * 1000000000 + int((f + "000000000")[:9])


def frames_of(pcap):
    """Payload frames: number -> (client endpoint, direction, transaction key)."""
    out = subprocess.run(
        ["tshark", "-r", pcap, "-Y", "tcp.len > 0", "-T", "fields", "-E", "separator=|",
         "-e", "frame.number", "-e", "frame.time_epoch", "-e", "tcp.stream",
         "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
         "-e", "http.request", "-e", "http.response", "-e", "http.request_in"],
        check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split("|")
        rows.append({"no": int(f[0]), "ns": ns_of(f[1]), "stream": int(f[2]),
                     "src": "%s:%s" % (f[3], f[4]), "dst": "%s:%s" % (f[5], f[6]),
                     "req": f[7] != "", "resp": f[8] != "",
                     "req_in": int(f[9]) if f[9] else None})
    client = {}  # stream -> client endpoint (the sender of the first request)
    for r in rows:
        if r["req"] and r["stream"] not in client:
            client[r["stream"]] = r["src"]
    # tshark marks a message on its last segment: earlier segments of the
    # same direction belong to the next marked frame.
    first_of = {}  # request frame -> time of its first segment
    pend = {}
    msg_of = {}  # frame -> the marked frame of its message
    for r in rows:
        d = (r["stream"], r["src"])
        pend.setdefault(d, []).append(r)
        if r["req"] or r["resp"]:
            for p in pend[d]:
                msg_of[p["no"]] = r
            if r["req"]:
                first_of[r["no"]] = pend[d][0]["ns"]
            pend[d] = []
    frames = {}
    for r in rows:
        m = msg_of.get(r["no"])
        cl = client.get(r["stream"])
        key = None
        if m and m["req"]:
            key = (cl, first_of[m["no"]])
        elif m and m["resp"] and m["req_in"] in first_of:
            key = (cl, first_of[m["req_in"]])
        frames[r["no"]] = {"client": cl, "dir": "req" if r["src"] == cl else "resp",
                           "key": key}
    return frames


def record(dyetap, pcap, out):
    st = json.loads(subprocess.run([dyetap, "record", "-r", pcap, "-w", out, "--json"],
                                   check=True, capture_output=True, text=True).stdout)
    lines = subprocess.run([dyetap, "cat", "--json", out], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    return st, [json.loads(x) for x in lines]


def core(s):
    s = dict(s)
    s.pop("id", None)
    s.pop("conn_index", None)
    return s


def run_case(dyetap, full_pcap, frames, full, drop, seed, work):
    payload = sorted(frames)
    chosen = sorted(random.Random(seed).sample(payload, drop))
    cut_pcap = os.path.join(work, "cut-%d-%d.pcap" % (drop, seed))
    subprocess.run(["editcap", "-F", "pcap", full_pcap, cut_pcap] + [str(n) for n in chosen],
                   check=True, capture_output=True)
    st, cut = record(dyetap, cut_pcap, cut_pcap + ".dyt")
    name = "%d frames removed (seed %d)" % (drop, seed)
    touched = set()
    lost_req = {}  # client -> keys whose request frame was removed
    for n in chosen:
        f = frames[n]
        if f["key"]:
            touched.add(f["key"])
            if f["dir"] == "req":
                lost_req.setdefault(f["client"], []).append(f["key"])
    by_key = {(s["src"], s["ts_request_ns"]): s for s in full}
    flagged = [s for s in cut if s["flags"]]
    bad = []
    seen = set()
    for s in cut:
        has_req = s["ts_request_ns"] != 0  # cat --json prints an absent request empty
        key = (s["src"], s["ts_request_ns"]) if has_req else None
        if key:
            seen.add(key)
        if not s["flags"]:
            if key not in by_key or core(by_key[key]) != core(s):
                bad.append(("unflagged session differs from the full capture", s))
        elif key:
            if key not in touched:
                bad.append(("flagged session no removed frame touched", s))
        else:
            # A response without its request: the request frame was removed,
            # and the response is that transaction's.
            cands = [by_key[k]["response"] for k in lost_req.get(s["src"], []) if k in by_key]
            if s.get("response") not in cands:
                bad.append(("orphan response of no removed request", s))
    for key, s in by_key.items():
        if key not in touched and key not in seen:
            bad.append(("untouched transaction missing", s))
    tap.ok(not bad, "%s: every unflagged session as in the full capture, every flagged one "
           "touched by a removed frame (%d problems)" % (name, len(bad)),
           "\n".join("%s: %s" % (why, json.dumps(s)[:300]) for why, s in bad[:6]))
    tap.ok(len(flagged) <= 2 * drop, "%s: %d sessions flagged, at most %d (%d transactions "
           "touched)" % (name, len(flagged), 2 * drop, len(touched)))
    print("# %s: flagged %d, pairs_by_position %s, lost_responses %s, orphans %s, uncertain %s"
          % (name, len(flagged), st.get("txn_pairs_by_position"), st.get("txn_lost_responses"),
             st.get("txn_orphan_responses"), st.get("txn_pairing_uncertain")))
    return st


def main():
    args = sys.argv[1:]
    dyetap, cap = args[0], args[1]
    cases = []
    i = 2
    while i < len(args):
        if args[i] == "--drop":
            cases.append((int(args[i + 1]), int(args[i + 3])))
            i += 4
        else:
            i += 1
    if not cases:
        cases = [(20, 1), (20, 2), (20, 3), (20, 4), (200, 5)]
    for tool in ("tshark", "editcap"):
        if not shutil.which(tool):
            print("1..0 # SKIP %s not installed (tests/setup.sh)" % tool)
            return 0
    with tempfile.TemporaryDirectory() as work:
        full_pcap = os.path.join(work, "full.pcap")
        if cap.endswith(".xz"):
            with lzma.open(cap) as src, open(full_pcap, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copy(cap, full_pcap)
        frames = frames_of(full_pcap)
        fst, full = record(dyetap, full_pcap, os.path.join(work, "full.dyt"))
        tap.ok(full and all(not s["flags"] for s in full) and fst["reasm_gaps"] == 0,
               "the full capture: %d sessions, none flagged, no gap" % len(full))
        keyed = sum(1 for f in frames.values() if f["key"])
        tap.ok(keyed == len(frames), "tshark maps every payload frame to its transaction "
               "(%d of %d)" % (keyed, len(frames)))
        for drop, seed in cases:
            run_case(dyetap, full_pcap, frames, full, drop, seed, work)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
