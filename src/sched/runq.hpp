// sched/runq — a P's local run queue: a 256-slot ring, the runnext slot, and 8 soon slots.
//
// Order of running: runnext, then the soon slots (oldest first), then the ring's head.
// The soon slots hold what a timer's runnext displaced (put_next_soon): due timers fire in
// batches, and a woken goroutine sent to the ring's tail would wait behind everything
// queued there (in a spawn loop, up to 256 goroutines that have not started yet).
//
// Who may call what (the ownership is encoded in the two views below):
//   Owner (the M holding the P):  push, pop, put_next, put_next_soon, owner_empty, and
//                                 everything a thief may do.
//   Thief (any M):                steal_into (grab half of the ring; when it is empty,
//                                 one soon slot, then runnext last).
// Synchronization:
//   tail is written only by the owner; the release store in push publishes the slot
//   written before it and synchronizes with the acquire load of tail in grab.
//   head is advanced by CAS from the owner (pop) and thieves (grab); a successful CAS with
//   release order ends that consumer's reads of the slots it consumed, so the owner's
//   acquire load of head in push never overwrites a slot a thief still reads.
//   Slots are atomics read relaxed: a thief may read a slot the owner is about to reuse,
//   but then its CAS on head fails and the value is discarded.
//   Soon slots: soon_head_ and soon_tail_ are written only by the owner; the slots outside
//   [soon_head_, soon_tail_) are null. A slot is emptied by exchange (owner) or by CAS from
//   its G to null (thief), so each G put there is taken exactly once; the owner skips a
//   slot a thief emptied.
#pragma once
#include <atomic>
#include <cstdint>

#include "sched/g.hpp"

namespace gort::sched {

class RunQueue {
 public:
  static constexpr std::uint32_t kSize = 256;

  // Owner: appends g; when the ring is full, moves half of it plus g into `overflow`
  // (for the caller to put on the global queue) and returns false.
  bool push(G* g, GQueue& overflow) noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t - h < kSize) {
        ring_[t % kSize].store(g, std::memory_order_relaxed);
        tail_.store(t + 1, std::memory_order_release);
        return true;
      }
      if (push_slow(g, h, t, overflow)) return false;
    }
  }

  // Owner: makes g the next to run; the one it displaces goes to the ring's tail.
  bool put_next(G* g, GQueue& overflow) noexcept {
    G* old = runnext_.exchange(g, std::memory_order_acq_rel);
    return old == nullptr || push(old, overflow);
  }

  // Owner: as put_next, but the one displaced goes to a soon slot (to run right after g),
  // or to the ring's tail when all 8 are taken.
  bool put_next_soon(G* g, GQueue& overflow) noexcept {
    G* old = runnext_.exchange(g, std::memory_order_acq_rel);
    if (old == nullptr) return true;
    const std::uint32_t h = soon_head_.load(std::memory_order_relaxed);
    const std::uint32_t t = soon_tail_.load(std::memory_order_relaxed);
    if (t - h < kSoon) {
      soon_[t % kSoon].store(old, std::memory_order_release);
      soon_tail_.store(t + 1, std::memory_order_release);
      return true;
    }
    return push(old, overflow);
  }

  // Owner: runnext first, then the soon slots, else the ring's head.
  G* pop() noexcept {
    if (runnext_.load(std::memory_order_relaxed) != nullptr) {
      if (G* g = runnext_.exchange(nullptr, std::memory_order_acquire)) return g;
    }
    for (std::uint32_t h = soon_head_.load(std::memory_order_relaxed), t = soon_tail_.load(std::memory_order_relaxed);
         h != t;) {
      G* g = soon_[h % kSoon].exchange(nullptr, std::memory_order_acquire);
      soon_head_.store(++h, std::memory_order_relaxed);
      if (g) return g;  // else a thief took it
    }
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t == h) return nullptr;
      G* g = ring_[h % kSize].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_release, std::memory_order_relaxed)) return g;
    }
  }

  // Thief: moves about half of victim's queue into this (owner's) ring and returns one G
  // to run now, or nullptr. `take_next`: also consider victim's runnext (last resort).
  G* steal_from(RunQueue& victim, bool take_next) noexcept {
    std::uint32_t t = tail_.load(std::memory_order_relaxed);
    std::uint32_t n = victim.grab(ring_, t, take_next);
    if (n == 0) return nullptr;
    --n;
    G* g = ring_[(t + n) % kSize].load(std::memory_order_relaxed);
    if (n > 0) tail_.store(t + n, std::memory_order_release);
    return g;
  }

  // Any thread, racy: the ring and the soon slots are empty and only runnext holds a G.
  bool only_runnext() const noexcept {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire) && soon_count() == 0 &&
           runnext_.load(std::memory_order_relaxed) != nullptr;
  }

  // Any thread: a racy size, for heuristics only.
  std::uint32_t approx_size() const noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::uint32_t t = tail_.load(std::memory_order_acquire);
    return (t - h) + soon_count() + (runnext_.load(std::memory_order_relaxed) ? 1 : 0);
  }
  bool empty() const noexcept { return approx_size() == 0; }
  // Owner: nothing queued, without scanning the soon slots (yield asks at every call). A
  // slot a thief emptied still counts until pop skips it, so this may say "not empty"
  // for nothing; never the reverse.
  bool owner_empty() const noexcept {
    return runnext_.load(std::memory_order_relaxed) == nullptr &&
           soon_head_.load(std::memory_order_relaxed) == soon_tail_.load(std::memory_order_relaxed) &&
           head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_relaxed);
  }

  // Owner: moves everything out (P being destroyed or shrunk away).
  void drain(GQueue& out) noexcept {
    while (G* g = pop()) out.push_back(g);
  }

 private:
  bool push_slow(G* g, std::uint32_t h, std::uint32_t t, GQueue& overflow) noexcept {
    constexpr std::uint32_t n = kSize / 2;
    G* batch[n];
    for (std::uint32_t i = 0; i < n; ++i) batch[i] = ring_[(h + i) % kSize].load(std::memory_order_relaxed);
    if (!head_.compare_exchange_strong(h, h + n, std::memory_order_release, std::memory_order_relaxed)) return false;
    (void)t;
    for (std::uint32_t i = 0; i < n; ++i) overflow.push_back(batch[i]);
    overflow.push_back(g);
    return true;
  }

  // Copies up to half of this queue into dst[dst_tail...]; returns how many.
  std::uint32_t grab(std::atomic<G*>* dst, std::uint32_t dst_tail, bool take_next) noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_acquire);
      std::uint32_t n = t - h;
      n -= n / 2;
      if (n == 0) {
        for (std::atomic<G*>& slot : soon_) {
          G* g = slot.load(std::memory_order_acquire);
          if (g && slot.compare_exchange_strong(g, nullptr, std::memory_order_acq_rel)) {
            dst[dst_tail % kSize].store(g, std::memory_order_relaxed);
            return 1;
          }
        }
        if (take_next) {
          G* next = runnext_.load(std::memory_order_acquire);
          if (next && runnext_.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
            dst[dst_tail % kSize].store(next, std::memory_order_relaxed);
            return 1;
          }
        }
        return 0;
      }
      if (n > kSize / 2) continue;  // read h and t at different times: inconsistent, retry
      for (std::uint32_t i = 0; i < n; ++i)
        dst[(dst_tail + i) % kSize].store(ring_[(h + i) % kSize].load(std::memory_order_relaxed),
                                          std::memory_order_relaxed);
      if (head_.compare_exchange_strong(h, h + n, std::memory_order_release, std::memory_order_relaxed)) return n;
    }
  }

  std::uint32_t soon_count() const noexcept {
    std::uint32_t n = 0;
    for (const std::atomic<G*>& slot : soon_) n += slot.load(std::memory_order_relaxed) != nullptr;
    return n;
  }

  static constexpr std::uint32_t kSoon = 8;

  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::atomic<G*> runnext_{nullptr};
  std::atomic<G*> ring_[kSize]{};
  std::atomic<std::uint32_t> soon_head_{0};
  std::atomic<std::uint32_t> soon_tail_{0};
  std::atomic<G*> soon_[kSoon]{};
};

}  // namespace gort::sched
