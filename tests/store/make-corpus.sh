#!/bin/sh
# SPDX-License-Identifier: MIT
# Regenerates the store reader's fuzz seed corpus (tests/store/corpus/):
# valid, cut, damaged and unfinished store files from store_testgen, and
# raw record streams ('M' + the records of valid.dyt, whole and cut, and of
# an HTTP/2 recording with a reset stream) that
# fuzz_store_reader wraps in a valid frame to reach the record decoder.
# Usage: tests/store/make-corpus.sh BUILD_DIR
set -eu
b=${1:?usage: make-corpus.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/corpus"
mkdir -p "$out"
"$b/tests/store/store_testgen" corpus "$out"
{ printf M; zstd -q -d -c "$out/valid.dyt"; } >"$out/records-valid.bin"
{ printf M; zstd -q -d -c "$out/valid.dyt" | head -c 700; } >"$out/records-cut.bin"
# HTTP/2 sessions, one with the optional ts_reset_ns (a Watch reset early)
t=$(mktemp -d)
"$b/cli/dyetap" record -r "$here/../h2/fixtures/grpc-watch-early.pcap" -w "$t/h2.dyt" 2>/dev/null
{ printf M; zstd -q -d -c "$t/h2.dyt"; } >"$out/records-h2-reset.bin"
rm -rf "$t"
chmod 0644 "$out"/*
ls -l "$out"
