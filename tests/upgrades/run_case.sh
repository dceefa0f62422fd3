#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs one case of the upgrade corpus and prints how dyetap's report
# compares with the case's expected-causes.json (tests/upgrades/README.md):
# record -> replay (candidate = new version, secondary = old) -> diff --json,
# then the same-build run (candidate = old version too).
# Usage: tests/upgrades/run_case.sh CASE [--dyetap PATH] [--keep DIR]
# (default dyetap: build-rel/, else build-test/, build/, build-demo/)
set -eu
exec python3 "$(dirname "$0")/upgrades.py" run "$@"
