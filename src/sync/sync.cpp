// sync — Mutex, RWMutex, WaitGroup, Once, Cond and Semaphore, each on its own semaphore (sync/sema).
//
// Mutex state word (as Go's): bit 0 locked, bit 1 a woken waiter is on its way (unlock need
// not wake another), bit 2 starvation mode, bits 3.. the number of waiters. In normal mode
// waiters queue FIFO but a woken one competes with arrivals; one that waited over 1 ms
// sets starvation mode, in which unlock hands the lock straight to the queue's head and
// arrivals queue behind. Starvation ends when the last waiter, or one that waited under
// 1 ms, gets the lock.
#include <gort/sync.hpp>

#include <new>
#include <stdexcept>
#include <vector>

#include <gort/chan.hpp>
#include <gort/context.hpp>
#include <gort/select.hpp>

#include "sched/sched.hpp"
#include "sched/waiter.hpp"
#include "sync/sema.hpp"

namespace gort {

using sched::WaitReason;
using sync_impl::semacquire;
using sync_impl::semrelease;

namespace {
constexpr std::int64_t kStarvationThresholdNs = 1'000'000;
}

bool Mutex::try_lock() noexcept {
  std::int32_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (old & (kLocked | kStarving)) return false;
    if (state_.compare_exchange_weak(old, old | kLocked, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  }
}

void Mutex::lock_slow() {
  sched::preempt_check();
  std::int64_t wait_start = 0;
  bool starving = false, awoke = false;
  int iter = 0;
  std::int32_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    // Spin while locked in normal mode, if spinning can pay off.
    if ((old & (kLocked | kStarving)) == kLocked && sync_impl::can_spin(iter)) {
      if (!awoke && !(old & kWoken) && (old >> kWaiterShift) != 0 &&
          state_.compare_exchange_strong(old, old | kWoken, std::memory_order_relaxed)) {
        awoke = true;
      }
      sync_impl::do_spin();
      ++iter;
      old = state_.load(std::memory_order_relaxed);
      continue;
    }
    std::int32_t next = old;
    if (!(old & kStarving)) next |= kLocked;  // do not take a starving lock: queue instead
    if (old & (kLocked | kStarving)) next += 1 << kWaiterShift;
    if (starving && (old & kLocked)) next |= kStarving;
    if (awoke) {
      if (!(next & kWoken)) sched::fatal("sync: inconsistent mutex state");
      next &= ~kWoken;
    }
    if (state_.compare_exchange_strong(old, next, std::memory_order_acquire, std::memory_order_relaxed)) {
      if (!(old & (kLocked | kStarving))) return;  // took it with the CAS
      const bool queued_before = wait_start != 0;
      if (!wait_start) wait_start = sync_impl::nanotime();
      semacquire(&sema_, queued_before, WaitReason::mutex_lock);
      starving = starving || sync_impl::nanotime() - wait_start > kStarvationThresholdNs;
      old = state_.load(std::memory_order_relaxed);
      if (old & kStarving) {
        // Handed to us directly: the state says unlocked with us still counted as waiter.
        if ((old & (kLocked | kWoken)) || (old >> kWaiterShift) == 0) sched::fatal("sync: inconsistent mutex state");
        std::int32_t delta = kLocked - (1 << kWaiterShift);
        if (!starving || (old >> kWaiterShift) == 1) delta -= kStarving;  // leave starvation mode
        state_.fetch_add(delta, std::memory_order_acquire);
        return;
      }
      awoke = true;
      iter = 0;
    }
  }
}

void Mutex::unlock_slow(std::int32_t n) {
  if (((n + kLocked) & kLocked) == 0) sched::fatal("sync: unlock of unlocked mutex");
  if (!(n & kStarving)) {
    std::int32_t old = n;
    for (;;) {
      // No waiters, or someone is already woken / took the lock: nothing to do.
      if ((old >> kWaiterShift) == 0 || (old & (kLocked | kWoken | kStarving))) return;
      std::int32_t next = (old - (1 << kWaiterShift)) | kWoken;
      if (state_.compare_exchange_strong(old, next, std::memory_order_release, std::memory_order_relaxed)) {
        semrelease(&sema_, false);
        return;
      }
    }
  }
  // Starving: hand the lock to the next waiter and let it run right away.
  semrelease(&sema_, true);
}

// ---- RWMutex (Go's algorithm: readers count up; a writer subtracts kMaxReaders) ----

void RWMutex::lock_shared() {
  if (reader_count_.fetch_add(1, std::memory_order_acquire) + 1 < 0) {
    semacquire(&reader_sem_, false, WaitReason::rwmutex_rlock);  // a writer is pending
  }
}

bool RWMutex::try_lock_shared() noexcept {
  std::int32_t c = reader_count_.load(std::memory_order_relaxed);
  for (;;) {
    if (c < 0) return false;
    if (reader_count_.compare_exchange_weak(c, c + 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  }
}

void RWMutex::unlock_shared() {
  std::int32_t r = reader_count_.fetch_sub(1, std::memory_order_release) - 1;
  if (r < 0) {
    if (r + 1 == 0 || r + 1 == -kMaxReaders) sched::fatal("sync: RUnlock of unlocked RWMutex");
    // The last reader a pending writer waits for wakes it.
    if (reader_wait_.fetch_sub(1, std::memory_order_acq_rel) - 1 == 0) semrelease(&writer_sem_, false);
  }
}

void RWMutex::lock() {
  w_.lock();
  // Announce the writer; readers still inside must leave first.
  std::int32_t r = reader_count_.fetch_sub(kMaxReaders, std::memory_order_acq_rel);
  if (r != 0 && reader_wait_.fetch_add(r, std::memory_order_acq_rel) + r != 0) {
    semacquire(&writer_sem_, false, WaitReason::rwmutex_lock);
  }
}

bool RWMutex::try_lock() {
  if (!w_.try_lock()) return false;
  std::int32_t zero = 0;
  if (!reader_count_.compare_exchange_strong(zero, -kMaxReaders, std::memory_order_acquire)) {
    w_.unlock();
    return false;
  }
  return true;
}

void RWMutex::unlock() {
  std::int32_t r = reader_count_.fetch_add(kMaxReaders, std::memory_order_release) + kMaxReaders;
  if (r >= kMaxReaders) sched::fatal("sync: Unlock of unlocked RWMutex");
  for (std::int32_t i = 0; i < r; ++i) semrelease(&reader_sem_, false);  // readers that queued meanwhile
  w_.unlock();
}

// ---- WaitGroup ----

void WaitGroup::add(std::int64_t delta) {
  std::uint64_t state = state_.fetch_add(std::uint64_t(delta) << 32, std::memory_order_acq_rel) + (std::uint64_t(delta) << 32);
  auto v = std::int32_t(state >> 32);
  auto w = std::uint32_t(state);
  if (v < 0) throw panic_error("sync: negative WaitGroup counter");
  if (w != 0 && delta > 0 && v == std::int32_t(delta)) throw panic_error("sync: WaitGroup misuse: add called concurrently with wait");
  if (v > 0 || w == 0) return;
  // Counter hit zero with waiters: nothing else may touch the state now; reset and wake all.
  if (state_.load(std::memory_order_relaxed) != state) throw panic_error("sync: WaitGroup misuse: add called concurrently with wait");
  state_.store(0, std::memory_order_relaxed);
  for (; w != 0; --w) semrelease(&sema_, false);
}

void WaitGroup::wait() {
  std::uint64_t state = state_.load(std::memory_order_acquire);
  for (;;) {
    if ((state >> 32) == 0) return;
    if (state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      semacquire(&sema_, false, WaitReason::waitgroup_wait);
      if (state_.load(std::memory_order_relaxed) != 0) throw panic_error("sync: WaitGroup is reused before previous wait has returned");
      return;
    }
  }
}

// ---- Cond ----

namespace {
sched::RuntimeLock& lock_of(unsigned char* storage) {
  static_assert(sizeof(sched::RuntimeLock) <= 8 && alignof(sched::RuntimeLock) <= 8);
  return *std::launder(reinterpret_cast<sched::RuntimeLock*>(storage));
}
struct QueueView {
  void*& head;
  void*& tail;
  sched::WaitQueue load() const { return {static_cast<sched::Waiter*>(head), static_cast<sched::Waiter*>(tail)}; }
  void store(const sched::WaitQueue& q) const {
    head = q.head;
    tail = q.tail;
  }
};
}  // namespace

// Ticket order: a ticket t is notified once notify_ticket_ has passed it.
static bool ticket_before(std::uint32_t a, std::uint32_t b) { return std::int32_t(a - b) < 0; }

void Cond::wait() {
  sched::RuntimeLock& l = lock_of(lock_);
  const std::uint32_t t = wait_ticket_.fetch_add(1, std::memory_order_acq_rel);
  m_.unlock();
  l.lock();
  if (ticket_before(t, notify_ticket_)) {  // signalled between unlock and here
    l.unlock();
    m_.lock();
    return;
  }
  sched::Waiter w;
  w.ticket = t;
  QueueView qv{head_, tail_};
  sched::WaitQueue q = qv.load();
  q.push_back(&w);
  qv.store(q);
  w.block(WaitReason::cond_wait, l);
  m_.lock();
}

void Cond::signal() {
  sched::RuntimeLock& l = lock_of(lock_);
  l.lock();
  if (wait_ticket_.load(std::memory_order_acquire) == notify_ticket_) {
    l.unlock();
    return;
  }
  const std::uint32_t t = notify_ticket_++;
  QueueView qv{head_, tail_};
  sched::WaitQueue q = qv.load();
  sched::Waiter* w = q.head;
  while (w && w->ticket != t) w = w->next;
  if (w) q.remove(w);  // else its owner has not queued yet and will see the ticket passed
  qv.store(q);
  l.unlock();
  if (w) w->wake();
}

void Cond::broadcast() {
  sched::RuntimeLock& l = lock_of(lock_);
  l.lock();
  notify_ticket_ = wait_ticket_.load(std::memory_order_acquire);
  QueueView qv{head_, tail_};
  sched::WaitQueue q = qv.load();
  qv.store({});
  l.unlock();
  while (sched::Waiter* w = q.pop_front()) w->wake();
}

// ---- Semaphore (golang.org/x/sync/semaphore): FIFO waiters, each asking for n units ----

Semaphore::Semaphore(std::int64_t n) : size_(n) {
  if (n < 0) throw std::invalid_argument("gort::Semaphore: negative size");
}

bool Semaphore::try_acquire(std::int64_t n) {
  sched::RuntimeLock& l = lock_of(lock_);
  sched::RuntimeLockGuard g(l);
  if (size_ - cur_ >= n && head_ == nullptr) {
    cur_ += n;
    return true;
  }
  return false;
}

void Semaphore::acquire(std::int64_t n) {
  if (n < 0) throw std::invalid_argument("gort::Semaphore::acquire: negative weight");
  sched::RuntimeLock& l = lock_of(lock_);
  l.lock();
  if (size_ - cur_ >= n && head_ == nullptr) {
    cur_ += n;
    l.unlock();
    return;
  }
  // n > size_ can never be satisfied: as in Go, it blocks until the end (a deadlock).
  sched::Waiter w;
  w.ticket = std::uint64_t(n);
  QueueView qv{head_, tail_};
  sched::WaitQueue q = qv.load();
  q.push_back(&w);
  qv.store(q);
  w.block(WaitReason::sync_semaphore, l);
}

// Wakes the waiters at the head of the queue that now fit (requires lock_). FIFO: a large
// request at the head blocks smaller ones behind it, so it is not starved. A waiter that
// also watches a Context (data: its ready channel) is signalled by closing that channel;
// the reference taken here keeps it valid after the lock is dropped.
static void grant_waiters(std::int64_t size, std::int64_t& cur, QueueView qv, sched::WaitQueue& woken,
                          std::vector<chan<std::monostate>>& woken_ctx) {
  sched::WaitQueue q = qv.load();
  while (sched::Waiter* w = q.head) {
    auto need = std::int64_t(w->ticket);
    if (size - cur < need) break;
    cur += need;
    q.remove(w);
    w->success = true;
    if (w->data) {
      woken_ctx.push_back(*static_cast<chan<std::monostate>*>(w->data));
    } else {
      woken.push_back(w);
    }
  }
  qv.store(q);
}

static void wake_all(sched::WaitQueue& woken, std::vector<chan<std::monostate>>& woken_ctx) {
  while (sched::Waiter* w = woken.pop_front()) w->wake();
  for (auto& c : woken_ctx) c.close();
}

void Semaphore::release(std::int64_t n) {
  sched::RuntimeLock& l = lock_of(lock_);
  sched::WaitQueue woken;
  std::vector<chan<std::monostate>> woken_ctx;
  l.lock();
  cur_ -= n;
  if (cur_ < 0) {
    cur_ += n;
    l.unlock();
    throw panic_error("semaphore: released more than held");
  }
  grant_waiters(size_, cur_, QueueView{head_, tail_}, woken, woken_ctx);
  l.unlock();
  wake_all(woken, woken_ctx);
}

bool Semaphore::acquire(const Context& ctx, std::int64_t n) {
  if (n < 0) throw std::invalid_argument("gort::Semaphore::acquire: negative weight");
  if (ctx.err()) return false;
  chan<std::monostate> done = ctx.done();
  sched::RuntimeLock& l = lock_of(lock_);
  l.lock();
  if (size_ - cur_ >= n && head_ == nullptr) {
    cur_ += n;
    l.unlock();
    return true;
  }
  if (n > size_) {  // can never be satisfied: wait for the context only (as x/sync does)
    l.unlock();
    done.recv();
    return false;
  }
  chan<std::monostate> ready = make_chan<std::monostate>();
  sched::Waiter w;
  w.ticket = std::uint64_t(n);
  w.data = &ready;
  QueueView qv{head_, tail_};
  sched::WaitQueue q = qv.load();
  q.push_back(&w);
  qv.store(q);
  l.unlock();
  if (select(recv_case(ready), recv_case(done)) == 0) return true;
  // Canceled. If we were granted meanwhile, give the units back.
  sched::WaitQueue woken;
  std::vector<chan<std::monostate>> woken_ctx;
  l.lock();
  if (w.success) {
    cur_ -= n;
  } else {
    q = qv.load();
    q.remove(&w);
    qv.store(q);
  }
  // Our leaving may let the waiters behind us in.
  grant_waiters(size_, cur_, qv, woken, woken_ctx);
  l.unlock();
  wake_all(woken, woken_ctx);
  return false;
}

}  // namespace gort
