// debug/hooks — what run() tells the debugging tools: GORT_TRACE and GORT_DEBUG=schedtrace.
//
// Invariants: both hooks run on run()'s own thread. on_run_start runs after the Runtime
// exists and before any M or goroutine starts (and before run() counts the process's
// threads, so the schedtrace thread is never taken for a possible waker by the deadlock
// check); on_run_end runs after every M has exited or been abandoned and before the
// Runtime is freed. Neither costs anything when its variable is unset.
//
// on_main_return runs on goroutine 1 as main returns, while the scheduler still runs:
// debug::serve's servers stop there (their goroutines must end before run() does, or their
// sockets would stay open). It costs one atomic load when no server runs.
#pragma once
#include <string>

#include "sched/sched.hpp"

namespace gort::debug_impl {

void on_run_start(sched::Runtime* rt) noexcept;
void on_run_end(sched::Runtime* rt, bool abandoned) noexcept;
void on_main_return();  // src/debug/serve.cpp

// The schedtrace line without its newline ("SCHED 12ms: gomaxprocs=2 ... [0 0]"); empty
// before run() has made its Ps. Any thread.
std::string schedtrace_line(sched::Runtime* rt);

}  // namespace gort::debug_impl
