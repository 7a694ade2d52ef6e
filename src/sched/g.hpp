// sched/g — the goroutine descriptor.
//
// A G is allocated once and reused forever (Gs are pooled per P and globally, as Go's
// gfget/gfput), so a G* stays a valid pointer for the runtime's life; `allgs` lists them
// all for dumps. A G gets its stack only when it first runs: a goroutine that is queued
// but has not started costs its G alone.
//
// States, and who owns what in each:
//   idle      in a free list; no stack; owned by the list's owner (a P, or the global lock).
//   runnable  on exactly one run queue (a P's ring or runnext, or the global queue), or
//             in flight between queues; not running; its ctx is valid (or it has not started).
//   running   owned by the M that runs it; ctx is stale; on no queue.
//   waiting   parked by a blocking operation: on no run queue; owned by the wait structure
//             that recorded it (a channel queue, a semaphore, a timer), which alone may
//             ready() it. wait_reason says why, wait_since_ns since when.
//   syscall   running in blocking(): owns its M but holds no P.
//   dead      returned; its stack goes back to the pool; it goes to a free list next.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include <gort/detail/task.hpp>

#include "arch/context.hpp"
#include "stack/stack.hpp"
#include "time/heap.hpp"

namespace gort::sched {

struct M;
struct P;

enum class GStatus : std::uint32_t { idle, runnable, running, waiting, syscall, dead };

// Why a goroutine waits. Unique, and printed verbatim in dumps (Go's waitReason strings).
enum class WaitReason : std::uint8_t {
  none,
  chan_receive,
  chan_send,
  select,
  select_no_cases,
  chan_receive_nil,
  chan_send_nil,
  sleep,
  io_wait,
  mutex_lock,
  rwmutex_rlock,
  rwmutex_lock,
  waitgroup_wait,
  cond_wait,
  once_call,
  semacquire,
  sync_semaphore,
  syscall,
  timer_goroutine_idle,
  forever,
};
const char* wait_reason_string(WaitReason r) noexcept;
const char* status_string(GStatus s) noexcept;

struct alignas(64) G {
  // A woken goroutine's descriptor is cold (a sleeper's, 10 ms later, among 100,000): what
  // waking and resuming it touch shares lines 0 and 1 (x86-64): the registers, its status
  // and flags, and the first 48 bytes of wait_node (what firing a timer reads).
  arch::Context ctx{};                 // saved registers while not running
  std::atomic<GStatus> status{GStatus::idle};
  WaitReason wait_reason = WaitReason::none;
  bool started = false;                // has run at least once (ctx is a real frame)
  std::atomic<bool> preempt{false};    // set by sysmon: yield at the next runtime call
  // The node recording this goroutine's wait while it sleeps (a time_impl::Timer) or waits
  // on a semaphore (a sched::Waiter), built in place by that wait: a G waits in one place
  // at a time. Here, not on its stack: firing a sleep reads its node, and releasing a
  // million semaphore waiters follows their links. G slabs are dense; a cold stack costs a
  // page walk each (about 10 µs on virtual machines).
  alignas(8) unsigned char wait_node[72];
  stack::Stack stack{};                // bound at first run
  // `stack`'s bounds as stack::pack_extent makes them, for dumps on other threads (one
  // load, never a torn pair); set when the stack is bound, 0 before it is given back.
  std::atomic<std::uint64_t> stack_extent{0};
  char* deepest_sp = nullptr;          // lowest sp seen at a switch (for trimming)
  std::int32_t lock_count = 0;         // lock_os_thread nesting
  std::int64_t id = 0;
  std::int64_t wait_since_ns = 0;      // Runtime::sysmon_now_ns when it parked (to ~10 ms)
  std::int64_t parent_id = 0;
  void* created_pc = nullptr;          // the go() call site
  std::size_t odd_stack_size = 0;      // Spawn::stack_size when not the default
  M* locked_m = nullptr;               // lock_os_thread: only this M may run it
  G* link = nullptr;                   // intrusive link: global queue, free lists, wait lists
  void* wait_param = nullptr;          // set by the waker for the woken (e.g. a select case)
  const detail::TaskOps* task_ops = nullptr;
  std::string name;                    // Spawn::name (empty for most)
  void* tsan_fiber = nullptr;          // ThreadSanitizer fiber (TSan builds)
  void* asan_fake_stack = nullptr;     // AddressSanitizer fake-stack handle while switched out
  alignas(16) unsigned char task[detail::kInlineTaskBytes];
};

// A FIFO of Gs linked through G::link. Not thread-safe: its owner's lock guards it.
struct GQueue {
  G* head = nullptr;
  G* tail = nullptr;
  bool empty() const noexcept { return head == nullptr; }
  void push_back(G* g) noexcept {
    g->link = nullptr;
    if (tail) tail->link = g; else head = g;
    tail = g;
  }
  void push_front(G* g) noexcept {
    g->link = head;
    head = g;
    if (!tail) tail = g;
  }
  G* pop_front() noexcept {
    G* g = head;
    if (g) {
      head = g->link;
      if (!head) tail = nullptr;
      g->link = nullptr;
    }
    return g;
  }
  void append(GQueue& other) noexcept {
    if (other.empty()) return;
    if (tail) tail->link = other.head; else head = other.head;
    tail = other.tail;
    other.head = other.tail = nullptr;
  }
};

}  // namespace gort::sched
