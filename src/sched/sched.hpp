// sched — the G-M-P scheduler (Go's proc.go, rebuilt for C++).
//
// Glossary
//   G  a goroutine (sched/g.hpp).  M  an OS thread running Gs.  P  a processor: the right to
//   run Gs, with a local run queue, a G free list and a stack cache. There are exactly
//   `gomaxprocs` live Ps; an M runs Gs only while it holds one.
//
// Switching. A G gives up its M by switching *directly* to the next G when its own P has
// one ready (runnext, the local ring, or the global queue every 61st tick), and to the M's
// scheduler context (g0, on the thread's own stack) otherwise; g0 runs findrunnable, which
// may steal, and parks the M when nothing is found. Whatever must happen to the G that
// left — requeue it (yield), finish parking it (unlock the channel it waits on), free it
// (exit) — is recorded in M::pending and carried out by the context that resumes, *after*
// the switch: until then the old G's registers are not saved, so no other M may see it.
//
// Spinning (Go's rule, which keeps wakeups cheap without burning CPU): an M looking for
// work is "spinning"; at most half as many Ms spin as there are busy Ps. Readying a G calls
// wakep(), which starts one spinning M if a P is idle and none spins; a spinning M that
// finds work stops spinning and, if it was the last, wakes another. An M that found no
// work gives its P back, drops spinning, re-checks every queue (closing the race with a
// concurrent wakep), and only then sleeps on its futex.
//
// Locks. `Runtime::lock` guards the global run queue, the idle P and idle M lists and the
// list of Ms. It is never held across a switch or while calling user code. Gs free lists,
// stacks and all-G list have their own locks. Fields documented "owner" are touched only
// by the M holding the P (or running the G).
#pragma once
#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "sched/futex.hpp"
#include "sched/g.hpp"
#include "sched/runq.hpp"
#include "sched/sanitizer.hpp"
#include "stack/stack.hpp"
#include "time/heap.hpp"

namespace gort::sched {

inline constexpr int kMaxProcs = 1024;
inline constexpr int kGFreeLocalMax = 64;  // free Gs a P keeps (Go's 64)
inline constexpr std::int64_t kGoidBatch = 16;  // ids a P takes from goid_gen at once (Go's _GoidCacheBatch)
inline constexpr std::uint32_t kGlobalQueueTick = 61;   // check the global queue every 61 schedules
inline constexpr int kStealPasses = 4;
// sysmon (Go's values): tick 20 µs, backing off to 10 ms when nothing needs it; a G that
// runs 10 ms without reaching the scheduler is asked to yield; fds are polled by sysmon
// when nobody has for 10 ms.
inline constexpr std::int64_t kSysmonMinDelayNs = 20'000;
inline constexpr std::int64_t kSysmonMaxDelayNs = 10'000'000;
inline constexpr std::int64_t kForcePreemptNs = 10'000'000;
inline constexpr std::int64_t kSysmonPollNs = 10'000'000;
inline constexpr std::int32_t kMaxOverflowPs = 64;

// P states:
//   idle     on the idle list; no M; its queues are empty.
//   running  held by exactly one M (P::m), which alone touches its owner fields.
//   syscall  its M left it inside blocking() (M::oldp); that M takes it back with a CAS to
//            running on return, unless sysmon first CASes it to idle and hands it off.
//   dead     beyond gomaxprocs: on no list, held by nobody; revived if gomaxprocs grows.
//
// Overflow Ps (sysmon). A P whose goroutine has run for 10 ms without reaching the
// scheduler — a tight loop, or a call blocked in the kernel that nobody announced — while
// work waits behind it gets a stand-in: a P beyond gomaxprocs (`covers` set), run by
// another M, which steals the stuck P's queue and runs its timers. The stand-in retires
// at its next schedule once the stuck P has moved on (its sched_seq changed). This is "the
// tight loop loses its P", done without taking a P from an M that may be inside the
// runtime: the stuck M keeps its P, and at most one stand-in exists per stuck P.
enum class PStatus : std::uint32_t { idle, running, syscall, dead };

struct alignas(64) P {
  std::int32_t id = 0;
  std::atomic<PStatus> status{PStatus::idle};
  M* m = nullptr;              // owner
  P* link = nullptr;           // idle list; guarded by Runtime::lock
  std::uint32_t schedtick = 0; // owner
  // Bumped by the owner each time a G starts running / the P enters a syscall; sysmon
  // reads them to see a P stuck in one G or one call.
  std::atomic<std::uint32_t> sched_seq{0}, syscall_seq{0};
  std::atomic<P*> covers{nullptr};   // an overflow P: the stuck P it stands in for (set under Runtime::lock)
  std::uint32_t covers_seq = 0;      // covers->sched_seq when lent
  std::atomic<P*> stand_in{nullptr}; // the overflow P covering this one (guarded by Runtime::lock)
  RunQueue runq;
  // Free Gs, a LIFO of pointers (the next spawn reuses a G still in cache). Pointers, not
  // a list through the Gs: batches move to and from the global list without touching Gs
  // that another P freed (a cache miss each, serialized by a linked walk).
  std::array<G*, kGFreeLocalMax> gfree{};  // owner
  std::int32_t ngfree = 0;                // owner
  // Goroutine ids handed out by this P: [goid_next, goid_end), taken kGoidBatch at a time
  // from Runtime::goid_gen (Go's goidcache), so that spawning on several Ps does not
  // bounce that counter's line at every spawn.
  std::int64_t goid_next = 0, goid_end = 0;  // owner
  stack::StackCache stacks;    // owner
  time_impl::TimerHeap timers; // its own lock: any M may add to it or run its due timers
  // Counters: written by the owner, read by anyone (stats).
  std::atomic<std::uint64_t> n_switches{0}, n_steals{0}, n_stolen_gs{0}, n_parks{0}, n_spawns{0};
  // Goroutines started on this P minus goroutines that ended on it (either may be
  // negative): count_goroutines sums them, so that a spawn and an exit write no shared line.
  std::atomic<std::int64_t> ngoroutines_delta{0};  // owner writes
};

enum class AfterSwitch : std::uint8_t {
  none,
  requeue,      // yield: prev goes to the tail of the local run queue
  park,         // prev waits: run commit(prev, arg); if it says no, make prev runnable again
  exit,         // prev returned: free its stack and G
  to_global,    // prev left blocking() with no P free: put it on the global queue
};

struct Pending {
  AfterSwitch what = AfterSwitch::none;
  G* prev = nullptr;
  bool (*commit)(G*, void*) = nullptr;
  void* arg = nullptr;
};

struct M {
  std::int64_t id = 0;
  G g0;                         // the scheduler context on the thread's own stack
  P* p = nullptr;               // the P held, if any
  P* oldp = nullptr;            // the P left in syscall state by blocking()
  P* nextp = nullptr;           // handed over by startm before waking this M
  G* curg = nullptr;            // the user G running, nullptr while in g0
  G* lockedg = nullptr;         // lock_os_thread: the only G this M may run
  G* handoff_g = nullptr;       // g0 runs this before looking for work
  bool spinning = false;
  // > 0 while the M runs runtime code that must not be rescheduled (Go's m.locks): timer
  // functions run with locks held (a TimerCore's ops_lock around after_func's spawn).
  int no_preempt = 0;
  bool firing_timers = false;   // in run_due: what timers ready displaces runnext to a soon slot
  std::int64_t timers_now = 0;  // the clock read by reschedule that found a timer due (0: none)
  bool on_system_stack = false;  // a goroutine runs on_system_stack's fn on g0's stack
  Pending pending;
  Note park;                    // stopm sleeps here
  Note exited;                  // set when the thread leaves its loop
  M* link = nullptr;            // idle M list; guarded by Runtime::lock
  std::uint64_t rng = 0;
  std::thread thread;
  const void* g0_stack_bottom = nullptr;  // ASan: the thread stack's bounds
  std::size_t g0_stack_size = 0;
  void* altstack = nullptr;     // sigaltstack for the stack-overflow handler
  std::atomic<pid_t> tid{0};    // the kernel's id of the thread, once it runs (0 before)
  M* alllink = nullptr;         // Runtime::allm_head's list; set before the M is published
  // Dumps sample the goroutine this M runs through this slot (debug/sample.hpp).
  struct StackSample {
    std::atomic<int> state{0};
    const G* g = nullptr;       // the goroutine the signal found running (nullptr: none)
    std::uintptr_t leaf_ret = 0;  // where a frameless leaf returns: [sp] (x86-64), lr (arm64)
    int n = 0;
    void* pcs[64];
    // For the CFI unwinder: the interrupted registers in DWARF numbering (x86-64 0-15,
    // arm64 0-31), the pc, and the live stack [sp, sp + copy_len) copied into `copy`, a
    // buffer of copy_cap bytes the sampler lends (nullptr: none).
    std::uint64_t regs[32];
    std::uint64_t pc = 0;
    unsigned char* copy = nullptr;
    std::size_t copy_cap = 0, copy_len = 0;
  } sample;
};

// Fatal runtime error: prints "fatal error: <why>" and the goroutine dump, exits 2.
[[noreturn]] void fatal(const char* why) noexcept;

// The global run queue: a ring of pointers, so that moving a batch between it and a P's
// ring copies pointers without touching the Gs (each a cache miss when another P wrote it,
// serialized by a walk along their links). Its capacity is kept at least the number of Gs
// ever made (reserve, as G slabs are allocated), so a put never allocates.
class GRing {
 public:
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  void reserve(std::size_t n) {  // may throw; keeps the order
    if (n <= cap_) return;
    std::size_t cap = cap_ ? cap_ : 256;
    while (cap < n) cap *= 2;
    auto slots = std::make_unique<G*[]>(cap);
    for (std::size_t i = 0; i < size_; ++i) slots[i] = slots_[(head_ + i) & (cap_ - 1)];
    slots_ = std::move(slots);
    cap_ = cap;
    head_ = 0;
  }
  void push_back(G* g) noexcept {
    if (size_ == cap_) fatal("global run queue overflow (more runnable goroutines than exist)");
    slots_[(head_ + size_) & (cap_ - 1)] = g;
    ++size_;
  }
  G* pop_front() noexcept {
    G* g = slots_[head_];
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
    return g;
  }

 private:
  std::unique_ptr<G*[]> slots_;
  std::size_t cap_ = 0, head_ = 0, size_ = 0;
};

struct Runtime {
  explicit Runtime(std::size_t stack_size) : stacks(stack_size) {}

  stack::StackAllocator stacks;

  // Its own cache line, shared only with the counters every wakep reads: where these fall
  // relative to the stack allocator's fields moved select4 at maxprocs 2 by 40% (a 16-byte
  // shift of them, 360 -> 620 ns).
  alignas(64) RuntimeLock lock;
  std::atomic<std::int32_t> runq_size{0};    // written under lock, read racily
  P* pidle = nullptr;                        // guarded by lock
  std::atomic<std::int32_t> npidle{0};       // written under lock
  std::atomic<std::int32_t> nmspinning{0};
  M* midle = nullptr;                        // guarded by lock
  std::int32_t nmidle = 0;                   // guarded by lock
  std::vector<M*> allm;                      // guarded by lock
  std::atomic<M*> allm_head{nullptr};        // the same Ms, linked by alllink: read lock-free
  std::int64_t mcount = 0;                   // guarded by lock

  std::array<std::atomic<P*>, kMaxProcs> allp{};  // slots filled once, never cleared
  std::atomic<std::int32_t> nallp{0};             // Ps ever created (thieves scan these)
  std::atomic<std::int32_t> gomaxprocs{0};

  GRing runq;                                // the global run queue; guarded by lock
  RuntimeLock gfree_lock;
  std::vector<G*> gfree;                     // guarded by gfree_lock; capacity >= allgs.size()

  RuntimeLock allg_lock;
  std::vector<G*> allgs;                     // guarded by allg_lock; append-only
  struct GSlab {
    G* gs;
    std::size_t n;
    std::size_t mapped_bytes;  // its own mapping's size (huge pages); 0: from new G[n]
  };
  std::vector<GSlab> gslabs;                 // guarded by allg_lock

  std::atomic<std::int64_t> goid_gen{0};
  std::atomic<std::int64_t> ngoroutines{0};  // main, and goroutines started without a P; see P::ngoroutines_delta
  std::atomic<bool> stopping{false};
  Note main_done;
  std::int64_t start_ns = 0;
  std::int32_t ncpu = 1;                     // num_cpu() at start

  // Timers. One M at most sleeps (without a P) until the earliest timer of any P; adding
  // an earlier timer wakes it. Both fields are written under timer_lock; the deadline (0:
  // nobody sleeps) is also read without it, by timer_added's fast path.
  RuntimeLock timer_lock;
  M* timer_sleeper = nullptr;
  std::atomic<std::int64_t> timer_sleep_until{0};

  // Deadlock detection (checkdead): Ms asleep in stoplockedm, and the ids of the process's
  // threads when run() started, sorted (threads not among them, and beyond the Ms, may wake
  // goroutines). Ids, not a count: a thread joined just before run() can still be listed
  // then and vanish later, and a count would then take a live plain thread for it.
  std::int32_t nmidlelocked = 0;             // guarded by lock
  std::vector<std::int32_t> threads_at_start;

  // The M asleep until the next timer blocks in the netpoller instead when fds are
  // watched (guarded by timer_lock).
  bool timer_sleeper_polls = false;

  // sysmon: its thread, and the note that ends its sleep early (stop, or work to watch).
  std::thread sysmon;
  Note sysmon_wake;
  std::atomic<bool> sysmon_stop{false};
  std::int32_t noverflow = 0;                // overflow Ps lent; guarded by lock

  std::atomic<std::uint64_t> n_handoffs{0}, n_thread_parks{0}, n_preemptions{0}, n_spawn_yields{0};

  // The clock that stamps waits (G::wait_since_ns; dumps print whole minutes): sysmon
  // stores monotonic_ns() at every tick, so it lags by a tick (10 ms at most) plus the
  // sysmon thread's scheduling delay. A park reads it with one load; reading even the
  // coarse system clock cost 3.5% of a channel ping-pong. Its own line: sysmon writes it
  // every 20 µs while busy, and those writes must not evict fields the Ms use.
  alignas(64) std::atomic<std::int64_t> sysmon_now_ns{0};
};

// The running runtime; nullptr outside run().
Runtime* runtime() noexcept;

// Live goroutines: Runtime::ngoroutines plus every P's delta. A snapshot summed while
// goroutines start and end, so only exact when nothing does (at least 1 while main runs).
std::int64_t count_goroutines(Runtime* rt) noexcept;

}  // namespace gort::sched

// The calling thread's M (proc.cpp). Initial-exec: read at a fixed offset from the thread
// pointer, in an executable or a shared library loaded with it.
extern "C" thread_local gort::sched::M* gort_tls_m __attribute__((tls_model("initial-exec")));

namespace gort::sched {

// The calling thread's M (nullptr on plain threads) and the G it runs (nullptr in g0 and on
// plain threads). The thread pointer is read by an asm statement that the compiler may
// neither merge with another nor move: a goroutine may resume on another thread after any
// switch, and compilers reuse a thread-local address computed before a call.
inline M* this_m() noexcept {
  M* m;
#if defined(__x86_64__)
  asm volatile("movq gort_tls_m@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0" : "=r"(m) : : "memory");
#elif defined(__aarch64__)
  std::uintptr_t tp;
  asm volatile(
      "adrp %0, :gottprel:gort_tls_m\n\t"
      "ldr %0, [%0, #:gottprel_lo12:gort_tls_m]\n\t"
      "mrs %1, tpidr_el0\n\t"
      "ldr %0, [%1, %0]"
      : "=&r"(m), "=&r"(tp)
      :
      : "memory");
#else
#error "gort: this_m needs the thread pointer's register for this architecture"
#endif
  return m;
}
inline G* current_g() noexcept {
  // The M's fields belong to its g0 (TSan: another fiber), and a goroutine resumed on a
  // brand-new M has no happens-before edge to the M's construction in TSan's model; the
  // thread pointer makes this M the caller's own.
  san::IgnoreAccesses ignore;
  M* m = this_m();
  return m ? m->curg : nullptr;
}

// Parks the calling goroutine with `reason`. After it is switched out, commit(g, arg) runs
// on another context (typically to unlock the structure g was recorded in); if it returns
// false, g resumes at once. Otherwise park returns after someone calls ready(g).
void park(WaitReason reason, bool (*commit)(G*, void*), void* arg);
// Makes a waiting g runnable: into the caller's runnext when the caller is a goroutine
// (the woken one runs next, as Go does), else onto the global queue. Any thread.
void ready(G* g) noexcept;

// Honours a preemption request from sysmon (Go's stack-check preemption): if the calling
// goroutine has run over its slice, it goes to the back of the global queue. Called at
// runtime entry points (channel operations, locks, spawn), so its usual answer, "no
// request", is one load of a shared word that only changes when sysmon asks and when a
// request is consumed (G::preempt true -> false): no call, no thread-local read.
extern std::atomic<std::int32_t> g_preempt_requests;  // requests outstanding (may dip below 0 briefly)
void preempt_check_slow() noexcept;
inline void preempt_check() noexcept {
  if (g_preempt_requests.load(std::memory_order_relaxed) != 0) preempt_check_slow();
}
// Clears g's request, if any, keeping g_preempt_requests in step.
inline void consume_preempt(G* g) noexcept {
  if (g->preempt.load(std::memory_order_relaxed) && g->preempt.exchange(false, std::memory_order_relaxed))
    g_preempt_requests.fetch_sub(1, std::memory_order_relaxed);
}

// A timer due at `when` was added to some P's heap: make sure an M will run it in time.
void timer_added(Runtime* rt, std::int64_t when) noexcept;
// Runs due timers of p, held by the calling M (from the scheduler; free when none are
// pending, one clock read when some are).
// `now`: a clock reading to fire at, if the caller has a fresh one (0: read the clock).
void run_due_timers(M* m, P* p, std::int64_t now = 0) noexcept;
inline void check_timers(M* m, P* p, std::int64_t now = 0) noexcept {
  if (p->timers.timer0_when.load(std::memory_order_relaxed) != 0) run_due_timers(m, p, now);
}

// Runs fn(arg) on the M's thread stack below g0's frames (Go's systemstack) when called from
// a goroutine, else in place: for library code whose stack use is large and unbounded
// (libdw's line tables), which must not overflow a goroutine's small stack. fn must not
// switch goroutines.
void on_system_stack(void (*fn)(void*) noexcept, void* arg) noexcept;


// Stack overflow handling (sched/signals.cpp).
void install_signal_handlers();
void restore_signal_handlers();
void setup_altstack(M* m);
void teardown_altstack(M* m);
[[noreturn]] void report_stack_overflow(const G* g) noexcept;

// Panic reporting (sched/panic.cpp).
void install_panic_handler();
void restore_panic_handler();

}  // namespace gort::sched
