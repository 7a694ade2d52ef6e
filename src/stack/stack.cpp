#include "stack/stack.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "sched/sanitizer.hpp"

#if __has_include(<valgrind/valgrind.h>) && !defined(GORT_NO_VALGRIND)
#include <valgrind/valgrind.h>
#define GORT_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER(lo, hi)
#define GORT_STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#else
#define GORT_STACK_REGISTER(lo, hi) 0u
#define GORT_STACK_DEREGISTER(id) ((void)(id))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace gort::stack {

std::size_t page_size() noexcept {
  static const std::size_t ps = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return ps;
}

namespace {

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// Gives stack address space back. Under ASan its shadow is cleared first: goroutine frames
// leave redzones poisoned there, and the next mapping the kernel puts at these addresses
// (a file libdw maps, say) would otherwise read as a stack overflow.
void unmap_stack_space(void* p, std::size_t len) noexcept {
  sched::san::unpoison(p, len);
  munmap(p, len);
}

// Advises many ranges of this process in one system call: process_madvise(2) on
// PIDFD_SELF_THREAD_GROUP (Linux 6.15; 6.13 opened every advice to the caller's own
// process). A new slab's 64 guards cost one call instead of 64 (~0.4 µs a guard instead of
// ~1.6 on this project's VM). Returns how many leading ranges were advised; older kernels,
// qemu-user and valgrind refuse the call, and the caller advises the rest one at a time.
// A refusal is remembered per advice, so an old kernel is asked once.
constexpr int kPidfdSelfProcess = -10001;
constexpr std::size_t kMaxRangesPerCall = 1024;  // UIO_MAXIOV

std::size_t advise_ranges(iovec* ranges, std::size_t n, int advice, std::atomic<bool>& refused) noexcept {
  std::size_t done = 0;
  while (done < n && !refused.load(std::memory_order_relaxed)) {
    const std::size_t k = std::min(n - done, kMaxRangesPerCall);
    const long r = syscall(SYS_process_madvise, kPidfdSelfProcess, ranges + done, k, advice, 0u);
    if (r <= 0) {
      if (r < 0 && errno != EINTR && errno != EAGAIN && errno != ENOMEM) refused.store(true, std::memory_order_relaxed);
      break;
    }
    // The kernel stops early on an error and reports the bytes it advised: count whole ranges.
    for (std::size_t bytes = std::size_t(r); done < n && bytes >= ranges[done].iov_len; ++done) bytes -= ranges[done].iov_len;
  }
  return done;
}

std::atomic<bool> guard_batch_refused{false};
std::atomic<bool> populate_batch_refused{false};

// How many stacks may get an mprotect guard: each splits a mapping in two, and the kernel
// allows vm.max_map_count mappings in all. Keep half of them for the program.
std::int64_t mprotect_budget() {
  long max_maps = 65530;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
    std::fclose(f);
  }
  return std::max<long>(0, max_maps / 2 - 1024) / 2;
}

}  // namespace

Guard StackAllocator::probe_kernel_guard() noexcept {
  const std::size_t ps = page_size();
  void* p = mmap(nullptr, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Guard::mprotect;
  Guard g = Guard::mprotect;
  if (madvise(p, ps, MADV_GUARD_INSTALL) == 0) {
    // Trust but verify (emulators may accept the advice and ignore it): the kernel must
    // refuse to read a guarded page, with EFAULT rather than a signal when it reads it for us.
    int fds[2];
    if (pipe(fds) == 0) {
      if (write(fds[1], p, 1) < 0 && errno == EFAULT) g = Guard::kernel_guard;
      close(fds[0]);
      close(fds[1]);
    }
  }
  munmap(p, 2 * ps);
  return g;
}

StackAllocator::StackAllocator(std::size_t default_size)
    : size_(round_up(std::max<std::size_t>(default_size, 4 * page_size()), page_size())),
      guard_(page_size()),
      slot_(size_ + guard_),
      best_(probe_kernel_guard()),
      mprotect_budget_(mprotect_budget()),
      resident_max_(kPoolResidentMax),
      release_age_ns_(kReleaseAgeNs) {
  // GORT_STACK_GUARD=mprotect|canary forces a weaker guard (to test those paths).
  if (const char* forced = std::getenv("GORT_STACK_GUARD")) {
    if (std::strcmp(forced, "mprotect") == 0) best_ = Guard::mprotect;
    if (std::strcmp(forced, "canary") == 0) {
      best_ = Guard::mprotect;
      mprotect_budget_.store(0);
    }
  }
  // GORT_STACK_RESIDENT=N keeps N free stacks resident instead (tests use a small N).
  if (const char* n = std::getenv("GORT_STACK_RESIDENT")) resident_max_ = std::strtoul(n, nullptr, 10);
  // GORT_STACK_RELEASE_MS=N releases stacks free for N ms instead (tests use 0).
  if (const char* ms = std::getenv("GORT_STACK_RELEASE_MS")) release_age_ns_ = std::int64_t(std::strtoll(ms, nullptr, 10)) * 1'000'000;
}

StackAllocator::~StackAllocator() {
  for (const Stack& s : deferred_odd_) {
    GORT_STACK_DEREGISTER(s.valgrind_id);
    unmap_stack_space(s.lo - guard_, s.size() + guard_);
  }
  for (unsigned id : valgrind_ids_) GORT_STACK_DEREGISTER(id);
  for (auto [base, len] : reservations_) unmap_stack_space(base, len);
}

void StackAllocator::apply_guard(char* slot_lo, Stack& s) {
  if (best_ == Guard::kernel_guard && madvise(slot_lo, guard_, MADV_GUARD_INSTALL) == 0) {
    s.guard = Guard::kernel_guard;
    return;
  }
  if (mprotect_budget_.fetch_sub(1, std::memory_order_relaxed) > 0 && mprotect(slot_lo, guard_, PROT_NONE) == 0) {
    s.guard = Guard::mprotect;
    return;
  }
  s.guard = Guard::canary;
  *reinterpret_cast<std::uint64_t*>(s.lo) = kCanary;
}

void StackAllocator::new_slab() {
  if (carve_next_ == carve_end_) {
    const std::size_t stacks = reservations_.empty() ? kSlabStacks : std::min(2 * reservations_.back().second / slot_, kReservationMaxStacks);
    const std::size_t len = slot_ * stacks;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "gort: cannot reserve goroutine stacks");
    reservations_.emplace_back(static_cast<char*>(p), len);
    carve_next_ = static_cast<char*>(p);
    carve_end_ = carve_next_ + len;
  }
  char* const base = carve_next_;
  carve_next_ += slot_ * kSlabStacks;
  // Push in reverse so the pool (LIFO) hands out the slab's stacks in address order. Their
  // guards go in when get_batch hands them out, outside the lock.
  for (std::size_t i = kSlabStacks; i-- > 0;) {
    char* slot = base + i * slot_;
    Stack s{slot + guard_, slot + slot_, Guard::pending, true};
    s.valgrind_id = GORT_STACK_REGISTER(s.lo, s.hi);
    valgrind_ids_.push_back(s.valgrind_id);
    pool_.push_back(s);
    pool_deepest_.push_back(nullptr);
    pool_freed_at_.push_back(pool_freed_at_.empty() ? 0 : pool_freed_at_.back());
  }
}

void StackAllocator::get_batch(Stack* out, std::size_t n) {
  // Top pages to fault in ahead, in one system call: stacks never used, or released.
  iovec cold[StackCache::kBatch];
  std::size_t n_cold = 0;
  // Fresh stacks' guard regions, installed in one system call too.
  iovec guards[StackCache::kBatch];
  Stack* unguarded[StackCache::kBatch];
  std::size_t n_unguarded = 0;
  {
    sched::RuntimeLockGuard g(lock_);
    for (std::size_t i = 0; i < n; ++i) {
      // pool_[0, trim_hi_) may be under madvise right now (trim_excess works outside the
      // lock): never hand those out; fresh stacks go above them.
      if (pool_.size() <= trim_hi_) new_slab();
      out[i] = pool_.back();
      if (!pool_deepest_.back() && n_cold < std::size(cold)) cold[n_cold++] = iovec{out[i].hi - page_size(), page_size()};
      if (out[i].guard == Guard::pending) {
        if (n_unguarded < std::size(guards)) {
          guards[n_unguarded] = iovec{out[i].lo - guard_, guard_};
          unguarded[n_unguarded++] = &out[i];
        } else {
          apply_guard(out[i].lo - guard_, out[i]);
        }
      }
      pool_.pop_back();
      pool_deepest_.pop_back();
      pool_freed_at_.pop_back();
    }
    trimmed_ = std::min(trimmed_, pool_.size());
  }
  std::size_t guarded = 0;
  if (best_ == Guard::kernel_guard) guarded = advise_ranges(guards, n_unguarded, MADV_GUARD_INSTALL, guard_batch_refused);
  for (std::size_t i = 0; i < n_unguarded; ++i) {
    if (i < guarded)
      unguarded[i]->guard = Guard::kernel_guard;
    else
      apply_guard(unguarded[i]->lo - guard_, *unguarded[i]);
  }
  // Each goroutine's first frames fault in its stack's top page: ~15 µs apiece on a VM with
  // shadow page tables, where MADV_POPULATE_WRITE costs ~1 µs a page in a batch and the
  // later touch ~8 µs. Only stacks about to run are populated (a P's cache refill), so idle
  // reservations stay free. Best effort: on a refusal the first touch faults as before.
  advise_ranges(cold, n_cold, MADV_POPULATE_WRITE, populate_batch_refused);
}

// Where the pages a pooled stack's goroutines touched begin: a little below the deepest
// stack pointer seen. (Deeper touches between switches are not seen; the next trim of that
// stack catches them only if it runs deeper again.)
char* StackAllocator::touched_from(const Stack& s, char* deepest) noexcept {
  const std::size_t ps = page_size();
  char* from = deepest && deepest - kTrimMargin > s.lo ? deepest - kTrimMargin : s.lo;
  from = reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(from) & ~(ps - 1));
  return from < s.lo ? s.lo : from;
}

void StackAllocator::put_batch(Stack* stacks, char* const* deepest, std::size_t n) {
  const std::int64_t now = sched::coarse_monotonic_ns();
  sched::RuntimeLockGuard g(lock_);
  pool_.insert(pool_.end(), stacks, stacks + n);
  pool_deepest_.insert(pool_deepest_.end(), deepest, deepest + n);
  // Ascending even if another thread read its clock first and locked after us.
  pool_freed_at_.insert(pool_freed_at_.end(), n, pool_freed_at_.empty() ? now : std::max(now, pool_freed_at_.back()));
}

StackAllocator::Trimmed StackAllocator::trim_excess(std::size_t max, std::int64_t now) noexcept {
  // Which stacks fall below the high-water mark is decided under the lock; the system
  // calls that release them run outside it.
  struct Range {
    char* from;
    Stack s;
  };
  Range batch[kTrimBatch];
  std::size_t n = 0;
  {
    sched::RuntimeLockGuard g(lock_);
    while (pool_.size() - trimmed_ > resident_max_ && n < max && n < kTrimBatch) {
      if (now - pool_freed_at_[trimmed_] < release_age_ns_) {
        if (n == 0) return Trimmed{0, pool_freed_at_[trimmed_] + release_age_ns_};
        break;
      }
      batch[n++] = Range{touched_from(pool_[trimmed_], pool_deepest_[trimmed_]), pool_[trimmed_]};
      pool_deepest_[trimmed_] = nullptr;
      ++trimmed_;
    }
    if (n == 0) return Trimmed{0, 0};
    ++trimmers_;
    trim_hi_ = std::max(trim_hi_, trimmed_);  // get_batch leaves the batch alone until we finish
  }
  // One madvise per run of neighbouring slots: each call costs a system call and a TLB
  // shootdown on every CPU running this process, and a burst of a million goroutines
  // ending frees stacks mostly in address order. Spanning the untouched bottom of the next
  // stack and its guard is harmless: both are free, and guard markers and PROT_NONE
  // survive MADV_DONTNEED. A canary stack is released alone (its canary page stays).
  std::sort(batch, batch + n, [](const Range& a, const Range& b) { return a.s.lo < b.s.lo; });
  for (std::size_t i = 0; i < n;) {
    char* from = batch[i].from;
    char* to = batch[i].s.hi;
    std::size_t j = i + 1;
    if (batch[i].s.guard != Guard::canary) {
      while (j < n && batch[j].s.guard != Guard::canary && batch[j].s.lo - guard_ == to) to = batch[j++].s.hi;
    }
    madvise(from, std::size_t(to - from), MADV_DONTNEED);
    release_calls_.fetch_add(1, std::memory_order_relaxed);
    if (batch[i].s.guard == Guard::canary) *reinterpret_cast<std::uint64_t*>(batch[i].s.lo) = kCanary;
    i = j;
  }
  sched::RuntimeLockGuard g(lock_);
  if (--trimmers_ == 0) trim_hi_ = 0;
  return Trimmed{n, 0};
}

StackAllocator::Counts StackAllocator::counts() noexcept {
  sched::RuntimeLockGuard g(lock_);
  return Counts{pool_.size(), trimmed_, release_calls_.load(std::memory_order_relaxed)};
}

Stack StackAllocator::alloc_odd(std::size_t size) {
  size = round_up(std::max<std::size_t>(size, 4 * page_size()), page_size());
  const std::size_t len = size + guard_;
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "gort: cannot reserve a goroutine stack");
  auto* base = static_cast<char*>(p);
  Stack s{base + guard_, base + len, Guard::canary, false};
  apply_guard(base, s);
  s.valgrind_id = GORT_STACK_REGISTER(s.lo, s.hi);
  return s;
}

void StackAllocator::begin_foreign_reads() noexcept {
  // No lock: fatal errors dump from wherever they happen, this allocator's lock held or not.
  foreign_readers_.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void StackAllocator::end_foreign_reads() noexcept {
  std::vector<Stack> now_free;
  {
    sched::RuntimeLockGuard g(lock_);
    if (foreign_readers_.fetch_sub(1, std::memory_order_relaxed) == 1) now_free.swap(deferred_odd_);
  }
  for (const Stack& s : now_free) free_odd(s);
}

void StackAllocator::free_odd(Stack s) noexcept {
  // The goroutine is dead (its status says so) before we look for readers: a reader that
  // began before then may still be walking this stack.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (foreign_readers_.load(std::memory_order_relaxed) != 0) {
    sched::RuntimeLockGuard g(lock_);
    if (foreign_readers_.load(std::memory_order_relaxed) != 0) {
      deferred_odd_.push_back(s);
      return;
    }
  }
  if (s.guard == Guard::mprotect) mprotect_budget_.fetch_add(1, std::memory_order_relaxed);
  GORT_STACK_DEREGISTER(s.valgrind_id);
  unmap_stack_space(s.lo - guard_, s.size() + guard_);
}

bool StackAllocator::in_guard(const void* p, const Stack& s) const noexcept {
  auto* c = static_cast<const char*>(p);
  return s.lo && c < s.lo && c >= s.lo - guard_ - 64 * 1024;  // a large frame may skip past the guard page a little
}

void StackCache::refill(StackAllocator& a) {
  a.get_batch(items_ + n_, kBatch);
  std::fill(deepest_ + n_, deepest_ + n_ + kBatch, nullptr);
  n_ += kBatch;
}

void StackCache::spill(StackAllocator& a) {
  // Hand the oldest (least recently used, bottom of the LIFO) half to the global pool.
  a.put_batch(items_, deepest_, kBatch);
  std::move(items_ + kBatch, items_ + n_, items_);
  std::move(deepest_ + kBatch, deepest_ + n_, deepest_);
  n_ -= kBatch;
}

}  // namespace gort::stack
