// time/heap — the per-P timer heap (Go 1.14+'s 4-ary heap), the contract between the
// scheduler and timers.
//
// A Timer is a runtime node: fire(t, now) runs when monotonic time reaches `when`, on
// whichever M runs the heap (from the scheduler loop, never under the heap's lock). Fire
// functions must not block or throw; they ready goroutines, send without blocking, spawn.
//
// Invariants, under TimerHeap::lock:
//   - a Timer is in at most one heap; t->heap is that heap (nullptr: not pending);
//   - a removable timer's entry is items[t->index] (with its `when`). A timer that is not
//     removable (a goroutine's sleep) leaves its heap only from the top (fired, moved or
//     discarded), so the heap keeps no position for it: sifting writes nothing into it;
//   - items form a 4-ary min-heap on `when`; timer0_when mirrors items[0].when (0 when
//     empty), readable without the lock so the scheduler checks for due timers for free.
// Why positions only for removable timers: sleeping goroutines' nodes live in their G
// descriptors, each a cold line. Writing the index of every entry a sift moved (~8 per pop
// among 100,000 sleepers), stores the heap's unlock then waited for, cost sleep_many 3-10%
// of its median overshoot.
// Reference counting: a timer with retain/release hooks holds one reference while
// pending; firing passes that reference to fire() (released after it), and a periodic
// timer re-armed before firing takes a fresh one.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "sched/futex.hpp"

namespace gort::time_impl {

struct TimerHeap;

struct Timer {
  // What firing reads comes first, in one cache line when the node starts a line's second
  // 16 bytes (G::wait_node): a woken sleeper's descriptor is cold.
  // seq: the timer's `seq` when it was taken off the heap, so an owner that re-armed or
  // stopped it meanwhile (bumping seq) can tell a stale firing.
  void (*fire)(Timer* t, std::int64_t now, std::uint64_t seq) noexcept = nullptr;
  void* arg = nullptr;
  void (*release)(Timer* t) noexcept = nullptr;
  std::atomic<TimerHeap*> heap{nullptr};  // written under that heap's lock
  std::atomic<std::uint64_t> seq{0};       // owner-defined arming generation
  std::int64_t period = 0;   // > 0: fire again every period
  std::int64_t when = 0;     // monotonic ns (the heap's entry has a copy)
  void (*retain)(Timer* t) noexcept = nullptr;
  std::uint32_t index = 0;                 // its entry's position (removable timers only)
  bool removable = true;                   // false: never remove()d, only fired (a sleep)
};

struct TimerHeap {
  // `when` is kept beside the pointer (as Go 1.23 does): sifting compares without touching
  // the timers, which mostly live in parked goroutines' descriptors (a cache miss each).
  struct Entry {
    std::int64_t when;
    std::uintptr_t bits;  // the Timer*, with bit 0 set when it is removable
    Timer* timer() const noexcept { return reinterpret_cast<Timer*>(bits & ~std::uintptr_t(1)); }
    bool removable() const noexcept { return bits & 1; }
  };
  sched::RuntimeLock lock;
  std::vector<Entry> items;                  // guarded by lock
  std::atomic<std::int64_t> timer0_when{0};  // earliest `when`, 0 if empty

  // All require lock.
  void push(Timer* t);
  void remove(Timer* t) noexcept;            // t in this heap, removable or at the top
  Timer* top() const noexcept { return items.empty() ? nullptr : items[0].timer(); }
  void resift_top() noexcept {  // items[0].when grew
    sift_down(0);
    publish();
  }

 private:
  void place(std::size_t i, Entry e) noexcept {
    items[i] = e;
    if (e.removable()) e.timer()->index = std::uint32_t(i);
  }
  void sift_up(std::size_t i) noexcept;
  std::size_t sift_down(std::size_t i) noexcept;
  void publish() noexcept { timer0_when.store(items.empty() ? 0 : items[0].when, std::memory_order_release); }
};

// Runs every timer in h due at `now`. Returns how many fired.
int run_due(TimerHeap& h, std::int64_t now) noexcept;

// Moves every timer from `from` into `to` (a retiring P's timers).
void move_all(TimerHeap& from, TimerHeap& to);

// Releases the references of timers still pending when the runtime is torn down.
void discard_all(TimerHeap& h) noexcept;

// Adds t (t->when set, not pending) to the calling M's P's heap, or another live P's.
void add(Timer* t);
// Removes t (a removable timer) if pending; true if it was (so it will not fire).
bool remove(Timer* t) noexcept;

}  // namespace gort::time_impl
