#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the old and the new version of one upgrade case's server software
# side by side, from the npm registry, with the exact versions and the
# dependency trees pinned in tests/upgrades/CASE/{old,new}/package-lock.json:
#   tests/upgrades/.install/CASE/old/node_modules/...
#   tests/upgrades/.install/CASE/new/node_modules/...
# (.install/ is git-ignored). An install that is already complete (its
# lockfile unchanged) is kept. Exit 0 when both are installed; exit 77 with
# a one-line reason on stdout ("SKIP: ...") when node, npm or the registry
# is not available, so that callers can print `1..0 # SKIP reason`; exit 1
# on any other failure.
# Usage: tests/upgrades/setup.sh CASE
set -u
here=$(cd "$(dirname "$0")" && pwd)
case_name=${1:?usage: setup.sh CASE}
src=$here/$case_name
[ -f "$src/case.json" ] || { echo "setup: no such case: $case_name" >&2; exit 1; }
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not installed (Debian: apt-get install nodejs npm)"
        exit 77
    fi
done
for role in old new; do
    dst=$here/.install/$case_name/$role
    if [ -f "$dst/.complete" ] && cmp -s "$src/$role/package-lock.json" "$dst/.complete"; then
        continue
    fi
    rm -rf "$dst"
    mkdir -p "$dst"
    cp "$src/$role/package.json" "$src/$role/package-lock.json" "$dst/"
    # npm ci installs exactly the lockfile's tree; no scripts: nothing here needs
    # a build step, and a registry package should not run code at install time.
    if ! (cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
        --fetch-retries=1 --fetch-timeout=30000 >"$dst/npm.log" 2>&1); then
        if grep -q -E 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|network' "$dst/npm.log"; then
            echo "SKIP: npm registry unreachable ($(grep -m1 -E 'code|network' "$dst/npm.log" | cut -c1-120))"
            exit 77
        fi
        echo "setup: npm ci failed for $case_name/$role:" >&2
        tail -n 20 "$dst/npm.log" >&2
        exit 1
    fi
    cp "$src/$role/package-lock.json" "$dst/.complete"
done
exit 0
