#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The service units and the Grafana dashboard of dist/ (docs/operations.md).

usage: units_check.py SOURCE_ROOT DYETAP [FASTPATH]      (TAP output)

Units: each is checked by systemd's own `systemd-analyze verify` with
ExecStart pointing at the programs just built (verify wants them
executable); any line it prints about the unit is a failure, since it
reports unknown keys and bad values as warnings with exit status 0 (a
unit with a planted unknown key must be caught: the check can fail).
They must keep what docs/operations.md promises: Type=notify, a state
directory, ProtectSystem=strict, a capability bounding set, and for
ExecReload (SIGHUP: reload) in both.

Dashboard: valid JSON with panels whose every PromQL expression names
only dyetap_ metrics; that each of those is served is checked against
real scrapes in ops_e2e.py.

systemd-analyze absent: the unit checks are skipped (the dashboard still
checked).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT, DYETAP = sys.argv[1], os.path.abspath(sys.argv[2])
FASTPATH = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else ""
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap_util import finish, ok  # noqa: E402

UNITS = {"dyetap-mirror.service": ("/usr/local/bin/dyetap ", DYETAP + " "),
         "dyetap-fastpath.service": ("/usr/local/bin/dyetap-fastpath ", (FASTPATH or DYETAP) + " ")}


def verify(path):
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True,
                       text=True, timeout=60)
    name = os.path.basename(path)
    noise = [l for l in (r.stdout + r.stderr).splitlines() if name in l]
    return r.returncode, noise


def main():
    d = os.path.join(ROOT, "dist")
    have = shutil.which("systemd-analyze")
    for unit, (old, new) in UNITS.items():
        text = open(os.path.join(d, "systemd", unit)).read()
        keys = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
        ok(keys.get("Type") == "notify" and keys.get("ProtectSystem") == "strict" and
           keys.get("StateDirectory") and keys.get("CapabilityBoundingSet") and
           "--control" in text and "--metrics" in text,
           "%s: Type=notify, ProtectSystem=strict, StateDirectory, capabilities, "
           "--control and --metrics" % unit)
        ok(keys.get("ExecReload") == "/bin/kill -HUP $MAINPID",
           "%s: ExecReload sends SIGHUP (reload)" % unit)
        if not have:
            continue
        with tempfile.TemporaryDirectory() as t:
            p = os.path.join(t, unit)
            with open(p, "w") as f:
                f.write(text.replace(old, new))
            rc, noise = verify(p)
            ok(rc == 0 and not noise, "%s: systemd-analyze verify is silent" % unit, noise)
            with open(p, "w") as f:
                f.write(text.replace(old, new).replace("[Service]\n", "[Service]\nBogusKey=1\n"))
            rc, noise = verify(p)
            ok(any("BogusKey" in l for l in noise),
               "%s: ... and names a planted unknown key (the check can fail)" % unit, noise)
    if not have:
        print("# systemd-analyze not installed: the units were not verified")
    dash = os.path.join(d, "grafana", "dyetap-lanes.json")
    try:
        js = json.load(open(dash))
    except ValueError as e:
        js = {}
        ok(False, "dashboard: valid JSON", e)
    exprs = [t["expr"] for p in js.get("panels", []) for t in p.get("targets", [])]
    names = set(n for e in exprs for n in re.findall(r"\b[a-z_][a-z0-9_]*(?=\{)", e))
    ok(len(js.get("panels", [])) >= 8 and exprs and all(n.startswith("dyetap_") for n in names),
       "dashboard: %d panels, every metric a dyetap_ one (%d)" % (len(js.get("panels", [])),
                                                                  len(names)), sorted(names))
    sys.exit(finish())


if __name__ == "__main__":
    main()
