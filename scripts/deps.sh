#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when they are missing.
# Usage: scripts/deps.sh build|test|bench. As root it runs apt-get; otherwise it prints the
# command to run and fails.
set -euo pipefail
build=(cmake ninja-build g++ make pkg-config libdw-dev libhttp-parser-dev)
# libdw-dev:arm64 (Debian multiarch): the arm64 build's dumps unwind code built without
# frame pointers too.
test=(libgtest-dev libgmock-dev googletest qemu-user g++-aarch64-linux-gnu libdw-dev:arm64 python3 gdb valgrind curl)
bench=(golang-go libboost-fiber-dev libboost-context-dev python3 wrk)
case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${build[@]}" "${test[@]}") ;;
  bench) want=("${build[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  for p in "${missing[@]}"; do
    arch=${p#*:}
    [ "$arch" != "$p" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch" && dpkg --add-architecture "$arch"
  done
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps: missing Debian packages; run:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
