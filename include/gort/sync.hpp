// gort/sync.hpp — Go's sync package: Mutex, RWMutex, WaitGroup, Once, Cond, and the weighted
// Semaphore of golang.org/x/sync/semaphore.
//
// Every blocking call parks the calling goroutine (never its thread); called from a plain
// OS thread it blocks that thread instead. None of these types may be copied or moved
// while in use (as in Go, where copying a used Mutex is a bug `go vet` reports).
#pragma once
#include <atomic>
#include <cstdint>
#include <utility>

#include <gort/detail/sema.hpp>
#include <gort/runtime.hpp>

namespace gort {

class Context;

// A mutual exclusion lock; Lockable, so std::lock_guard/unique_lock/scoped_lock work.
// Fair in Go's way: normally a woken waiter competes with new arrivals (fast), but a
// waiter that waited over 1 ms switches the lock to starvation mode, where unlock hands it
// directly to the oldest waiter. Unlocking an unlocked Mutex is a fatal error.
class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() {
    std::int32_t expected = 0;
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire, std::memory_order_relaxed)) return;
    lock_slow();
  }
  bool try_lock() noexcept;
  void unlock() {
    std::int32_t n = state_.fetch_sub(kLocked, std::memory_order_release) - kLocked;
    if (n != 0) unlock_slow(n);
  }

 private:
  static constexpr std::int32_t kLocked = 1, kWoken = 2, kStarving = 4, kWaiterShift = 3;
  void lock_slow();
  void unlock_slow(std::int32_t n);
  std::atomic<std::int32_t> state_{0};
  detail::Sema sema_;
};

// A reader/writer lock: any number of readers or one writer. A blocked writer keeps new
// readers out, so writers are not starved. std::shared_lock works with it.
class RWMutex {
 public:
  RWMutex() = default;
  RWMutex(const RWMutex&) = delete;
  RWMutex& operator=(const RWMutex&) = delete;

  void lock();
  bool try_lock();
  void unlock();
  void lock_shared();
  bool try_lock_shared() noexcept;
  void unlock_shared();

 private:
  static constexpr std::int32_t kMaxReaders = 1 << 30;
  Mutex w_;
  detail::Sema writer_sem_;
  detail::Sema reader_sem_;
  std::atomic<std::int32_t> reader_count_{0};  // readers in, minus kMaxReaders while a writer waits/holds
  std::atomic<std::int32_t> reader_wait_{0};   // readers the waiting writer still waits for
};

// Waits for a collection of goroutines to finish. add() before starting them, done() in
// each, wait() to block until the counter is zero. A negative counter throws panic_error.
class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  void add(std::int64_t delta = 1);
  void done() { add(-1); }
  void wait();
  // add(1), then run f in a new goroutine that calls done() when f returns (Go 1.25's Go).
  template <class F>
  [[gnu::noinline]] void go(F&& f) {
    add(1);
    try {
      auto task = [this, fn = std::forward<F>(f)]() mutable {
        struct Done {
          WaitGroup* wg;
          ~Done() { wg->done(); }
        } d{this};
        fn();
      };
      detail::spawn_task(Spawn{}, std::move(task), __builtin_return_address(0));
    } catch (...) {
      done();
      throw;
    }
  }

 private:
  std::atomic<std::uint64_t> state_{0};  // high 32 bits: counter; low 32 bits: waiters
  detail::Sema sema_;
};

// Runs a function exactly once. Concurrent callers wait until the first call returns. If f
// throws, the exception reaches that caller and — as in Go — the Once still counts as done.
class Once {
 public:
  template <class F>
  void call(F&& f) {
    if (done_.load(std::memory_order_acquire) != 0) return;
    call_slow(std::forward<F>(f));
  }
  bool done() const noexcept { return done_.load(std::memory_order_acquire) != 0; }

 private:
  template <class F>
  void call_slow(F&& f) {
    std::lock_guard<Mutex> l(m_);
    if (done_.load(std::memory_order_relaxed) != 0) return;
    struct SetDone {
      std::atomic<std::uint32_t>& d;
      ~SetDone() { d.store(1, std::memory_order_release); }
    } set{done_};
    std::forward<F>(f)();
  }
  std::atomic<std::uint32_t> done_{0};
  Mutex m_;
};

// A condition variable bound to a Mutex (Go's sync.Cond). wait() atomically unlocks the
// Mutex and parks; it relocks before returning. As in Go, wait in a loop on the condition.
class Cond {
 public:
  explicit Cond(Mutex& m) : m_(m) {}
  Cond(const Cond&) = delete;
  Cond& operator=(const Cond&) = delete;

  void wait();
  void signal();
  void broadcast();
  Mutex& mutex() noexcept { return m_; }

 private:
  Mutex& m_;
  // Go's notifyList: wait() takes a ticket before unlocking m_, so a signal that comes
  // between the unlock and the park is not lost.
  std::atomic<std::uint32_t> wait_ticket_{0};  // next ticket to hand out
  std::uint32_t notify_ticket_ = 0;            // next ticket to wake; guarded by lock_
  alignas(8) unsigned char lock_[8]{};         // a runtime lock (sched::RuntimeLock)
  void* head_ = nullptr;                       // waiters, guarded by lock_
  void* tail_ = nullptr;
};

// A weighted semaphore (golang.org/x/sync/semaphore): acquire(n) blocks until n units are
// free; waiters are served in FIFO order, so a large request is not starved by small ones.
class Semaphore {
 public:
  explicit Semaphore(std::int64_t n);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  void acquire(std::int64_t n = 1);
  // Blocks until n units are acquired (true) or ctx is done (false, nothing acquired).
  bool acquire(const Context& ctx, std::int64_t n = 1);
  bool try_acquire(std::int64_t n = 1);
  // Releases n units; releasing more than held throws panic_error.
  void release(std::int64_t n = 1);

 private:
  std::int64_t size_;
  std::int64_t cur_ = 0;                 // guarded by lock_
  alignas(8) unsigned char lock_[8]{};   // a runtime lock
  void* head_ = nullptr;                 // FIFO of waiters, guarded by lock_
  void* tail_ = nullptr;
};

}  // namespace gort
