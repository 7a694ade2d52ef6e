// time — sleep, Timer, Ticker and after_func over the per-P timer heaps (time/heap.hpp).
//
// A TimerCore is shared by its Timer/Ticker handles and, while pending, by the heap
// (reference counted). Its `ops_lock` serializes stop/reset with firing: every arming or
// stop bumps the node's seq, so a firing taken off the heap before a stop or reset is
// recognised as stale and sends nothing — after stop() or reset() no stale tick arrives.
#include <gort/time.hpp>

#include <new>
#include <thread>

#include "chan/chan.hpp"
#include "sched/sched.hpp"
#include "time/heap.hpp"

namespace gort::detail {

using time_impl::Timer;

struct TimerCore {
  Timer node;
  std::atomic<std::uint32_t> refs{1};
  sched::RuntimeLock ops_lock;
  ChanRef ch;          // where ticks go (nullptr for after_func)
  TimerFunc func{};    // after_func's callable
};

namespace {

TimerCore* core_of(Timer* t) noexcept { return static_cast<TimerCore*>(t->arg); }

void fire_core(Timer* t, std::int64_t now, std::uint64_t seq) noexcept {
  TimerCore* c = core_of(t);
  sched::RuntimeLockGuard l(c->ops_lock);
  if (c->ch.get()) {
    // A tick taken off the heap before a stop or reset is stale: it must not arrive after.
    if (c->node.seq.load(std::memory_order_relaxed) != seq) return;
    time_point tp{std::chrono::nanoseconds(now)};
    chan_try_send(c->ch.get(), &tp);  // full: the reader is behind, drop the tick (Go)
  } else if (c->func.fn) {
    // Once off the heap, f runs: stop() already reported it as fired (Go's AfterFunc).
    try {
      c->func.spawn(c->func.fn);
    } catch (...) {
      // The runtime is shutting down: nothing will run any more.
    }
  }
}

void retain_node(Timer* t) noexcept { timer_retain(core_of(t)); }
void release_node(Timer* t) noexcept { timer_release(core_of(t)); }

void arm(TimerCore* c, std::int64_t delay_ns, std::int64_t period_ns) {
  c->node.when = sched::monotonic_ns() + std::max<std::int64_t>(delay_ns, 0);
  c->node.period = period_ns;
  c->node.seq.fetch_add(1, std::memory_order_acq_rel);
  time_impl::add(&c->node);
}

// Stops c's node and forgets a tick already sent (requires ops_lock).
bool disarm(TimerCore* c) noexcept {
  // Off the heap first, then a new seq: a firing taken off (or re-armed) before the remove
  // carries the old seq and is dropped; none can start after it.
  const bool pending = time_impl::remove(&c->node);
  c->node.seq.fetch_add(1, std::memory_order_acq_rel);
  if (c->ch.get()) chan_try_drain(c->ch.get());
  return pending;
}

}  // namespace

TimerCore* timer_start(ChanCore* ch, std::int64_t delay_ns, std::int64_t period_ns, TimerFunc func) {
  if (!sched::runtime())
    throw std::logic_error("gort: timers need an active runtime; start one with gort::run(main) first");
  auto* c = new TimerCore;
  if (ch) {
    chan_retain(ch);
    c->ch = ChanRef(ch);
  }
  c->func = func;
  c->node.fire = &fire_core;
  c->node.arg = c;
  c->node.retain = &retain_node;
  c->node.release = &release_node;
  try {
    sched::RuntimeLockGuard l(c->ops_lock);
    arm(c, delay_ns, period_ns);
  } catch (...) {
    c->func = {};  // the caller still owns the callable
    timer_release(c);
    throw;
  }
  return c;
}

bool timer_stop(TimerCore* c) noexcept {
  if (!c) return false;
  sched::RuntimeLockGuard l(c->ops_lock);
  return disarm(c);
}

bool timer_reset(TimerCore* c, std::int64_t delay_ns, std::int64_t period_ns) {
  sched::RuntimeLockGuard l(c->ops_lock);
  const bool pending = disarm(c);
  arm(c, delay_ns, period_ns);
  return pending;
}

void timer_retain(TimerCore* c) noexcept { c->refs.fetch_add(1, std::memory_order_relaxed); }

void timer_release(TimerCore* c) noexcept {
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (c->func.fn) c->func.destroy(c->func.fn);
  delete c;
}

void sleep_ns(std::int64_t ns) {
  if (ns <= 0) return;
  sched::G* g = sched::current_g();
  if (!g) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
    return;
  }
  // The node is the G's own (not pending: a sleep ends only when it fires); it is added
  // only once we are switched out (in park's commit), so its firing cannot ready us
  // before we are parked.
  static_assert(sizeof(Timer) <= sizeof(g->wait_node) && alignof(Timer) <= 8);
  Timer& t = *new (g->wait_node) Timer;  // not pending: the last sleep ended when it fired
  t.when = sched::monotonic_ns() + ns;
  t.period = 0;
  t.removable = false;  // a sleep ends only by firing: the heap need not track where it is
  t.arg = g;
  t.fire = [](Timer* self, std::int64_t, std::uint64_t) noexcept { sched::ready(static_cast<sched::G*>(self->arg)); };
  sched::park(sched::WaitReason::sleep, [](sched::G*, void* node) {
    time_impl::add(static_cast<Timer*>(node));
    return true;
  }, &t);
}

}  // namespace gort::detail
