// User code built without frame pointers (tests/CMakeLists.txt compiles this file with
// -O2 -fomit-frame-pointer, as distributions build most code): dumps must still show every
// frame of a goroutine parked below it (Dumps.FramesWithoutFramePointersAreShown).
#include <gort/gort.hpp>

namespace nofp {

volatile int sink;  // work after each call, so none of them becomes a tail call

[[gnu::noinline, gnu::noclone]] int nofp_leaf_waits(const gort::chan<int>& ch) {
  const int v = ch.recv().value_or(-1);
  sink = v;
  return v + 1;
}

[[gnu::noinline, gnu::noclone]] int nofp_middle(const gort::chan<int>& ch) {
  const int r = nofp_leaf_waits(ch);
  sink = r;
  return r * 3;
}

[[gnu::noinline, gnu::noclone]] int nofp_outer(const gort::chan<int>& ch) {
  const int r = nofp_middle(ch);
  sink = r;
  return r - 1;
}

}  // namespace nofp
