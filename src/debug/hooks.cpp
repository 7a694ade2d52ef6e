// debug/hooks — starts and stops the tracer and the schedtrace thread with each run().
//
// schedtrace (GORT_DEBUG=schedtrace=N, as Go's GODEBUG): a small thread of its own prints
// one line every N ms to stderr. It only reads counters (atomics, plus the M counts under
// Runtime::lock for a moment), so it never slows the scheduler down; it is stopped and
// joined before the Runtime goes away.
#include "debug/hooks.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "debug/trace.hpp"

namespace gort::debug_impl {

using namespace gort::sched;

namespace {

std::thread g_schedtrace;
Note g_schedtrace_stop;

// N from GORT_DEBUG's "schedtrace=N" (comma-separated settings, as GODEBUG); 0 if absent.
long schedtrace_ms() {
  const char* v = std::getenv("GORT_DEBUG");
  if (!v) return 0;
  std::string s = v;
  for (std::size_t pos = 0; pos <= s.size();) {
    std::size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    std::string kv = s.substr(pos, end - pos);
    if (kv.rfind("schedtrace=", 0) == 0) return std::max(0L, std::strtol(kv.c_str() + 11, nullptr, 10));
    pos = end + 1;
  }
  return 0;
}

void print_line(Runtime* rt) {
  std::string line = schedtrace_line(rt);
  if (line.empty()) return;
  line += '\n';
  ssize_t unused = write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
}

void schedtrace_loop(Runtime* rt, long period_ms) {
  const std::int64_t period = period_ms * 1'000'000;
  for (std::int64_t next = monotonic_ns() + period; !g_schedtrace_stop.sleep_until(next); next += period) {
    print_line(rt);
  }
}

}  // namespace

// One line in Go's format: SCHED 1004ms: gomaxprocs=2 idleprocs=1 threads=5
// spinningthreads=0 idlethreads=2 runqueue=0 [0 0] (the global queue, then each P's).
std::string schedtrace_line(Runtime* rt) {
  san::IgnoreAccesses ignore;  // racy reads of owner-written counters, as Go's schedtrace
  const int procs = rt->gomaxprocs.load(std::memory_order_acquire);
  if (procs == 0) return {};  // run() has not made its Ps yet
  std::int64_t threads, idle;
  {
    RuntimeLockGuard l(rt->lock);
    threads = rt->mcount;
    idle = rt->nmidle;
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%lld spinningthreads=%d idlethreads=%lld runqueue=%d [",
                static_cast<long long>((monotonic_ns() - rt->start_ns) / 1'000'000), procs,
                rt->npidle.load(std::memory_order_relaxed), static_cast<long long>(threads),
                rt->nmspinning.load(std::memory_order_relaxed), static_cast<long long>(idle),
                rt->runq_size.load(std::memory_order_relaxed));
  std::string line = buf;
  for (int i = 0; i < procs && i < rt->nallp.load(std::memory_order_acquire); ++i) {
    if (i) line += ' ';
    line += std::to_string(rt->allp[i].load(std::memory_order_acquire)->runq.approx_size());
  }
  line += ']';
  return line;
}

void on_run_start(Runtime* rt) noexcept {
  trace::start(rt);
  if (long ms = schedtrace_ms(); ms > 0) {
    g_schedtrace_stop.clear();
    g_schedtrace = std::thread(schedtrace_loop, rt, ms);
  }
}

void on_run_end(Runtime* rt, bool abandoned) noexcept {
  (void)rt;
  if (g_schedtrace.joinable()) {
    g_schedtrace_stop.wakeup();
    g_schedtrace.join();
  }
  trace::stop(abandoned);
}

}  // namespace gort::debug_impl
