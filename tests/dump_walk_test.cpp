// Dump walks, white-box: a walk reads another goroutine's stack while that goroutine may
// be running and rewriting it, so every word it follows may be garbage. The bounds checks
// must hold for any value, including frame pointers near 2^64 whose `fp + 16` wraps to a
// small number (CI once saw a non-canonical load under TSan when a racing stack held one).
#include <cstdint>
#include <iterator>
#include <limits>

#include <gtest/gtest.h>

#include "debug/dump.hpp"
#include "debug/symbolize.hpp"

namespace {

using gort::debug_impl::StackMemory;

constexpr std::uintptr_t kTop = std::numeric_limits<std::uintptr_t>::max();

TEST(StackMemory, HoldsOnlyRangesInsideTheStack) {
  const StackMemory s{0x1000, 0x2000};
  EXPECT_TRUE(s.holds(0x1000, 16));
  EXPECT_TRUE(s.holds(0x1ff0, 16));
  EXPECT_TRUE(s.holds(0x2000, 0));
  EXPECT_FALSE(s.holds(0x1ff8, 16));
  EXPECT_FALSE(s.holds(0x0ff8, 8));
  EXPECT_FALSE(s.holds(0x2000, 8));
  // Sums that wrap past 2^64 back below hi.
  EXPECT_FALSE(s.holds(kTop - 15, 16));
  EXPECT_FALSE(s.holds(kTop - 7, 8));
  EXPECT_FALSE(s.holds(kTop - 7, 16));
  EXPECT_FALSE(s.holds(kTop, 1));
}

[[gnu::noinline]] void* return_address_here() { return __builtin_return_address(0); }

// A parked goroutine's saved frame chain leads to -16 (and, for the CFI unwinder, its frame
// pointer is -16 outright, so the caller's frame would sit at -8). The walk must stop at
// the stack's bounds, not load from there.
TEST(DumpWalk, FramePointersThatWrapEndTheWalk) {
  // A page, page-aligned: dumps take a stack's bounds from its packed extent, in 4 KiB units.
  alignas(4096) static std::uintptr_t stack[4096 / sizeof(std::uintptr_t)];
  const std::uintptr_t minus16 = std::uintptr_t(0) - 16;
  stack[40] = minus16;  // the saved frame pointer of the frame at stack[40]
  stack[41] = reinterpret_cast<std::uintptr_t>(return_address_here());
  for (const std::uintptr_t fp : {reinterpret_cast<std::uintptr_t>(&stack[40]), minus16, std::uintptr_t(0) - 8}) {
    gort::sched::G g;
    g.started = true;
    g.stack.lo = reinterpret_cast<char*>(&stack[0]);
    g.stack.hi = reinterpret_cast<char*>(stack + std::size(stack));
    g.stack_extent = gort::stack::pack_extent(g.stack);
    g.ctx.sp = reinterpret_cast<std::uintptr_t>(&stack[32]);
    g.ctx.fp = fp;
    g.ctx.pc = reinterpret_cast<std::uintptr_t>(return_address_here());
    void* pcs[gort::debug_impl::kMaxDumpFrames];
    const int n = gort::debug_impl::parked_frames(&g, pcs, gort::debug_impl::kMaxDumpFrames);
    ASSERT_GE(n, 1) << "fp " << fp;
    EXPECT_EQ(pcs[0], reinterpret_cast<void*>(g.ctx.pc)) << "fp " << fp;
    EXPECT_LE(n, 4) << "fp " << fp;  // the pc, the one real frame, a CFI step or two
  }
}

}  // namespace
