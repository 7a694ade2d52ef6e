// debug/hooks — what run() tells the debugging tools: GORT_TRACE and GORT_DEBUG=schedtrace.
//
// Invariants: both hooks run on run()'s own thread. on_run_start runs after the Runtime
// exists and before any M or goroutine starts (and before run() counts the process's
// threads, so the schedtrace thread is never taken for a possible waker by the deadlock
// check); on_run_end runs after every M has exited or been abandoned and before the
// Runtime is freed. Neither costs anything when its variable is unset.
#pragma once
#include "sched/sched.hpp"

namespace gort::debug_impl {

void on_run_start(sched::Runtime* rt) noexcept;
void on_run_end(sched::Runtime* rt, bool abandoned) noexcept;

}  // namespace gort::debug_impl
