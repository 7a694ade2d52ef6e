// chan — the type-erased channel core under gort::chan<T> and select (Go's chan.go and
// select.go, rebuilt).
//
// A channel is a lock, a ring buffer of `cap` slots, and two FIFO queues of waiters.
// Invariants, whenever the lock is free:
//   - at most one of recvq and sendq is non-empty (a receiver never waits while a value or
//     a sender is available, and vice versa);
//   - count <= cap, and a closed channel has an empty sendq (close wakes every waiter);
//   - a waiter is in a queue iff `in_queue` is set; a select's waiters all share one
//     SelectState, and only the party that flips its `done` from 0 to 1 may complete it.
// Waiters live on their owner's stack; whoever dequeues one completes it (moves the value,
// sets `success`) and wakes it after unlocking, and touches it no more after the wake.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include <gort/chan.hpp>
#include <gort/select.hpp>

#include "sched/futex.hpp"
#include "sched/waiter.hpp"

namespace gort::detail {

struct SelectState {
  std::atomic<std::uint32_t> done{0};   // 1 once a case won (a channel op or the select itself)
  std::atomic<std::uint32_t> woken{0};  // plain threads sleep on this
  struct ChanWaiter* fired = nullptr;   // the case that won; written by its winner before wake
};

struct ChanWaiter : sched::Waiter {
  SelectState* sel = nullptr;  // set for select cases
  bool in_queue = false;       // guarded by the channel's lock
  // Waiter::data: the value to send from, or the storage to receive into.
  // Waiter::success: the operation completed (false: woken by close).
  // Waiter::ticket: the select case index.
};

struct ChanCore {
  std::atomic<std::uint32_t> refs{1};
  const ElemOps* ops = nullptr;
  std::size_t cap = 0;
  std::size_t stride = 0;                // bytes per buffer slot
  unsigned char* buf = nullptr;          // cap slots, right after this header
  sched::DekkerLock lock;  // (its memory outlives every unlock: operations hold a reference)
  std::atomic<std::size_t> count{0};     // buffered values; written under lock
  std::size_t sendx = 0, recvx = 0;      // guarded by lock
  bool closed = false;                   // guarded by lock
  sched::WaitQueue recvq, sendq;         // of ChanWaiter; guarded by lock

  void* slot(std::size_t i) const noexcept { return buf + i * stride; }
};

// Non-blocking send from runtime code (timers): true if it was received or buffered.
bool chan_try_send(ChanCore* c, void* elem) noexcept;
// Non-blocking receive that discards the value (Timer.stop/reset drain a stale tick).
bool chan_try_drain(ChanCore* c) noexcept;

}  // namespace gort::detail
