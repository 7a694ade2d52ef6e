// sched/futex — the two blocking primitives the runtime itself uses.
//
// RuntimeLock: a mutex for runtime data (Drepper's three-state futex lock). Runtime code
// never switches goroutines and never calls user code while holding one, so holders are
// brief and waiters may block their thread. It is not std::mutex: a lock released by the
// context that resumes after a park (a channel's lock) is released on another stack than
// it was taken on, which pthread mutexes and their TSan interceptors do not allow. TSan
// builds see it through explicit acquire/release annotations.
//
// DekkerLock: the same, with an unlock that is a store and a load instead of a
// read-modify-write until the lock is first slept on (about 6 ns less per critical
// section on the machines we measure: a third of a buffered channel operation).
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
// 0 = none). Spurious returns are allowed (and, under TSan, come every 20 ms: futex.cpp).
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
    if (!state_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) lock_slow();
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
  void lock_slow() noexcept;
  std::atomic<std::uint32_t> state_{0};  // 0 free, 1 locked, 2 locked with waiters
};

// Whether heavy_barrier() is membarrier(2) (1), a fence (2), or not decided yet (0).
// Decided once per process, by init_heavy_barrier() (runtime start, or a lock's first sleeper).
inline std::atomic<int> g_heavy_barrier{0};
void init_heavy_barrier() noexcept;
// A full memory barrier on every thread of the process that is running now (membarrier's
// private expedited command): the far side of an asymmetric Dekker handshake, whose near
// side needs only a compiler barrier. A plain fence where membarrier is missing. False if
// the system call failed (the handshake may then miss).
bool heavy_barrier() noexcept;

// Drepper's three-state lock (a thread about to sleep marks the word 2, and an unlock
// that finds 2 wakes one) with a second unlock that is a store and a load instead of an
// exchange. A store can overwrite a 2, so sleepers also count themselves in sleep_, and
// after that every such unlock must either have made its store visible (the sleeper,
// checking again, finds the lock free) or see the count and wake it. With a fence on both
// sides that is Dekker's handshake; here the unlock side goes without one until a
// sleeper comes, which switches the lock to exchange unlocks (fenced) and then issues
// heavy_barrier(), so that store unlocks already past their check of the fence state are
// ordered too. A lock nobody sleeps on (a channel used by one P, or by goroutines taking
// turns) never pays a fence; a contended one pays what RuntimeLock pays, plus a
// membarrier per contended period. Paying it per sleep cost more: on the virtual machines
// we measure, a membarrier interrupts the process's other CPUs at a price (chan_mpmc at
// maxprocs 2 went from 87 to 310 ns an item). So the lock stays fenced until
// kUnfenceAfter exchange unlocks in a row found no sleeper, and only then, with no
// sleeper registered, goes back to store unlocks: one sleep early on (a holder's thread
// preempted) no longer costs every later unlock a locked exchange (~6 ns on our VMs;
// chan_buffered at maxprocs 2 went from 42 to 29 ns an item). Without membarrier, every
// unlock exchanges.
// The store unlock reads sleep_ after releasing, so its caller must keep the lock's
// memory alive through the call (channel operations hold a reference to their channel);
// unlock_detached() is for callers that do not.
class DekkerLock {
 public:
  void lock() noexcept {
    std::uint32_t c = 0;
    const bool slept = !locked_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed) && lock_slow();
    san::acquire(this);
    if (slept) fenced_unlocks_ = 0;
  }
  bool try_lock() noexcept {
    std::uint32_t c = 0;
    bool ok = locked_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed);
    if (ok) san::acquire(this);
    return ok;
  }
  void unlock() noexcept {
    const bool store_unlock =
        sleep_.load(std::memory_order_relaxed) < kFencing && g_heavy_barrier.load(std::memory_order_relaxed) == 1;
    if (!store_unlock && ++fenced_unlocks_ >= kUnfenceAfter) unfence();
    san::release(this);
    if (store_unlock) {
      locked_.store(0, std::memory_order_release);
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the compiler keeps the order; a sleeper fences the CPU
      if ((sleep_.load(std::memory_order_relaxed) & kSleepersMask) != 0) futex_wake(&locked_, 1);
    } else {
      release_and_wake();
    }
  }
  // For an unlocker that does not keep the lock's memory alive (a parked goroutine's
  // commit, run on another context: the goroutine may be resumed, return and drop the
  // last reference to the channel as soon as the lock is free). Drepper's unlock: it
  // touches nothing after the exchange but the futex address.
  void unlock_detached() noexcept {
    san::release(this);
    release_and_wake();
  }

  // Whether unlocks exchange (a sleeper came and the quiet stretch since is short).
  bool fenced() const noexcept { return sleep_.load(std::memory_order_relaxed) >= kFencing; }

  static constexpr std::uint32_t kUnfenceAfter = 1u << 10;

 private:
  static constexpr std::uint32_t kSleepersMask = 0xffff;  // sleep_: sleepers in the low bits,
  static constexpr std::uint32_t kFencing = 1u << 16;     // a sleeper switching the lock to fenced,
  static constexpr std::uint32_t kFenced = 1u << 17;      // and the switch made (its barrier done)
  void release_and_wake() noexcept {
    if (locked_.exchange(0, std::memory_order_seq_cst) == 2) futex_wake(&locked_, 1);
  }
  // Held, fenced, and long without sleepers: back to store unlocks, unless a sleeper has
  // registered meanwhile (one that registers after this sees the lock unfenced and fences
  // it again itself).
  void unfence() noexcept {
    fenced_unlocks_ = 0;
    std::uint32_t fenced = kFencing | kFenced;
    sleep_.compare_exchange_strong(fenced, 0, std::memory_order_seq_cst, std::memory_order_relaxed);
  }
  bool lock_slow() noexcept;  // true when it slept (registered as a sleeper)
  std::atomic<std::uint32_t> locked_{0};  // 0 free, 1 held, 2 held and a thread may sleep on it
  // Threads past spinning, about to sleep or asleep (kSleepersMask), and the fence state.
  std::atomic<std::uint32_t> sleep_{0};
  std::uint32_t fenced_unlocks_ = 0;  // exchange unlocks since the last sleeper; the holder's
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

// A one-shot wake-up for one sleeping thread (an idle M). The key is 0 (clear), 1 (woken)
// or 2 (the sleeper is in, or about to enter, futex_wait): wakeup() makes the syscall only
// when someone sleeps. An M is often woken while it is still on its way to sleep (it just
// put itself on the idle list), and on this kind of VM a futex_wake costs microseconds.
class Note {
 public:
  void sleep() noexcept {
    std::uint32_t v = key_.load(std::memory_order_acquire);
    while (v != 1) {
      if (v == 0 && !key_.compare_exchange_weak(v, 2, std::memory_order_acquire, std::memory_order_acquire)) continue;
      futex_wait(&key_, 2);
      v = key_.load(std::memory_order_acquire);
    }
  }
  // Sleeps until woken or until deadline_ns (monotonic); returns true when woken.
  bool sleep_until(std::int64_t deadline_ns) noexcept;
  void wakeup() noexcept {
    if (key_.exchange(1, std::memory_order_acq_rel) == 2) futex_wake(&key_, 1);
  }
  void clear() noexcept { key_.store(0, std::memory_order_relaxed); }
  bool woken() const noexcept { return key_.load(std::memory_order_acquire) == 1; }

 private:
  std::atomic<std::uint32_t> key_{0};
};

}  // namespace gort::sched
