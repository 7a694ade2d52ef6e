// debug/trace — scheduler events for GORT_TRACE=file.json (Chrome trace event format,
// which Perfetto and chrome://tracing open).
//
// Invariants:
// - Off, a hook costs one load and one predictable branch: callers write
//   `if (trace::enabled()) trace::go_create(g);`, and everything past the flag lives out of
//   line in trace.cpp. The flag is set by run() before its first goroutine runs and cleared
//   before it flushes, so events are only recorded while a run is active.
// - Each M appends to its own buffer (no lock, no shared cache line): binary 16-byte
//   records stamped with the CPU's cycle counter. A full buffer is spilled, still binary,
//   to a side file under one lock; text formatting happens once, at the end of the run,
//   after every M has exited. Plain threads (a go() from outside, a wake from a plain
//   thread) share one locked buffer, shown as its own track.
// - Per M, slices nest correctly: a goroutine's slice ("B") opens when the M switches to
//   it and closes ("E") when the M switches away, both stamped at the same instant, so
//   every B on a track has its E (a slice still open at the end, on an M abandoned by
//   run(), is closed by the flush).
#pragma once
#include <atomic>

#include "sched/sched.hpp"

namespace gort::trace {

namespace detail {
// Set while a run records a trace. Relaxed: a hook that reads a stale value records one
// event more or less around start and stop, which the flush tolerates.
[[gnu::visibility("hidden")]] extern std::atomic<bool> g_on;
}  // namespace detail

// GORT_NO_TRACE_HOOKS compiles every hook out: the baseline that measures what the hooks
// cost while tracing is off (docs/benchmarks.md).
[[gnu::always_inline]] inline bool enabled() noexcept {
#ifdef GORT_NO_TRACE_HOOKS
  return false;
#else
  return __builtin_expect(detail::g_on.load(std::memory_order_relaxed), false);
#endif
}

// g was created by the calling goroutine (or a plain thread) and is about to be queued.
void go_create(const sched::G* g) noexcept;
// M m switches from `from` to `to` (either may be m's g0). Ends from's slice, with why it
// stopped (m->pending: yield, park with its wait reason, exit), and starts to's.
void go_switch(const sched::M* m, const sched::G* from, const sched::G* to) noexcept;
// g, which was waiting, is made runnable by the caller.
void go_unpark(const sched::G* g) noexcept;
// p's M stole n goroutines from victim.
void steal(const sched::P* p, const sched::P* victim, std::uint32_t n) noexcept;
// g entered blocking(); its P stays reserved for it until a hand-off.
void syscall_enter(const sched::G* g) noexcept;
// P p, whose goroutine is in a blocking call, was handed to another M.
void syscall_handoff(const sched::P* p) noexcept;
// g returned from blocking().
void syscall_exit(const sched::G* g) noexcept;

// run() start and end (debug/hooks.cpp): opens the file and sets the flag when GORT_TRACE
// names one; clears the flag and writes the file. `abandoned`: some M still runs.
void start(sched::Runtime* rt) noexcept;
void stop(bool abandoned) noexcept;

}  // namespace gort::trace
