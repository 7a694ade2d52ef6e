// User code built without frame pointers (tests/CMakeLists.txt compiles this file with
// -O2 -fomit-frame-pointer, as distributions build most code): dumps must still show every
// frame of a goroutine parked below it (Dumps.FramesWithoutFramePointersAreShown).
#include <gort/gort.hpp>

#include <atomic>

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

// The same shape, running: a goroutine spins in the leaf until told to stop
// (Dumps.RunningFramesWithoutFramePointersAreShown).
namespace nofp {

[[gnu::noinline, gnu::noclone]] int nofp_leaf_spins(const std::atomic<bool>& stop) {
  int spins = 0;
  while (!stop.load(std::memory_order_relaxed)) sink = ++spins;
  return spins;
}

[[gnu::noinline, gnu::noclone]] int nofp_middle_spins(const std::atomic<bool>& stop) {
  const int r = nofp_leaf_spins(stop);
  sink = r;
  return r + 1;
}

[[gnu::noinline, gnu::noclone]] int nofp_outer_spins(const std::atomic<bool>& stop) {
  const int r = nofp_middle_spins(stop);
  sink = r;
  return r + 1;
}

}  // namespace nofp
