// sync/sema — sleep and wakeup on a counting semaphore (Go's semacquire/semrelease).
//
// semacquire(s) waits until s->count > 0 and decrements it; semrelease(s) increments it and
// wakes the first waiter. Each semaphore has its own lock and FIFO of Waiters (a waiter that
// already waited once re-queues at the front, as Go's Mutex does, so it keeps its place).
// With handoff, the releaser grants the count directly to the first waiter (no barging) —
// Mutex's starvation mode relies on it.
// Invariants: a Waiter is in s's queue iff its owner is blocked in semacquire(s);
// s->nwait equals the queue's length whenever s's lock is free.
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
