// sync/sema — Go's semaphore table: sleep and wakeup keyed by an address.
//
// semacquire(addr) waits until *addr > 0 and decrements it; semrelease(addr) increments it
// and wakes one waiter on that address. Waiters hash into kSemTableSize buckets, each with
// its own lock and a FIFO of Waiters (a waiter that already waited once may queue LIFO,
// as Mutex does, so it keeps its place). With handoff, the releaser grants the count
// directly to the first waiter (no barging) — Mutex's starvation mode relies on it.
// Invariant: a Waiter is in a bucket's queue iff its owner is blocked in semacquire.
#pragma once
#include <atomic>
#include <cstdint>

#include "sched/g.hpp"

namespace gort::sync_impl {

void semacquire(std::atomic<std::uint32_t>* addr, bool lifo, sched::WaitReason reason);
void semrelease(std::atomic<std::uint32_t>* addr, bool handoff);

// Mutex spinning policy (Go's sync_runtime_canSpin): spin a few times only on a multicore
// machine while other Ps are running and ours has nothing else queued.
bool can_spin(int iter) noexcept;
void do_spin() noexcept;
std::int64_t nanotime() noexcept;

}  // namespace gort::sync_impl
