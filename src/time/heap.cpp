// time/heap — the 4-ary timer heap and running due timers (invariants in time/heap.hpp).
#include "time/heap.hpp"

#include <limits>
#include <stdexcept>

#include "sched/sanitizer.hpp"
#include "sched/sched.hpp"

namespace gort::time_impl {

namespace {
constexpr std::size_t kArity = 4;  // Go's: shallower than binary, cache-friendlier siftdown
}

void TimerHeap::sift_up(std::size_t i) noexcept {
  const Entry e = items[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / kArity;
    if (items[parent].when <= e.when) break;
    place(i, items[parent]);
    i = parent;
  }
  place(i, e);
}

// Returns where the entry that was at i ends up.
std::size_t TimerHeap::sift_down(std::size_t i) noexcept {
  const Entry e = items[i];
  const std::size_t n = items.size();
  for (;;) {
    const std::size_t first = i * kArity + 1;
    if (first >= n) break;
    std::size_t best = first;
    for (std::size_t c = first + 1; c < first + kArity && c < n; ++c) {
      if (items[c].when < items[best].when) best = c;
    }
    if (items[best].when >= e.when) break;
    place(i, items[best]);
    i = best;
  }
  place(i, e);
  return i;
}

void TimerHeap::push(Timer* t) {
  items.push_back(Entry{t->when, reinterpret_cast<std::uintptr_t>(t) | (t->removable ? 1u : 0u)});
  t->heap.store(this, std::memory_order_release);
  sift_up(items.size() - 1);
  publish();
}

void TimerHeap::remove(Timer* t) noexcept {
  const std::size_t i = items[0].timer() == t ? 0 : t->index;
  // Only a removable timer knows where it is; anything else leaves from the top.
  if (i >= items.size() || items[i].timer() != t)
    sched::fatal("timer removed from the middle of its heap, but it keeps no position");
  const Entry last = items.back();
  items.pop_back();
  t->heap.store(nullptr, std::memory_order_release);
  if (last.timer() != t) {
    place(i, last);
    sift_up(sift_down(i));
  }
  publish();
}

int run_due(TimerHeap& h, std::int64_t now) noexcept {
  const std::int64_t first = h.timer0_when.load(std::memory_order_acquire);
  if (first == 0 || first > now) return 0;
  int fired = 0;
  h.lock.lock();
  for (Timer* t = h.top(); t && h.items[0].when <= now; t = h.top()) {
    const std::uint64_t seq = t->seq.load(std::memory_order_acquire);
    auto fire = t->fire;
    auto release = t->release;  // read now: a one-shot timer without hooks may vanish in fire
    if (t->period > 0) {
      // Re-armed in place: the timer never looks "not pending" to a concurrent remove(),
      // which could otherwise add it a second time.
      t->when += t->period;
      if (t->when <= now) t->when = now + t->period;  // missed ticks are dropped, as in Go
      if (t->retain) t->retain(t);  // the firing's reference; the heap keeps its own
      h.items[0].when = t->when;
      h.resift_top();
    } else {
      h.remove(t);
    }
    h.lock.unlock();
    fire(t, now, seq);
    if (release) release(t);
    ++fired;
    h.lock.lock();
  }
  h.lock.unlock();
  return fired;
}

void move_all(TimerHeap& from, TimerHeap& to) {
  if (&from == &to) return;
  sched::RuntimeLockGuard a(from.lock);
  sched::RuntimeLockGuard b(to.lock);
  while (Timer* t = from.top()) {
    from.remove(t);
    to.push(t);
  }
}

void discard_all(TimerHeap& h) noexcept {
  h.lock.lock();
  while (Timer* t = h.top()) {
    h.remove(t);
    auto release = t->release;
    h.lock.unlock();
    if (release) release(t);
    h.lock.lock();
  }
  h.lock.unlock();
}

void add(Timer* t) {
  sched::Runtime* rt = sched::runtime();
  if (!rt) throw std::logic_error("gort: timers need an active runtime; start one with gort::run(main) first");
  sched::P* p;
  {
    // The M's fields belong to its g0 (TSan: another fiber); the P found is locked below.
    sched::san::IgnoreAccesses ignore;
    sched::M* m = sched::this_m();
    p = m && m->p ? m->p : rt->allp[0].load(std::memory_order_acquire);
  }
  if (t->retain) t->retain(t);
  // Read before publishing: once on the heap, another M may fire and re-arm t (a ticker).
  const std::int64_t when = t->when;
  {
    sched::RuntimeLockGuard l(p->timers.lock);
    p->timers.push(t);
  }
  sched::timer_added(rt, when);
}

bool remove(Timer* t) noexcept {
  for (;;) {
    TimerHeap* h = t->heap.load(std::memory_order_acquire);
    if (!h) return false;
    h->lock.lock();
    if (t->heap.load(std::memory_order_relaxed) != h) {  // fired or moved meanwhile
      h->lock.unlock();
      continue;
    }
    h->remove(t);
    h->lock.unlock();
    if (t->release) t->release(t);
    return true;
  }
}

}  // namespace gort::time_impl
