// Shared helpers for gort's own tests.
#pragma once
#include <dirent.h>
#include <gtest/gtest.h>

#include <span>
#include <sstream>
#include <string>

#include <gort/gort.hpp>
#include <gort/gtest.hpp>

namespace gort_test {

// Sanitizer builds run the stress tests at a tenth of their size (TSan is ~10x slower).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr int kScale = 10;
#else
inline constexpr int kScale = 1;
#endif
constexpr int scaled(int n) { return n / kScale > 0 ? n / kScale : 1; }
// Each goroutine's first run creates a TSan fiber (a whole ThreadState: milliseconds on
// these VMs), so tests that spawn by the hundred thousand run at 1/100 under TSan.
#if defined(__SANITIZE_THREAD__)
inline constexpr int kSpawnScale = 100;
#else
inline constexpr int kSpawnScale = kScale;
#endif
constexpr int spawn_scaled(int n) { return n / kSpawnScale > 0 ? n / kSpawnScale : 1; }

// Keeps a CPU busy for about n loop iterations without touching memory or the runtime.
inline void burn_cpu(int n) {
  for (int i = 0; i < n; ++i) asm volatile("" ::: "memory");
}

// Parameterized over maxprocs 1, 2 and 8; every test body runs as goroutine 1 of a fresh
// run() and fails if it leaves goroutines behind.
class Procs : public ::testing::TestWithParam<int> {
 protected:
  template <class F>
  void run(F&& body) {
    gort::testing::run_test(std::forward<F>(body), GetParam());
  }
};

inline std::string procs_name(const ::testing::TestParamInfo<int>& info) {
  return "maxprocs" + std::to_string(info.param);
}

// Goroutines whose dump header shows them parked as `reason` ("chan receive",
// "sync.Mutex.Lock", ...): tests wait for "X is now blocked" with this, never with sleeps.
inline int count_parked(const std::string& reason) {
  std::ostringstream os;
  gort::debug::write_goroutines(os, 2);
  const std::string s = os.str();
  int n = 0;
  for (const std::string& pat : {"[" + reason + "]", "[" + reason + ", "}) {
    for (std::size_t p = s.find(pat); p != std::string::npos; p = s.find(pat, p + 1)) ++n;
  }
  return n;
}

// Yields until at least n goroutines are parked as `reason` (an event wait, not a sleep).
inline void wait_parked(const std::string& reason, int n) {
  while (count_parked(reason) < n) gort::yield();
}

// What f panics with (gort::panic_error's message), or "<no panic_error>".
template <class F>
std::string panic_message(F&& f) {
  try {
    f();
  } catch (const gort::panic_error& e) {
    return e.what();
  }
  return "<no panic_error>";
}

// Everything c delivers until the peer closes its side.
inline std::string read_to_eof(gort::net::Conn& c) {
  std::string s;
  char buf[4096];
  while (std::size_t n = c.read(std::span<char>(buf))) s.append(buf, n);
  return s;
}

// The process's open file descriptors (leak checks), -1 if /proc is unavailable.
inline int open_fds() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (readdir(d)) ++n;
  closedir(d);
  return n - 3;  // ".", ".." and the directory's own descriptor
}

#define GORT_INSTANTIATE_PROCS(Suite) \
  INSTANTIATE_TEST_SUITE_P(, Suite, ::testing::Values(1, 2, 8), ::gort_test::procs_name)

}  // namespace gort_test
