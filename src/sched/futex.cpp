#include "sched/futex.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace gort::sched {

std::int64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t coarse_monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t deadline_ns) noexcept {
  if (deadline_ns == 0) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
    return;
  }
  timespec abs{static_cast<time_t>(deadline_ns / 1'000'000'000), static_cast<long>(deadline_ns % 1'000'000'000)};
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET_PRIVATE, expected, &abs, nullptr,
          FUTEX_BITSET_MATCH_ANY);
}

void futex_wake(std::atomic<std::uint32_t>* word, int count) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

void RuntimeLock::lock_slow(std::uint32_t c) noexcept {
  // Go's lock2: a few rounds of spinning, each trying while the lock looks free and then
  // pausing 30 times; one round that yields the thread; then sleep. The pauses matter under
  // contention: a holder that unlocks and relocks at once keeps the line in its cache for a
  // run of critical sections, where a spinner that pounced on every release moved it
  // between cores every time (chan_mpmc at maxprocs 2 ran 3x slower). CAS only when free:
  // a failing CAS takes the line from the holder.
  // The affinity mask rather than sysconf(_SC_NPROCESSORS_ONLN), which opens a file under
  // /sys: this first runs at some program's first contended lock, and a descriptor that
  // appears then belongs to nobody the program knows about.
  static const bool multicore = [] {
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) > 1;
  }();
  for (int round = 0; round < (multicore ? 5 : 1); ++round) {
    for (c = state_.load(std::memory_order_relaxed); c == 0; c = state_.load(std::memory_order_relaxed)) {
      if (state_.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    }
    if (round < 4 && multicore) {
      for (int i = 0; i < 30; ++i) cpu_relax();
    } else {
      sched_yield();
    }
  }
  if (c != 2) c = state_.exchange(2, std::memory_order_acquire);
  while (c != 0) {
    futex_wait(&state_, 2);
    c = state_.exchange(2, std::memory_order_acquire);
  }
}

bool Note::sleep_until(std::int64_t deadline_ns) noexcept {
  while (key_.load(std::memory_order_acquire) == 0) {
    if (monotonic_ns() >= deadline_ns) return false;
    futex_wait(&key_, 0, deadline_ns);
  }
  return true;
}

}  // namespace gort::sched
