// bench/common.hpp — helpers shared by the C++ benchmark programs (gort and Boost.Fiber).
//
// Every program takes `<maxprocs> [sizes...]` on the command line and prints one line per
// metric to stdout: `RESULT <value> <unit> <metric-name>` (parsed by bench/compare.py).
#pragma once
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace bench {

using Clock = std::chrono::steady_clock;

// argv[i] as an integer, or `def` when absent.
inline long arg(int argc, char** argv, int i, long def) {
  return i < argc ? std::atol(argv[i]) : def;
}

inline Clock::time_point now() { return Clock::now(); }

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

inline double ns_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

inline void result(double value, const char* unit, const char* metric) {
  std::printf("RESULT %.3f %s %s\n", value, unit, metric);
  std::fflush(stdout);
}

// Fails the program (exit status 1) when a workload computed a wrong answer.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "check failed: %s\n", what);
    std::fflush(nullptr);
    std::_Exit(1);  // not exit(): this may run on a goroutine while other threads are live
  }
}

// Resident set size in bytes: resident pages from /proc/self/statm times the page size.
inline long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// Raises the soft limit on open descriptors to the hard limit, as Go 1.19+ does at start-up
// (the network workloads hold two descriptors per connection; the default soft limit is
// often 1024). Returns the new soft limit.
inline long raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return -1;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  return long(lim.rlim_cur);
}

}  // namespace bench
