// sched/futex — the two blocking primitives the runtime itself uses.
//
// RuntimeLock: a mutex for runtime data (Drepper's three-state futex lock). Runtime code
// never switches goroutines and never calls user code while holding one, so holders are
// brief and waiters may block their thread. It is not std::mutex: a lock released by the
// context that resumes after a park (a channel's lock) is released on another stack than
// it was taken on, which pthread mutexes and their TSan interceptors do not allow. TSan
// builds see it through explicit acquire/release annotations.
//
// Note: a one-shot sleep/wakeup event (Go's note). One sleeper, any number of wakers;
// clear() re-arms it and may only be called by the sleeper while nobody can wake it.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

#include "sched/sanitizer.hpp"

namespace gort::sched {

// Blocks the thread while *word == expected (or until the deadline, ns on CLOCK_MONOTONIC,
// 0 = none). Spurious returns are allowed.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t deadline_ns = 0) noexcept;
void futex_wake(std::atomic<std::uint32_t>* word, int count) noexcept;
std::int64_t monotonic_ns() noexcept;
// CLOCK_MONOTONIC_COARSE: a few ms of resolution, but no hardware clock read.
std::int64_t coarse_monotonic_ns() noexcept;

// One step of a spin-wait: tells the core we are spinning (frees the sibling hyperthread).
inline void cpu_relax() noexcept {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class RuntimeLock {
 public:
  void lock() noexcept {
    std::uint32_t c = 0;
    if (!state_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) lock_slow(c);
    san::acquire(this);
  }
  bool try_lock() noexcept {
    std::uint32_t c = 0;
    bool ok = state_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed);
    if (ok) san::acquire(this);
    return ok;
  }
  void unlock() noexcept {
    san::release(this);
    if (state_.exchange(0, std::memory_order_release) == 2) futex_wake(&state_, 1);
  }

 private:
  void lock_slow(std::uint32_t c) noexcept;
  std::atomic<std::uint32_t> state_{0};  // 0 free, 1 locked, 2 locked with waiters
};

class RuntimeLockGuard {
 public:
  explicit RuntimeLockGuard(RuntimeLock& l) noexcept : l_(l) { l_.lock(); }
  ~RuntimeLockGuard() { l_.unlock(); }
  RuntimeLockGuard(const RuntimeLockGuard&) = delete;
  RuntimeLockGuard& operator=(const RuntimeLockGuard&) = delete;

 private:
  RuntimeLock& l_;
};

class Note {
 public:
  void sleep() noexcept {
    while (key_.load(std::memory_order_acquire) == 0) futex_wait(&key_, 0);
  }
  // Sleeps until woken or until deadline_ns (monotonic); returns true when woken.
  bool sleep_until(std::int64_t deadline_ns) noexcept;
  void wakeup() noexcept {
    key_.store(1, std::memory_order_release);
    futex_wake(&key_, 1);
  }
  void clear() noexcept { key_.store(0, std::memory_order_relaxed); }
  bool woken() const noexcept { return key_.load(std::memory_order_acquire) != 0; }

 private:
  std::atomic<std::uint32_t> key_{0};
};

}  // namespace gort::sched
