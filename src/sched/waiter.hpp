// sched/waiter — one blocking point that works for goroutines and plain threads alike.
//
// Every blocking primitive (channels, semaphores, timers) records a Waiter in its own wait
// structure, under its own lock, then calls block(): a goroutine parks (the lock is released
// only after it is switched out, so no waker can ready it early); a plain OS thread releases
// the lock and sleeps on a futex. Whoever removes the Waiter from the structure calls wake()
// exactly once. `ticket`/`data` are for the owning structure (FIFO order, a value slot).
//
// Lifetime: a Waiter lives on the blocked party's stack (a semaphore's goroutine waiter in
// its G's wait_node); after wake() the waker must not touch it again (the woken party may
// return and reuse that memory at once).
#pragma once
#include <atomic>
#include <cstdint>

#include "sched/futex.hpp"
#include "sched/g.hpp"
#include "sched/sched.hpp"

namespace gort::sched {

// Plain OS threads blocked inside the runtime cannot wake anyone, which deadlock detection
// needs to know. The count covers a thread from before its Waiter becomes visible (its
// owner's lock still held) until a waker picks it — the waker uncounts it *before* waking
// it, so a thread already woken is never counted as asleep.
void foreign_block_begin() noexcept;
void foreign_block_woken() noexcept;
// Called by a plain thread once blocked-and-counted (its lock released): runs the global
// deadlock check, as an M going idle does.
void foreign_block_check() noexcept;

struct Waiter {
  G* g = current_g();                    // nullptr: a plain thread
  std::atomic<std::uint32_t> woken{0};   // plain threads sleep on this
  Waiter* next = nullptr;                // links for the owning structure
  Waiter* prev = nullptr;
  void* data = nullptr;                  // owner-defined
  std::uint64_t ticket = 0;              // owner-defined
  std::int64_t start_ns = 0;             // when it started waiting (Mutex starvation)
  bool success = false;                  // owner-defined (e.g. channel: received a value)
  bool foreign_counted = false;          // a plain thread's block() counted it blocked

  // Blocks until wake(); `lock` (held on entry) is released once blocking is safe.
  // A plain thread counts itself blocked for deadlock detection, unless `counted` is false:
  // a wait that something outside the runtime can end (an fd) leaves the thread a live
  // potential waker.
  template <class Lock>
  void block(WaitReason reason, Lock& lock, bool counted = true) {
    if (g) {
      park(reason, [](G*, void* l) { static_cast<Lock*>(l)->unlock(); return true; }, &lock);
    } else {
      foreign_counted = counted;
      if (counted) foreign_block_begin();
      lock.unlock();
      if (counted) foreign_block_check();
      while (woken.load(std::memory_order_acquire) == 0) futex_wait(&woken, 0);
    }
  }

  // As block(), but a goroutine releases `lock` before it parks, so no waker ever spins on
  // the lock through the switch. The park's commit and wake_handshake() then agree through
  // `woken` on who readies the goroutine: 0 waiting, kParked once switched out, kWokenEarly
  // when woken before that (the commit then cancels the park and it runs on). A Waiter
  // blocked this way must be woken with wake_handshake().
  static constexpr std::uint32_t kParked = 1, kWokenEarly = 2;
  template <class Lock>
  void block_unlocking_first(WaitReason reason, Lock& lock) {
    if (!g) {
      block(reason, lock);
      return;
    }
    woken.store(0, std::memory_order_relaxed);
    lock.unlock();
    park(reason, [](G*, void* self) {
      std::uint32_t expected = 0;
      return static_cast<Waiter*>(self)->woken.compare_exchange_strong(
          expected, kParked, std::memory_order_acq_rel, std::memory_order_acquire);
    }, this);
  }
  void wake_handshake() noexcept {
    if (g) {
      G* const wg = g;  // once kWokenEarly is set the waiter may return and reuse this memory
      std::uint32_t expected = 0;
      if (woken.compare_exchange_strong(expected, kWokenEarly, std::memory_order_acq_rel, std::memory_order_acquire))
        return;
      ready(wg);
      return;
    }
    wake();
  }

  void wake() noexcept {
    if (g) {
      ready(g);
    } else {
      if (foreign_counted) foreign_block_woken();
      // The moment woken is set, the sleeper may return (and this Waiter vanish).
      woken.store(1, std::memory_order_release);
      futex_wake(&woken, 1);
    }
  }
};

// A FIFO of Waiters, linked through next/prev. Guarded by its owner's lock.
struct WaitQueue {
  Waiter* head = nullptr;
  Waiter* tail = nullptr;
  bool empty() const noexcept { return head == nullptr; }
  void push_back(Waiter* w) noexcept {
    w->next = nullptr;
    w->prev = tail;
    if (tail) tail->next = w; else head = w;
    tail = w;
  }
  void push_front(Waiter* w) noexcept {
    w->prev = nullptr;
    w->next = head;
    if (head) head->prev = w; else tail = w;
    head = w;
  }
  Waiter* pop_front() noexcept {
    Waiter* w = head;
    if (w) remove(w);
    return w;
  }
  void remove(Waiter* w) noexcept {
    if (w->prev) w->prev->next = w->next; else head = w->next;
    if (w->next) w->next->prev = w->prev; else tail = w->prev;
    w->next = w->prev = nullptr;
  }
};

}  // namespace gort::sched
