// gort/detail/sema.hpp — the semaphore every sync type embeds (implementation in
// src/sync/sema.cpp). Go keeps its waiters in a global table keyed by address; gort gives
// each Mutex, WaitGroup and RWMutex its own FIFO instead: a wake-up is O(1) and unrelated
// objects never share a queue or a lock.
#pragma once
#include <atomic>
#include <cstdint>

namespace gort::detail {

struct Sema {
  std::atomic<std::uint32_t> count{0};  // units available
  std::atomic<std::uint32_t> nwait{0};  // waiters queued (read without the lock)
  std::atomic<std::uint32_t> releasing{0};  // semreleases still touching this Sema
  alignas(8) unsigned char lock[8]{};   // a runtime lock guarding the queue
  void* head = nullptr;                 // FIFO of waiters, guarded by lock
  void* tail = nullptr;
};

}  // namespace gort::detail
