#!/bin/bash
# ab.sh — A/B two builds of one benchmark, alternating runs (old, new, old, new, ...) so
# that a noisy machine's drift lands on both; prints each metric's median and every run.
#
# Usage: bench/ab.sh N cmdA... -- cmdB...
#   e.g. bench/ab.sh 5 /tmp/old/gort_chan_mpmc 2 -- build/bench/bench/gort_chan_mpmc 2
# Each command prints RESULT lines (bench/common.hpp's format: RESULT <value> <unit> <name>).
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,8p' "$0" >&2
  exit 2
fi
N=$1; shift
A=(); while [ "$1" != "--" ]; do A+=("$1"); shift; done; shift; B=("$@")
for _ in $(seq "$N"); do
  "${A[@]}" 2>&1 | grep '^RESULT' | sed 's/^/A /'
  "${B[@]}" 2>&1 | grep '^RESULT' | sed 's/^/B /'
done | python3 -c '
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in sys.stdin:
    f = line.split()
    runs[(f[4], f[0])].append(float(f[2]))
for (metric, side), v in sorted(runs.items()):
    print("%-16s %s median %10.3f   runs %s" % (metric, side, statistics.median(v), " ".join("%.1f" % x for x in v)))
'
