#!/usr/bin/env bash
# The whole suite, as `make test` runs it: Release, AddressSanitizer, ThreadSanitizer, the
# arm64 build under qemu, and a program built against the installed package. Prints each
# stage's result and a closing "N passed, N failed" line; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
passed=0
failed=0
declare -a report

record() {  # record STAGE LOGFILE RC
  local line p f
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$2" | tail -1)
  if [ -n "$line" ]; then
    f=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
    p=$(( $(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line") - f ))
  elif [ "$3" -eq 0 ]; then p=1; f=0; else p=0; f=1; fi
  [ "$3" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  passed=$((passed + p)); failed=$((failed + f))
  report+=("$(printf '%-10s %5d passed, %3d failed' "$1" "$p" "$f")")
}

stage() {  # stage NAME BUILD_DIR [cmake args...]
  local name=$1 dir=$2; shift 2
  local log=build/test-$name.log
  echo "==> $name"
  {
    cmake -S . -B "$dir" -G Ninja -DGORT_BUILD_BENCH=OFF "$@" >/dev/null &&
      cmake --build "$dir" -j "$jobs" &&
      (cd "$dir" && ctest -j "$jobs" --output-on-failure --timeout 600)
  } >"$log" 2>&1
  local rc=$?
  tail -n 3 "$log"
  if [ $rc -ne 0 ]; then
    # What failed and why: each failing test's assertion or sanitizer report, then the end.
    echo "--- $name failed; the failures in $log:"
    grep -n -B3 -A25 -E ': Failure$|\*\*\*Failed|\*\*\*Timeout|\(Failed\)|ERROR: AddressSanitizer|WARNING: ThreadSanitizer|fatal error:' "$log" | head -n 200
    echo "--- the end of $log:"
    tail -n 30 "$log"
  fi
  record "$name" "$log" $rc
}

mkdir -p build
only=${GORT_TEST_STAGES:-release asan tsan arm64 consumer}
for s in $only; do
  case $s in
    release) stage release build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g ;;
    asan) stage asan build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGORT_SANITIZE=address -DGORT_BUILD_EXAMPLES=OFF ;;
    tsan) stage tsan build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGORT_SANITIZE=thread -DGORT_BUILD_EXAMPLES=OFF ;;
    arm64) stage arm64 build/arm64 -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DGORT_BUILD_EXAMPLES=OFF ;;
    consumer)
      echo "==> consumer"
      log=build/test-consumer.log
      {
        cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g >/dev/null &&
          cmake --build build/release -j "$jobs" --target gort &&
          rm -rf build/install && cmake --install build/release --prefix "$PWD/build/install" >/dev/null &&
          cmake -S tests/consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null &&
          cmake --build build/consumer && ./build/consumer/consumer &&
          g++ -O1 tests/consumer/main.cpp -o build/consumer/consumer-pc \
            $(PKG_CONFIG_PATH="$PWD/build/install/lib/pkgconfig" pkg-config --cflags --libs gort) &&
          ./build/consumer/consumer-pc
      } >"$log" 2>&1
      rc=$?
      tail -n 2 "$log"
      [ $rc -ne 0 ] && { echo "--- consumer failed:"; tail -n 40 "$log"; }
      record consumer "$log" $rc
      ;;
    *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done

echo
echo "Summary:"
for r in "${report[@]}"; do echo "  $r"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
