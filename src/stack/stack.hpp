// stack — goroutine stacks: reserved, committed by the kernel on touch, guarded, pooled.
//
// Invariants:
// - A Stack is [lo, hi) of read-write address space with a guard region directly below lo.
//   The guard is one of: a MADV_GUARD_INSTALL region (Linux 6.13+, costs no kernel mapping),
//   an mprotect(PROT_NONE) page (costs ~2 of the vm.max_map_count mappings, so only a
//   budget of stacks get one), or a canary word at lo checked at every switch away.
// - Default-size stacks come from slabs of kSlabStacks, carved from reservations that
//   double from one slab to kReservationMaxStacks (one mmap each: mapping takes the address
//   space's lock for writing, which waits for every thread's stack population), and are
//   never unmapped while the runtime lives; they circulate between per-P caches (LIFO, so the
//   next goroutine reuses pages still resident) and the global pool. Odd-size stacks
//   are mapped and unmapped one by one; while a goroutine dump reads stacks, their
//   unmapping waits until it ends.
// - Memory goes back to the kernel only beyond a high-water mark (first touches of pages
//   cost ~10 µs on virtual machines, so resident stacks are worth keeping): the global pool
//   keeps its resident_max() most recently used stacks resident (kPoolResidentMax, or
//   $GORT_STACK_RESIDENT); idle Ms release the pages of
//   older ones (madvise(MADV_DONTNEED) over the part that was used: the reservation stays),
//   once they have been free for release_age_ns() (kReleaseAgeNs, or $GORT_STACK_RELEASE_MS).
//   pool_[0, trimmed_) are released, pool_[trimmed_, size) resident; LIFO from the back, so
//   the times stacks were freed ascend from the bottom and the oldest is released first.
//   A stack being released (madvise runs outside the lock) is never handed out meanwhile.
// - A stack is guarded from when it is first handed out (get_batch); until then it sits in
//   the pool as Guard::pending. Installing guards is done outside the lock: the other Ms
//   refilling their caches never wait for those system calls.
// - System calls are batched where the kernel allows (process_madvise on the process
//   itself, Linux 6.15+): each refill of a P's cache installs the guards of the fresh
//   stacks it takes in one call and populates the top pages of the cold ones in another.
//   Where the kernel refuses, guards fall back to one madvise each and population is skipped.
// - Under valgrind every stack is registered (VALGRIND_STACK_REGISTER) from its mapping to
//   its unmapping: otherwise a switch between two stacks of one slab looks to valgrind like
//   a stack pointer moving within one stack, and it marks the live frames in between
//   inaccessible. Compiled in when <valgrind/valgrind.h> exists; a no-op outside valgrind.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sched/futex.hpp"

namespace gort::stack {

// `pending`: a fresh stack in the pool whose guard goes in when it is handed out.
enum class Guard : std::uint8_t { kernel_guard, mprotect, canary, pending };

inline constexpr std::uint64_t kCanary = 0x676f72745f737463ull;  // "gort_stc"

struct Stack {
  char* lo = nullptr;  // lowest usable byte
  char* hi = nullptr;  // one past the highest usable byte (the stack grows down from here)
  Guard guard = Guard::canary;
  bool pooled = false;  // default size, from a slab
  unsigned valgrind_id = 0;  // VALGRIND_STACK_REGISTER's id (0 when not under valgrind)
  explicit operator bool() const noexcept { return lo != nullptr; }
  std::size_t size() const noexcept { return std::size_t(hi - lo); }
  bool canary_intact() const noexcept {
    return guard != Guard::canary || *reinterpret_cast<const std::uint64_t*>(lo) == kCanary;
  }
};

// A stack's bounds packed into one word, so that a reader on another thread (a goroutine
// dump) gets both from a single load: reading lo and hi apart could pair the bounds of two
// different stacks as the goroutine exits or its descriptor takes a new one, and the range
// between would cross guard regions. hi and the size are multiples of 4 KiB (every page
// size is): hi / 4 KiB takes the low 40 bits (user addresses fit in 52), the size in 4 KiB
// units the upper 24 (stacks up to 64 GiB). 0 means no stack, as does a stack too large to
// pack (a dump then shows no frames for it).
inline constexpr unsigned kExtentUnitShift = 12, kExtentHiBits = 40;
inline std::uint64_t pack_extent(const Stack& s) noexcept {
  const auto hi = reinterpret_cast<std::uintptr_t>(s.hi) >> kExtentUnitShift;
  const std::uint64_t units = s.size() >> kExtentUnitShift;
  if (!s || hi >> kExtentHiBits != 0 || units >> (64 - kExtentHiBits) != 0) return 0;
  return std::uint64_t(hi) | units << kExtentHiBits;
}
struct Extent {
  std::uintptr_t lo = 0, hi = 0;  // both 0: no stack
};
inline Extent unpack_extent(std::uint64_t packed) noexcept {
  const std::uintptr_t hi = std::uintptr_t(packed & ((std::uint64_t(1) << kExtentHiBits) - 1)) << kExtentUnitShift;
  const std::uintptr_t size = std::uintptr_t(packed >> kExtentHiBits) << kExtentUnitShift;
  return size == 0 ? Extent{} : Extent{hi - size, hi};
}

// The process-wide part: slabs, the global pool, the guard budget. Thread-safe.
class StackAllocator {
 public:
  explicit StackAllocator(std::size_t default_size);
  ~StackAllocator();  // unmaps every slab: call only when no goroutine runs any more
  StackAllocator(const StackAllocator&) = delete;
  StackAllocator& operator=(const StackAllocator&) = delete;

  std::size_t default_size() const noexcept { return size_; }
  std::size_t guard_size() const noexcept { return guard_; }
  std::size_t resident_max() const noexcept { return resident_max_; }

  // Fills out[0..n) with pooled default-size stacks (allocating slabs as needed).
  void get_batch(Stack* out, std::size_t n);
  // Takes back default-size stacks; `deepest[i]` is the lowest stack pointer seen in use.
  void put_batch(Stack* stacks, char* const* deepest, std::size_t n);
  // Releases the pages of up to min(max, kTrimBatch) pooled stacks beyond the resident
  // high-water mark that have been free for release_age_ns() or longer (at `now`), oldest
  // first, one madvise per run of neighbours. Idle Ms call it before sleeping (Go's
  // scavenger runs in the background too), so a burst of goroutines ending pays no system
  // calls, and stacks that the next burst takes back never pay a release and a refault.
  struct Trimmed {
    std::size_t released;   // stacks released by this call
    std::int64_t retry_at;  // when the oldest excess stack comes of age; 0 when none waits
  };
  Trimmed trim_excess(std::size_t max, std::int64_t now) noexcept;
  std::int64_t release_age_ns() const noexcept { return release_age_ns_; }

  struct Counts {
    std::size_t pooled;         // default-size stacks in the global pool
    std::size_t released;       // of those, how many have had their pages given back
    std::uint64_t release_calls;  // madvise calls trim_excess made
  };
  Counts counts() noexcept;

  Stack alloc_odd(std::size_t size);  // a stack of another size, mapped alone
  void free_odd(Stack s) noexcept;

  // Goroutine dumps read other goroutines' stacks without stopping them. Between these
  // calls odd-size stacks are not unmapped (frees wait until the last reader ends), so a
  // goroutine that exits mid-dump cannot pull its stack out from under the reader. Default
  // stacks are never unmapped. begin_foreign_reads takes no lock (a fatal error's dump calls
  // it, and then exits without end_) and is a full fence, pairing with free_odd's between a
  // goroutine's death (its status) and the check for readers.
  void begin_foreign_reads() noexcept;
  void end_foreign_reads() noexcept;

  // True when p lies in the guard region below some stack's lo (for the SIGSEGV handler:
  // only reads immutable slab bounds, lock-free).
  bool in_guard(const void* p, const Stack& s) const noexcept;

  static Guard probe_kernel_guard() noexcept;

 private:
  void new_slab();  // requires lock_
  void apply_guard(char* slot_lo, Stack& s);

  const std::size_t size_;
  const std::size_t guard_;
  const std::size_t slot_;
  Guard best_;  // kernel_guard if the kernel supports it, else mprotect
  std::atomic<std::int64_t> mprotect_budget_;
  std::size_t resident_max_;  // free stacks kept resident in the pool
  std::int64_t release_age_ns_;  // how long a free stack stays resident, even beyond the mark

  static char* touched_from(const Stack& s, char* deepest) noexcept;

  sched::RuntimeLock lock_;
  std::vector<Stack> pool_;            // guarded by lock_; LIFO
  std::vector<char*> pool_deepest_;    // guarded by lock_; parallel to pool_
  std::vector<std::int64_t> pool_freed_at_;  // guarded by lock_; parallel to pool_, ascending
  std::size_t trimmed_ = 0;            // guarded by lock_
  // While trim_excess calls run (trimmers_ > 0), pool_[0, trim_hi_) may be under madvise
  // outside the lock and must not be handed out. Both guarded by lock_.
  int trimmers_ = 0;
  std::size_t trim_hi_ = 0;
  std::atomic<std::uint64_t> release_calls_{0};
  std::atomic<int> foreign_readers_{0};  // written under lock_
  std::vector<Stack> deferred_odd_;      // guarded by lock_: frees waiting for readers
  std::vector<std::pair<char*, std::size_t>> reservations_;  // guarded by lock_
  char* carve_next_ = nullptr;  // guarded by lock_: the next slab in the newest reservation
  char* carve_end_ = nullptr;   // guarded by lock_
  std::vector<unsigned> valgrind_ids_;                // guarded by lock_; slab stacks' registrations
};

inline constexpr std::size_t kSlabStacks = 64;
inline constexpr std::size_t kReservationMaxStacks = 2048;  // 128 MiB of 64 KiB slots
inline constexpr std::size_t kPoolResidentMax = 4096;
// Stacks released per trim_excess call: between calls an idle M sees whether it was woken,
// so this bounds how long new work waits for it (a run of unrelated stacks costs a madvise,
// ~5 µs with its TLB shootdown, each).
inline constexpr std::size_t kTrimBatch = 64;
// How long a free stack stays resident beyond the high-water mark ($GORT_STACK_RELEASE_MS):
// a program that spawns in waves reuses its stacks without a release and a refault each
// wave (Go keeps dead goroutines' stacks until a GC, and scavenges after that).
inline constexpr std::int64_t kReleaseAgeNs = 1'000'000'000;
inline constexpr std::size_t kTrimMargin = 16 * 1024;  // released below the deepest sp seen, as a guess of what was touched

// A P's private LIFO cache of default-size stacks: only its owner touches it.
class StackCache {
 public:
  static constexpr std::size_t kMax = 64;
  static constexpr std::size_t kBatch = 32;

  Stack get(StackAllocator& a) {
    if (n_ == 0) refill(a);
    --n_;
    return items_[n_];
  }
  void put(StackAllocator& a, Stack s, char* deepest) {
    if (n_ == kMax) spill(a);
    items_[n_] = s;
    deepest_[n_] = deepest;
    ++n_;
  }
  void drain(StackAllocator& a) {
    a.put_batch(items_, deepest_, n_);
    n_ = 0;
  }
  std::size_t size() const noexcept { return n_; }

 private:
  void refill(StackAllocator& a);
  void spill(StackAllocator& a);
  Stack items_[kMax];
  char* deepest_[kMax];
  std::size_t n_ = 0;
};

std::size_t page_size() noexcept;

}  // namespace gort::stack
