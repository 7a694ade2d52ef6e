// Shared helpers for gort's own tests.
#pragma once
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>

#include <span>
#include <sstream>
#include <string>
#include <thread>

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
// Wall-clock bounds stretch where every thread runs slowly: under the sanitizers, and in
// cross builds, which run under qemu-user (GORT_TEST_EMULATED).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(GORT_TEST_EMULATED)
inline constexpr int kTimeScale = 10;
#else
inline constexpr int kTimeScale = 1;
#endif
#if defined(GORT_TEST_EMULATED)
inline constexpr bool kEmulated = true;
#else
inline constexpr bool kEmulated = false;
#endif
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

// The files mapped into this process (/proc/self/maps): the symbolizer opens such an ELF
// module lazily, the first time a frame it symbolizes falls inside it, and keeps it open.
inline std::set<std::string> mapped_files() {
  std::set<std::string> files;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    const std::size_t slash = line.find('/');
    if (slash != std::string::npos) files.insert(line.substr(slash));
  }
  return files;
}

// The targets of the process's open file descriptors ("socket:[123]", "pipe:[4]", a path),
// leaving out mapped files (see mapped_files): what leak checks compare.
inline std::multiset<std::string> open_fd_targets() {
  const std::set<std::string> mapped = mapped_files();
  std::multiset<std::string> targets;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return targets;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == dirfd(d)) continue;
    char buf[4096];
    const ssize_t n = readlinkat(dirfd(d), e->d_name, buf, sizeof buf - 1);
    if (n < 0) continue;  // closed since readdir saw it
    std::string target(buf, std::size_t(n));
    if (!mapped.count(target)) targets.insert(std::move(target));
  }
  closedir(d);
  return targets;
}

// How many descriptors open_fd_targets sees (leak checks count them).
inline int open_fds() { return int(open_fd_targets().size()); }

// open_fd_targets once it matches `expected`, or after 2 s of differing: the snapshot a
// leak check compares. Library code on other threads (glibc reading a file under /sys,
// a resolver) may hold a descriptor for a moment; a leaked one stays.
inline std::multiset<std::string> settled_fd_targets(const std::multiset<std::string>& expected) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    std::multiset<std::string> now = open_fd_targets();
    if (now == expected || std::chrono::steady_clock::now() > give_up) return now;
    std::this_thread::yield();
  }
}
inline int settled_open_fds(int expected) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    const int now = open_fds();
    if (now == expected || std::chrono::steady_clock::now() > give_up) return now;
    std::this_thread::yield();
  }
}

#define GORT_INSTANTIATE_PROCS(Suite) \
  INSTANTIATE_TEST_SUITE_P(, Suite, ::testing::Values(1, 2, 8), ::gort_test::procs_name)

}  // namespace gort_test
