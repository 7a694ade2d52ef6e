#include "sync/sema.hpp"

#include <new>

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

}  // namespace

void semacquire(detail::Sema* s, bool lifo, WaitReason reason) {
  if (cansemacquire(&s->count)) return;
  RuntimeLock& lock = lock_of(s);
  Waiter w;
  for (;;) {
    lock.lock();
    // Count ourselves before re-checking, so a concurrent semrelease sees us (Go's order).
    s->nwait.fetch_add(1, std::memory_order_seq_cst);
    if (cansemacquire(&s->count)) {
      s->nwait.fetch_sub(1, std::memory_order_relaxed);
      lock.unlock();
      return;
    }
    WaitQueue q{static_cast<Waiter*>(s->head), static_cast<Waiter*>(s->tail)};
    if (lifo) q.push_front(&w); else q.push_back(&w);
    s->head = q.head;
    s->tail = q.tail;
    w.success = false;
    w.woken.store(0, std::memory_order_relaxed);
    w.block(reason, lock);
    // semrelease dequeued us (and decremented nwait). With handoff the count is ours.
    if (w.success || cansemacquire(&s->count)) return;
    lifo = true;  // we waited already: keep our place at the front
  }
}

void semrelease(detail::Sema* s, bool handoff) {
  s->count.fetch_add(1, std::memory_order_release);
  if (s->nwait.load(std::memory_order_seq_cst) == 0) return;  // nobody to wake
  RuntimeLock& lock = lock_of(s);
  lock.lock();
  WaitQueue q{static_cast<Waiter*>(s->head), static_cast<Waiter*>(s->tail)};
  Waiter* w = q.pop_front();
  s->head = q.head;
  s->tail = q.tail;
  if (!w) {
    lock.unlock();
    return;
  }
  s->nwait.fetch_sub(1, std::memory_order_relaxed);
  if (handoff && cansemacquire(&s->count)) w->success = true;
  const bool direct = handoff && w->success && w->g && current_g();
  lock.unlock();
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
  for (int i = 0; i < 30; ++i) sched::cpu_relax();
}

std::int64_t nanotime() noexcept { return monotonic_ns(); }

}  // namespace gort::sync_impl
