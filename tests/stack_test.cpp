// The stack allocator, white-box: every stack it hands out has its guard directly below it,
// and stacks handed out fresh have their top page already resident (batched in one
// process_madvise where the kernel offers it). Guard and population are batched per slab
// and per refill, so the checks cover several slabs and refills, not just the first stack.
// Free stacks beyond the resident mark are released only once they have been free a while.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

#include "stack/stack.hpp"

namespace {

using gort::stack::Guard;
using gort::stack::Stack;
using gort::stack::StackAllocator;
using gort::stack::StackCache;

// Whether the kernel can read the byte at p (a write(2) from it fails with EFAULT if not:
// no signal, so a guard page can be probed safely).
bool kernel_can_read(const char* p) {
  int fds[2];
  if (pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  const bool ok = write(fds[1], p, 1) == 1;
  const int err = errno;
  close(fds[0]);
  close(fds[1]);
  if (!ok && err != EFAULT) throw std::system_error(err, std::generic_category(), "write");
  return ok;
}

bool resident(const char* page) {
  unsigned char v = 0;
  if (mincore(const_cast<char*>(page), gort::stack::page_size(), &v) != 0)
    throw std::system_error(errno, std::generic_category(), "mincore");
  return (v & 1) != 0;
}

std::vector<Stack> take(StackAllocator& a, std::size_t refills) {
  std::vector<Stack> got(refills * StackCache::kBatch);
  for (std::size_t i = 0; i < refills; ++i) a.get_batch(got.data() + i * StackCache::kBatch, StackCache::kBatch);
  return got;
}

void give_back(StackAllocator& a, std::vector<Stack>& got) {
  std::vector<char*> deepest(got.size(), nullptr);
  a.put_batch(got.data(), deepest.data(), got.size());
}

constexpr std::size_t kRefills = 3 * gort::stack::kSlabStacks / StackCache::kBatch + 1;  // over 3 slabs

// Dumps read a stack's bounds as one packed word: it must give back exactly lo and hi for
// real stacks of either kind, and "no stack" for none or one too large to pack.
TEST(StackExtent, PacksAndUnpacksTheBoundsOfRealStacks) {
  using gort::stack::pack_extent;
  using gort::stack::unpack_extent;
  StackAllocator a(64 * 1024);
  Stack pooled[3];
  a.get_batch(pooled, 3);
  const Stack odd = a.alloc_odd(1 << 20);
  for (const Stack& s : {pooled[0], pooled[1], pooled[2], odd}) {
    const std::uint64_t packed = pack_extent(s);
    ASSERT_NE(packed, 0u);
    const auto e = unpack_extent(packed);
    EXPECT_EQ(e.lo, reinterpret_cast<std::uintptr_t>(s.lo));
    EXPECT_EQ(e.hi, reinterpret_cast<std::uintptr_t>(s.hi));
  }
  EXPECT_NE(pack_extent(pooled[0]), pack_extent(pooled[1]));
  EXPECT_EQ(pack_extent(Stack{}), 0u);
  EXPECT_EQ(unpack_extent(0).lo, 0u);
  EXPECT_EQ(unpack_extent(0).hi, 0u);
  // 64 GiB does not fit the size field: such a stack packs as none rather than wrongly.
  const std::uintptr_t base = std::uintptr_t(1) << 40;
  const Stack huge{reinterpret_cast<char*>(base), reinterpret_cast<char*>(base + (std::uintptr_t(64) << 30))};
  EXPECT_EQ(pack_extent(huge), 0u);
  a.free_odd(odd);
  char* deepest[3] = {};
  a.put_batch(pooled, deepest, 3);
}

TEST(StackAllocator, EveryStackOfEverySlabHasItsGuardBelowIt) {
  StackAllocator a(64 * 1024);
  const Guard best = StackAllocator::probe_kernel_guard();
  std::vector<Stack> got = take(a, kRefills);
  for (const Stack& s : got) {
    ASSERT_EQ(s.size(), 64u * 1024);
    if (best == Guard::kernel_guard) EXPECT_EQ(s.guard, Guard::kernel_guard) << "stack at " << static_cast<void*>(s.lo);
    if (s.guard == Guard::canary) {
      EXPECT_TRUE(s.canary_intact());
    } else {
      EXPECT_FALSE(kernel_can_read(s.lo - 1)) << "no guard below the stack at " << static_cast<void*>(s.lo);
      EXPECT_FALSE(kernel_can_read(s.lo - gort::stack::page_size())) << static_cast<void*>(s.lo);
    }
    EXPECT_TRUE(kernel_can_read(s.lo));
    EXPECT_TRUE(kernel_can_read(s.hi - 1));
  }
  give_back(a, got);
}

// Whether process_madvise(2) may populate this process's pages (Linux 6.15's
// PIDFD_SELF_THREAD_GROUP): where it may not (older kernels, qemu-user), population is
// skipped and a stack's first touch faults its page in, as before.
bool batch_populate_works() {
  const std::size_t ps = gort::stack::page_size();
  void* p = mmap(nullptr, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  iovec v{p, ps};
  const bool works = syscall(SYS_process_madvise, -10001, &v, 1, 23 /* MADV_POPULATE_WRITE */, 0u) == long(ps);
  munmap(p, ps);
  return works;
}

TEST(StackAllocator, FreshStacksComeWithTheirTopPageResident) {
  StackAllocator a(64 * 1024);
  std::vector<Stack> got = take(a, kRefills);
  const std::size_t ps = gort::stack::page_size();
  std::size_t top_resident = 0, below_resident = 0;
  for (const Stack& s : got) {
    top_resident += resident(s.hi - ps);
    below_resident += resident(s.hi - 2 * ps);  // only the top page is populated
  }
  if (batch_populate_works()) EXPECT_EQ(top_resident, got.size());
  EXPECT_EQ(below_resident, 0u);
  // What population wrote is still a zeroed, usable stack.
  for (const Stack& s : got) {
    EXPECT_EQ(s.hi[-1], 0);
    s.hi[-1] = 1;
  }
  give_back(a, got);
  // Stacks that come back used are handed out again as they are (their pages stay).
  got = take(a, 1);
  std::size_t reused_dirty = 0;
  for (const Stack& s : got) reused_dirty += s.hi[-1] == 1;
  EXPECT_EQ(reused_dirty, got.size());
  give_back(a, got);
}

// Stacks beyond the high-water mark keep their pages until they have been free for the
// release age (a wave of goroutines soon reuses them): trimming before then releases
// nothing and says when to come back; from then on, everything beyond the mark goes.
TEST(StackAllocator, FreeStacksAreReleasedOnlyOnceTheyComeOfAge) {
  setenv("GORT_STACK_RESIDENT", "0", 1);  // every free stack is beyond the mark
  StackAllocator a(64 * 1024);
  unsetenv("GORT_STACK_RESIDENT");
  ASSERT_EQ(a.release_age_ns(), gort::stack::kReleaseAgeNs);
  std::vector<Stack> got = take(a, 2);
  const std::size_t ps = gort::stack::page_size();
  for (const Stack& s : got) s.hi[-1] = 1;  // used: its top page is resident
  std::vector<char*> deepest(got.size());
  for (std::size_t i = 0; i < got.size(); ++i) deepest[i] = got[i].hi - 64;
  const std::int64_t before = gort::sched::monotonic_ns();
  a.put_batch(got.data(), deepest.data(), got.size());
  const std::size_t slab_rest = a.counts().pooled - got.size();  // fresh stacks, never used

  const std::int64_t now = gort::sched::monotonic_ns();
  const StackAllocator::Trimmed early = a.trim_excess(gort::stack::kTrimBatch, now);
  EXPECT_EQ(early.released, slab_rest) << "only never-used stacks are old enough";
  const StackAllocator::Trimmed wait = a.trim_excess(gort::stack::kTrimBatch, now);
  EXPECT_EQ(wait.released, 0u);
  EXPECT_GT(wait.retry_at, now);
  EXPECT_LE(wait.retry_at, before + a.release_age_ns());
  std::size_t still_dirty = 0;
  for (const Stack& s : got) still_dirty += resident(s.hi - ps) && s.hi[-1] == 1;
  EXPECT_EQ(still_dirty, got.size());

  std::size_t released = 0;
  for (StackAllocator::Trimmed t = a.trim_excess(gort::stack::kTrimBatch, wait.retry_at); t.released > 0;
       t = a.trim_excess(gort::stack::kTrimBatch, wait.retry_at)) {
    EXPECT_EQ(t.retry_at, 0);
    released += t.released;
  }
  EXPECT_EQ(released, got.size());
  EXPECT_EQ(a.counts().released, a.counts().pooled);
  EXPECT_EQ(a.trim_excess(gort::stack::kTrimBatch, wait.retry_at).retry_at, 0) << "nothing left to wait for";
}

}  // namespace
