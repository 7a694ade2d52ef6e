#!/usr/bin/env bash
# device-scaling.sh — fib's scaling curve (maxprocs 1, 2, 4, 8, 16) beside Go's, on a
# machine with 16+ cores that has no compilers or package access (a lent device machine).
#
#   bench/device-scaling.sh pack   here: builds gort_fib and Go's fib, and copies them with
#                                  the shared libraries gort_fib needs into .device-bench/
#   bench/device-scaling.sh run    there (with .device-bench carried along): runs
#                                  compare.py --procs 1,2,4,8,16 on the packed programs
# `run` reads PROCS (default 1,2,4,8,16), RUNS (5) and OUT, the folder for scaling.md
# (default .device-bench; the device tool's own $OUT, when set, so the table comes back).
# `make bench-scaling` does the same on a machine that can build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device-bench
case "${1:-}" in
  pack)
    scripts/deps.sh bench
    make --no-print-directory build
    python3 bench/compare.py build/release --impls go --filter '^fib/p1$' --runs 1 \
      --output build/bench-pack.md >/dev/null  # builds build/bench-go/
    rm -rf "$out" && mkdir -p "$out/bench" "$out/go" "$out/lib"
    cp build/release/bench/gort_fib "$out/bench/"
    cp build/bench-go/fib "$out/go/"
    ldd build/release/bench/gort_fib | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
      case "$lib" in */libc.so*|*/libm.so*|*/ld-linux*) ;; *) cp -L "$lib" "$out/lib/" ;; esac
    done
    grep -qx "/$out/" .git/info/exclude 2>/dev/null || echo "/$out/" >>.git/info/exclude
    du -sh "$out"
    ;;
  run)
    [ -x "$out/bench/gort_fib" ] || { echo "device-scaling.sh: run 'pack' first" >&2; exit 2; }
    LD_LIBRARY_PATH="$PWD/$out/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      python3 bench/compare.py "$out" --go-dir "$out/go" --prebuilt-go --impls gort,go \
        --filter '^fib/' --procs "${PROCS:-1,2,4,8,16}" --runs "${RUNS:-5}" \
        --output "${OUT:-$out}/scaling.md"
    ;;
  *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
