#include "sync/sema.hpp"

#include <sched.h>

#include <new>
#include <optional>

#include <gort/runtime.hpp>

#include "sched/sched.hpp"
#include "sched/waiter.hpp"

namespace gort::sync_impl {

using namespace gort::sched;

namespace {

RuntimeLock& lock_of(detail::Sema* s) {
  static_assert(sizeof(RuntimeLock) <= sizeof(s->lock));
  return *std::launder(reinterpret_cast<RuntimeLock*>(s->lock));
}

bool cansemacquire(std::atomic<std::uint32_t>* count) {
  std::uint32_t v = count->load(std::memory_order_acquire);
  while (v > 0) {
    if (count->compare_exchange_weak(v, v - 1, std::memory_order_acq_rel, std::memory_order_acquire)) return true;
  }
  return false;
}

// Returns once no semrelease still touches s: the caller may free it after we return.
void wait_for_releasers(detail::Sema* s) {
  for (int spins = 0; s->releasing.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 64) cpu_relax(); else sched_yield();  // a releaser's thread was descheduled
  }
}

// Pins s for one semrelease (see sema.hpp, Lifetime).
struct ReleasePin {
  detail::Sema* s;
  explicit ReleasePin(detail::Sema* sema) : s(sema) { s->releasing.fetch_add(1, std::memory_order_seq_cst); }
  ~ReleasePin() { s->releasing.fetch_sub(1, std::memory_order_release); }
  ReleasePin(const ReleasePin&) = delete;
  ReleasePin& operator=(const ReleasePin&) = delete;
};

}  // namespace

void semacquire(detail::Sema* s, bool lifo, WaitReason reason) {
  if (cansemacquire(&s->count)) return wait_for_releasers(s);
  RuntimeLock& lock = lock_of(s);
  // A goroutine's Waiter lives in its G (dense, where a release walking many waiters finds
  // them cheaply); a plain thread's on its stack.
  std::optional<Waiter> thread_waiter;
  G* g = current_g();
  static_assert(sizeof(Waiter) <= sizeof(g->wait_node) && alignof(Waiter) <= 8);
  Waiter& w = g ? *new (g->wait_node) Waiter : thread_waiter.emplace();
  for (;;) {
    lock.lock();
    // Count ourselves before re-checking, so a concurrent semrelease sees us (Go's order).
    s->nwait.fetch_add(1, std::memory_order_seq_cst);
    if (cansemacquire(&s->count)) {
      s->nwait.fetch_sub(1, std::memory_order_relaxed);
      lock.unlock();
      return wait_for_releasers(s);
    }
    WaitQueue q{static_cast<Waiter*>(s->head), static_cast<Waiter*>(s->tail)};
    if (lifo) q.push_front(&w); else q.push_back(&w);
    s->head = q.head;
    s->tail = q.tail;
    w.success = false;
    w.woken.store(0, std::memory_order_relaxed);
    w.block_unlocking_first(reason, lock);
    // semrelease dequeued us (and decremented nwait). With handoff the count is ours.
    if (w.success || cansemacquire(&s->count)) return wait_for_releasers(s);
    lifo = true;  // we waited already: keep our place at the front
  }
}

void semrelease(detail::Sema* s, bool handoff) {
  Waiter* w = nullptr;
  {
    ReleasePin pin(s);
    s->count.fetch_add(1, std::memory_order_release);
    if (s->nwait.load(std::memory_order_seq_cst) == 0) return;  // nobody to wake
    RuntimeLock& lock = lock_of(s);
    lock.lock();
    WaitQueue q{static_cast<Waiter*>(s->head), static_cast<Waiter*>(s->tail)};
    w = q.pop_front();
    s->head = q.head;
    s->tail = q.tail;
    if (w) {
      s->nwait.fetch_sub(1, std::memory_order_relaxed);
      if (handoff && cansemacquire(&s->count)) w->success = true;
    }
    lock.unlock();
  }  // s is not touched past here: the woken waiter may free it
  if (!w) return;
  const bool direct = handoff && w->success && w->g && current_g();
  w->wake_handshake();
  // Starvation hand-off: let the waiter (now in our runnext) run right away.
  if (direct) gort::yield();
}

// Go's sync_runtime_canSpin, less its last rule (no spinning while the P has other runnable
// goroutines). With that rule a contended Mutex has two steady states: spinners that win
// and keep the waiters parked, or every contender parking at once because the woken
// waiters it readied sit in the run queues. Where a cache line crosses cores slowly the
// second one wins: 6-8% of lock operations parked and the 8-way benchmark ran 2.5x
// slower, where Go parks 0.08%. The spin is bounded (4 rounds of 30 pauses, ~2 us), which
// is all a queued goroutine can wait longer for.
bool can_spin(int iter) noexcept {
  Runtime* rt = runtime();
  M* m = this_m();
  if (!rt || !m || !m->p || iter >= 4) return false;
  const std::int32_t procs = rt->gomaxprocs.load(std::memory_order_relaxed);
  if (procs <= 1 || rt->ncpu <= 1) return false;
  if (procs <= rt->npidle.load(std::memory_order_relaxed) + rt->nmspinning.load(std::memory_order_relaxed) + 1)
    return false;
  return true;
}

void do_spin() noexcept {
  for (int i = 0; i < 30; ++i) sched::cpu_relax();
}

std::int64_t nanotime() noexcept { return monotonic_ns(); }

}  // namespace gort::sync_impl
