#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fails when a folder includes a header its row of README.md's layout
table does not allow (the layers of docs/architecture.md).

The table's third column names, per folder, the folders it may depend on
(`common`, `store`, ...), single headers (`capture/http1.h`) or
`everything`; other words (libc, msgpack, libdpdk) are outside libraries.
Every `#include "FOLDER/..."` of a .c or .h file under a folder of the
table must name its own folder or an allowed folder or header.

usage: check-layers.py SOURCE_ROOT        (TAP: a self-test, then one line per folder)
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/([^"]+)"', re.M)


def parse_table(readme):
    """{folder: (allowed folders, allowed headers)} from the layout table."""
    rules = {}
    in_layout = False
    for line in readme.splitlines():
        if line.startswith("## "):
            in_layout = line.strip() == "## Layout"
            continue
        if not in_layout or not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        folders = re.findall(r"`([a-z]+)/`", cells[0])
        if len(folders) != 1:
            continue  # tests/, bench/, docs/: not a library
        rules[folders[0]] = cells[2]
    table = {}
    for folder, deps in rules.items():
        if "everything" in deps:
            table[folder] = (set(rules), set())
            continue
        headers = set(re.findall(r"`([a-z]+/[a-z0-9_]+\.h)`", deps))
        words = re.sub(r"`[^`]*`", "", deps)
        allowed = {w for w in re.findall(r"[a-z]+", words) if w in rules}
        table[folder] = (allowed, headers)
    return table


def violations(table, files):
    """[(path, line, header, folder)] for files {path: text}."""
    out = []
    for path, text in sorted(files.items()):
        folder = path.split("/", 1)[0]
        if folder not in table:
            continue
        allowed, headers = table[folder]
        for m in INCLUDE.finditer(text):
            dep, rest = m.group(1), m.group(2)
            if dep not in table or dep == folder or dep in allowed:
                continue
            if "%s/%s" % (dep, rest) in headers:
                continue
            line = text.count("\n", 0, m.start()) + 1
            out.append((path, line, "%s/%s" % (dep, rest), folder))
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    with open(os.path.join(root, "README.md")) as f:
        table = parse_table(f.read())
    n = 0
    failed = 0

    def ok(cond, what, detail=()):
        nonlocal n, failed
        n += 1
        failed += not cond
        print("%sok %d - %s" % ("" if cond else "not ", n, what))
        for d in detail if not cond else ():
            print("# " + d)

    # The checker itself must catch a wrong include and accept a right one.
    fake = {"store/x.c": '#include "common/mem.h"\n#include "capture/rules.h"\n',
            "replay/y.c": '#include "capture/http1.h"\n#include "capture/flow.h"\n'}
    got = [(p, h) for p, _, h, _ in violations(table, fake)]
    ok(got == [("replay/y.c", "capture/flow.h"), ("store/x.c", "capture/rules.h")],
       "self-test: store/ including capture/, replay/ including more than capture/http1.h "
       "are caught", [str(got)])
    ok({"common", "store", "capture", "replay", "analysis", "dpdk", "cli"} <= set(table),
       "README.md's layout table names every library folder", [str(sorted(table))])
    files = {}
    for folder in sorted(table):
        for dirpath, _, names in os.walk(os.path.join(root, folder)):
            for name in names:
                if name.endswith((".c", ".h")):
                    full = os.path.join(dirpath, name)
                    with open(full, errors="replace") as f:
                        files[os.path.relpath(full, root)] = f.read()
    bad = violations(table, files)
    for folder in sorted(table):
        mine = [b for b in bad if b[3] == folder]
        allowed, headers = table[folder]
        ok(not mine, "%s/ includes only %s" % (
            folder, ", ".join(sorted(allowed | headers | {folder})) or "itself"),
           ["%s:%d includes %s: README.md's layout table does not let %s/ use it"
            % (p, l, h, f) for p, l, h, f in mine])
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
