#!/bin/sh
# SPDX-License-Identifier: MIT
# Diff benchmark (docs/benchmarks.md "## Diff"): dyetap's differ on one
# core beside cmp and a jq-based structural diff of the same pairs.
# Usage: bench/diff.sh [BUILD_DIR] [N_PAIRS]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$top/build}
n=${2:-20000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
core=1
[ "$(nproc)" -gt 1 ] || core=0
echo "# dyetap differ (taskset -c $core, median of 5)"
taskset -c $core "$b/bench/diff_bench" "$out" "$n"
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t_ns() { s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $((e - s)); }
bytes=$(stat -c %s "$out/ident_a.json")
echo "# anchors (taskset -c $core, median of 5)"
ts=$(for i in 1 2 3 4 5; do t_ns taskset -c $core cmp "$out/ident_a.json" "$out/ident_b.json"; done | med)
echo "cmp_identical_GBps $(awk -v b="$bytes" -v t="$ts" 'BEGIN{printf "%.2f", b/t}')"
jqprog='def leaves: [paths(scalars) as $p | {p: $p, v: getpath($p)}];
  . as [$a, $b] | ($a | leaves) as $la | ($b | leaves) as $lb | (($la - $lb) + ($lb - $la)) | length'
# jq manages a few hundred pairs/s: time it on the first 2000 pairs
nj=2000
for kind in ident differ; do
    head -n $nj "$out/pairs_$kind.jsonl" > "$out/jq_$kind.jsonl"
    ts=$(for i in 1 2 3 4 5; do t_ns taskset -c $core jq -c "$jqprog" "$out/jq_$kind.jsonl"; done | med)
    echo "jq_${kind}_pairs_per_s $(awk -v n="$nj" -v t="$ts" 'BEGIN{printf "%.0f", n/(t/1e9)}')"
done
# sanity: jq finds differences in every differing pair and none in identical ones
echo "jq_differing_pairs_with_changes $(jq -c "$jqprog" "$out/jq_differ.jsonl" | awk '$1>0' | wc -l)"
echo "jq_identical_pairs_with_changes $(jq -c "$jqprog" "$out/jq_ident.jsonl" | awk '$1>0' | wc -l)"
