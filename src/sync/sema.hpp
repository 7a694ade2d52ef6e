// sync/sema — sleep and wakeup on a counting semaphore (Go's semacquire/semrelease).
//
// semacquire(s) waits until s->count > 0 and decrements it; semrelease(s) increments it and
// wakes the first waiter. Each semaphore has its own lock and FIFO of Waiters (a waiter that
// already waited once re-queues at the front, as Go's Mutex does, so it keeps its place).
// With handoff, the releaser grants the count directly to the first waiter (no barging) —
// Mutex's starvation mode relies on it.
// Invariants: a Waiter is in s's queue iff its owner is blocked in semacquire(s) (a
// goroutine may still be switching out: it releases the lock before it parks, and
// Waiter::wake_handshake settles which of it and its waker readies it);
// s->nwait equals the queue's length whenever s's lock is free.
// Lifetime. The semaphore lives in the user's object, which may be freed as soon as a
// semacquire returns (a WaitGroup on the waiter's stack). A semrelease touches s after it
// made its unit visible (nwait, the lock, the queue), and a waiter can take that unit
// without ever queueing; so semrelease holds s->releasing from before its increment to
// after its last touch, and semacquire does not return while releasing is non-zero. (Go
// keeps waiters in a global table, so its semrelease never touches the user's memory.)
#pragma once
#include <atomic>
#include <cstdint>

#include <gort/detail/sema.hpp>

#include "sched/g.hpp"

namespace gort::sync_impl {

void semacquire(detail::Sema* s, bool lifo, sched::WaitReason reason);
void semrelease(detail::Sema* s, bool handoff);

// Mutex spinning policy (Go's sync_runtime_canSpin): spin a few times only on a multicore
// machine while other Ps are running and ours has nothing else queued.
bool can_spin(int iter) noexcept;
void do_spin() noexcept;
std::int64_t nanotime() noexcept;

}  // namespace gort::sync_impl
