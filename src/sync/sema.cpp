#include "sync/sema.hpp"

#include <gort/runtime.hpp>

#include "sched/sched.hpp"
#include "sched/waiter.hpp"

namespace gort::sync_impl {

using namespace gort::sched;

namespace {

constexpr std::size_t kSemTableSize = 251;

struct alignas(64) SemaRoot {
  RuntimeLock lock;
  WaitQueue waiters;                       // guarded by lock; Waiter::data = the address
  std::atomic<std::uint32_t> nwait{0};     // waiters on this bucket (read without the lock)
};

SemaRoot g_table[kSemTableSize];

SemaRoot& root_for(const void* addr) {
  return g_table[(reinterpret_cast<std::uintptr_t>(addr) >> 3) % kSemTableSize];
}

bool cansemacquire(std::atomic<std::uint32_t>* addr) {
  std::uint32_t v = addr->load(std::memory_order_acquire);
  while (v > 0) {
    if (addr->compare_exchange_weak(v, v - 1, std::memory_order_acq_rel, std::memory_order_acquire)) return true;
  }
  return false;
}

}  // namespace

void semacquire(std::atomic<std::uint32_t>* addr, bool lifo, WaitReason reason) {
  if (cansemacquire(addr)) return;
  SemaRoot& root = root_for(addr);
  Waiter w;
  w.data = addr;
  for (;;) {
    root.lock.lock();
    // Count ourselves before re-checking, so a concurrent semrelease sees us (Go's order).
    root.nwait.fetch_add(1, std::memory_order_seq_cst);
    if (cansemacquire(addr)) {
      root.nwait.fetch_sub(1, std::memory_order_relaxed);
      root.lock.unlock();
      return;
    }
    w.success = false;
    if (lifo) root.waiters.push_front(&w); else root.waiters.push_back(&w);
    w.woken.store(0, std::memory_order_relaxed);
    w.block(reason, root.lock);
    // semrelease dequeued us (and decremented nwait). With handoff the count is ours.
    if (w.success || cansemacquire(addr)) return;
    lifo = true;  // we waited already: keep our place at the front
  }
}

void semrelease(std::atomic<std::uint32_t>* addr, bool handoff) {
  SemaRoot& root = root_for(addr);
  addr->fetch_add(1, std::memory_order_release);
  if (root.nwait.load(std::memory_order_seq_cst) == 0) return;  // nobody to wake
  root.lock.lock();
  if (root.nwait.load(std::memory_order_relaxed) == 0) {
    root.lock.unlock();
    return;
  }
  Waiter* w = root.waiters.head;
  while (w && w->data != addr) w = w->next;
  if (!w) {
    root.lock.unlock();
    return;
  }
  root.waiters.remove(w);
  root.nwait.fetch_sub(1, std::memory_order_relaxed);
  if (handoff && cansemacquire(addr)) w->success = true;
  const bool direct = handoff && w->success && w->g && current_g();
  root.lock.unlock();
  w->wake();
  // Starvation hand-off: let the waiter (now in our runnext) run right away.
  if (direct) gort::yield();
}

bool can_spin(int iter) noexcept {
  Runtime* rt = runtime();
  M* m = this_m();
  if (!rt || !m || !m->p || iter >= 4) return false;
  const std::int32_t procs = rt->gomaxprocs.load(std::memory_order_relaxed);
  if (procs <= 1 || rt->ncpu <= 1) return false;
  if (procs <= rt->npidle.load(std::memory_order_relaxed) + rt->nmspinning.load(std::memory_order_relaxed) + 1)
    return false;
  return m->p->runq.empty();
}

void do_spin() noexcept {
  for (int i = 0; i < 30; ++i) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
}

std::int64_t nanotime() noexcept { return monotonic_ns(); }

}  // namespace gort::sync_impl
