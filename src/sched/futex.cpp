#include "sched/futex.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

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

#if GORT_TSAN
// TSan runs the handler of an asynchronous signal only when the receiving thread next
// enters a call it intercepts, which a raw futex sleep is not: a SIGQUIT that lands on a
// sleeping M, or on run()'s thread (which writes the dump), would wait forever. Under TSan
// sleeps are cut into slices of this length, each followed by an intercepted call.
constexpr std::int64_t kTsanSleepSliceNs = 20'000'000;
#endif

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t deadline_ns) noexcept {
#if GORT_TSAN
  const std::int64_t slice_end = monotonic_ns() + kTsanSleepSliceNs;
  const bool sliced = deadline_ns == 0 || deadline_ns > slice_end;
  if (sliced) deadline_ns = slice_end;
  struct AfterSlice {
    bool sliced;
    ~AfterSlice() {
      const timespec none{0, 0};
      if (sliced) nanosleep(&none, nullptr);  // intercepted: pending signals' handlers run
    }
  } after_slice{sliced};
#endif
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

namespace {

bool multicore() noexcept {
  // The affinity mask rather than sysconf(_SC_NPROCESSORS_ONLN), which opens a file under
  // /sys: this first runs at some program's first contended lock, and a descriptor that
  // appears then belongs to nobody the program knows about.
  static const bool yes = [] {
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) > 1;
  }();
  return yes;
}

// Spins as Go's lock2 does (see RuntimeLock::lock_slow) while `word` is held; true once it
// was taken (0 to 1).
bool spin_for(std::atomic<std::uint32_t>& word) noexcept {
  const bool mc = multicore();
  for (int round = 0; round < (mc ? 5 : 1); ++round) {
    for (std::uint32_t c = word.load(std::memory_order_relaxed); c == 0; c = word.load(std::memory_order_relaxed)) {
      if (word.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
    }
    if (round < 4 && mc) {
      for (int i = 0; i < 30; ++i) cpu_relax();
    } else {
      sched_yield();
    }
  }
  return false;
}

}  // namespace

void init_heavy_barrier() noexcept {
  static const int state = [] {
    // GORT_NO_MEMBARRIER=1 takes the fenced path (tests run it; a kernel without membarrier does).
    const char* off = std::getenv("GORT_NO_MEMBARRIER");
    const int s = (off && *off && *off != '0') ? 2
                  : syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 1
                                                                                                   : 2;
    g_heavy_barrier.store(s, std::memory_order_relaxed);
    return s;
  }();
  (void)state;
}

bool heavy_barrier() noexcept {
  init_heavy_barrier();
  if (g_heavy_barrier.load(std::memory_order_relaxed) != 1) {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // unlocks fence too: Dekker's symmetric form
    return true;
  }
  return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
}

bool DekkerLock::lock_slow() noexcept {
  if (spin_for(locked_)) return false;
  const std::uint32_t before = sleep_.fetch_add(1, std::memory_order_seq_cst);
  // Store unlocks that saw no fence state skip the fence: the barrier orders those (their
  // store is visible after it, or their load of sleep_ comes after it and sees us). Once
  // it has returned (kFenced), every unlock exchanges and finds our 2, and sleepers need
  // no barrier of their own: unfence() waits until none is registered. If the barrier
  // failed, sleep in slices rather than trust it.
  bool handshake = true;
  if (!(before & kFenced)) {
    sleep_.fetch_or(kFencing, std::memory_order_seq_cst);
    handshake = heavy_barrier();
    if (handshake) sleep_.fetch_or(kFenced, std::memory_order_seq_cst);
  }
  while (locked_.exchange(2, std::memory_order_seq_cst) != 0) {
    futex_wait(&locked_, 2, handshake ? 0 : monotonic_ns() + 1'000'000);
  }
  sleep_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

void RuntimeLock::lock_slow() noexcept {
  // Go's lock2: a few rounds of spinning, each trying while the lock looks free and then
  // pausing 30 times; one round that yields the thread; then sleep. The pauses matter under
  // contention: a holder that unlocks and relocks at once keeps the line in its cache for a
  // run of critical sections, where a spinner that pounced on every release moved it
  // between cores every time (chan_mpmc at maxprocs 2 ran 3x slower). CAS only when free:
  // a failing CAS takes the line from the holder.
  if (spin_for(state_)) return;
  std::uint32_t c = state_.exchange(2, std::memory_order_acquire);
  while (c != 0) {
    futex_wait(&state_, 2);
    c = state_.exchange(2, std::memory_order_acquire);
  }
}

bool Note::sleep_until(std::int64_t deadline_ns) noexcept {
  std::uint32_t v = key_.load(std::memory_order_acquire);
  while (v != 1) {
    if (v == 0 && !key_.compare_exchange_weak(v, 2, std::memory_order_acquire, std::memory_order_acquire)) continue;
    if (monotonic_ns() >= deadline_ns) return false;  // (a later wakeup() finds 2: one spare wake)
    futex_wait(&key_, 2, deadline_ns);
    v = key_.load(std::memory_order_acquire);
  }
  return true;
}

}  // namespace gort::sched
