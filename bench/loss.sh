#!/bin/sh
# SPDX-License-Identifier: MIT
# Capture loss must not multiply (docs/benchmarks.md "## Loss"): real wrk
# (-c4, keep-alive) traffic to nginx captured with tcpdump on lo
# (tests/capture/loss/make-capture.sh), then DROP payload packets removed
# with editcap at seeded places and recorded by dyetap; tests/capture/
# loss_e2e.py checks every session against the full capture and prints how
# many were flagged. With OLD_DYETAP set, the same files are recorded by
# that binary too (the figure before a change), counted only.
# Usage: sudo bench/loss.sh BUILD_DIR   (env: N=47000 DROP=20 SEEDS="1 2 3"
#        OLD_DYETAP=path/to/old/dyetap)
set -eu
b=${1:-build}
dyetap=$b/cli/dyetap
N=${N:-47000}
DROP=${DROP:-20}
SEEDS=${SEEDS:-1 2 3}
[ -x "$dyetap" ] || { echo "build first: $dyetap missing"; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
until sh "$top/tests/capture/loss/make-capture.sh" "$tmp/full.pcap" "$N"; do
    echo "capture rejected, again" >&2
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
args=""
for s in $SEEDS; do args="$args --drop $DROP --seed $s"; done
# shellcheck disable=SC2086
/usr/bin/python3 "$top/tests/capture/loss_e2e.py" "$dyetap" "$tmp/full.pcap" $args
if [ -n "${OLD_DYETAP:-}" ]; then
    for s in $SEEDS; do
        frames=$(tshark -r "$tmp/full.pcap" -Y 'tcp.len > 0' -T fields -e frame.number |
            /usr/bin/python3 -c "import random, sys; f = [int(x) for x in sys.stdin]
print(' '.join(map(str, sorted(random.Random($s).sample(f, $DROP)))))")
        # shellcheck disable=SC2086
        editcap -F pcap "$tmp/full.pcap" "$tmp/cut.pcap" $frames
        "$OLD_DYETAP" record -r "$tmp/cut.pcap" -w "$tmp/old.dyt" --json >"$tmp/old.json"
        /usr/bin/python3 -c "import json, sys; d = json.load(open(sys.argv[1]))
print('old binary, seed %s: %d of %d sessions flagged gap' % (sys.argv[2],
      d['txn_gap_sessions'], d['txn_sessions_emitted']))" "$tmp/old.json" "$s"
    done
fi
