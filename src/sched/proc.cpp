// sched/proc — the scheduler loop, spawning, parking, processors and threads.
// The design and its invariants are in sched/sched.hpp; this file follows its vocabulary.
#include <gort/runtime.hpp>

#include <dirent.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <shared_mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "debug/hooks.hpp"
#include "debug/trace.hpp"
#include "sched/sanitizer.hpp"
#include "sched/sched.hpp"
#include "netpoll/netpoll.hpp"
#include "sched/waiter.hpp"
#include "time/heap.hpp"

thread_local gort::sched::M* gort_tls_m = nullptr;  // this_m() reads it (sched.hpp)

namespace gort::sched {

namespace {

// The active runtime. Goroutines reach it through their M; plain threads through
// g_foreign_mu, which run() takes exclusively before tearing the runtime down.
std::atomic<Runtime*> g_rt{nullptr};
std::shared_mutex g_foreign_mu;
std::mutex g_run_mu;  // one run() at a time
std::atomic<std::int32_t> g_foreign_blocked{0};  // plain threads blocked in a gort primitive
int g_default_procs = 0;  // maxprocs(n) outside run()

// A P's counters are written only by its owner: a plain load and store (no locked
// instruction on the switch path); readers may see a slightly stale value.
template <class T>
inline void owner_bump(std::atomic<T>& c, std::type_identity_t<T> n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

std::uint64_t next_rand(M* m) noexcept {
  // xorshift64*: cheap, good enough for victim order and select shuffles.
  std::uint64_t x = m->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  m->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

// ---- G allocation --------------------------------------------------------------------

// G descriptors come in slabs that grow with their number (each as many again as exist,
// from kGSlabMin to kGSlabMax): each slab is an allocation that may take the address
// space's lock (glibc grows its heap with mprotect, or maps a large block), which waits for
// every other thread's stack population. Fixed slabs of 128 made 8,000 such calls for a
// million goroutines; growing ones make about 70.
// A slab of a huge page or more is a mapping of its own, aligned to and filling whole huge
// pages, advised for transparent huge pages (where the kernel grants them: THP "madvise"
// or "always"). A slab is built by the spawner under gfree_lock, so its page faults hold
// up every spawn: with 4 KiB pages one fault per ten descriptors, with huge pages one per
// 5,461 (docs/design.md gives the figures).
constexpr std::size_t kGSlabMin = 128, kGSlabMax = 16384;
constexpr std::size_t kHugePageBytes = std::size_t(2) << 20;

Runtime::GSlab new_g_slab(std::size_t n) {
  std::size_t bytes = n * sizeof(G);
  if (bytes >= kHugePageBytes) {
    bytes = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    // Map a huge page more than needed, then cut the mapping down to an aligned run.
    void* p = mmap(nullptr, bytes + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      char* const base = static_cast<char*>(p);
      const std::size_t head = (kHugePageBytes - reinterpret_cast<std::uintptr_t>(base) % kHugePageBytes) % kHugePageBytes;
      if (head) munmap(base, head);
      munmap(base + head + bytes, kHugePageBytes - head);
      madvise(base + head, bytes, MADV_HUGEPAGE);  // a hint: without THP, plain pages
      G* gs = reinterpret_cast<G*>(base + head);
      n = bytes / sizeof(G);
      std::uninitialized_default_construct_n(gs, n);
      return {gs, n, bytes};
    }
  }
  return {new G[n], n, 0};
}

void delete_g_slab(const Runtime::GSlab& s) {
  if (s.mapped_bytes == 0) {
    delete[] s.gs;
    return;
  }
  std::destroy_n(s.gs, s.n);
  munmap(s.gs, s.mapped_bytes);
}

constexpr int kGFreeBatch = 32;  // Gs moved between a P's free list and the global one

// Requires rt->gfree_lock (taken before rt->lock, never inside it). The global free list
// and the global run queue can each hold every G ever made, so putting a G on either never
// allocates; both grow here, before the slab's Gs can be taken.
void alloc_g_slab_locked(Runtime* rt) {
  std::size_t n;
  {
    RuntimeLockGuard g(rt->allg_lock);
    n = std::clamp(rt->allgs.size(), kGSlabMin, kGSlabMax);
  }
  const Runtime::GSlab gslab = new_g_slab(n);
  G* const slab = gslab.gs;
  n = gslab.n;
  std::size_t total;
  {
    RuntimeLockGuard g(rt->allg_lock);
    // Doubling, as GRing::reserve does: an exact reserve would reallocate (a large block:
    // mmap, copy, munmap) at every slab.
    const std::size_t need = rt->allgs.size() + n;
    if (need > rt->gfree.capacity()) rt->gfree.reserve(std::max(need, 2 * rt->gfree.capacity()));
    rt->gslabs.push_back(gslab);
    for (std::size_t i = 0; i < n; ++i) rt->allgs.push_back(&slab[i]);
    total = rt->allgs.size();
  }
  {
    RuntimeLockGuard l(rt->lock);
    rt->runq.reserve(total);
  }
  for (std::size_t i = n; i-- > 0;) {
    san::release(&slab[i]);  // its construction happens before its first user (gfget)
    rt->gfree.push_back(&slab[i]);
  }
}

G* gfget(Runtime* rt, P* p) {
  if (p) {
    if (p->ngfree == 0) {
      RuntimeLockGuard l(rt->gfree_lock);
      if (rt->gfree.empty()) alloc_g_slab_locked(rt);
      const int n = int(std::min<std::size_t>(kGFreeBatch, rt->gfree.size()));
      std::copy(rt->gfree.end() - n, rt->gfree.end(), p->gfree.begin());
      rt->gfree.resize(rt->gfree.size() - std::size_t(n));
      p->ngfree = n;
    }
    G* g = p->gfree[std::size_t(--p->ngfree)];
    san::acquire(g);  // after everything its previous goroutine did
    return g;
  }
  RuntimeLockGuard l(rt->gfree_lock);
  if (rt->gfree.empty()) alloc_g_slab_locked(rt);
  G* g = rt->gfree.back();
  rt->gfree.pop_back();
  san::acquire(g);
  return g;
}

void gfput(Runtime* rt, P* p, G* g) {
  g->status.store(GStatus::idle, std::memory_order_relaxed);
  if (!p) {
    RuntimeLockGuard l(rt->gfree_lock);
    rt->gfree.push_back(g);
    return;
  }
  if (p->ngfree == kGFreeLocalMax) {
    // Hand the coldest half to the global list.
    {
      RuntimeLockGuard l(rt->gfree_lock);
      rt->gfree.insert(rt->gfree.end(), p->gfree.begin(), p->gfree.begin() + kGFreeBatch);
    }
    std::copy(p->gfree.begin() + kGFreeBatch, p->gfree.end(), p->gfree.begin());
    p->ngfree -= kGFreeBatch;
  }
  p->gfree[std::size_t(p->ngfree++)] = g;
}

// ---- global run queue (requires rt->lock) ----------------------------------------------

void globrunqput_locked(Runtime* rt, G* g) {
  rt->runq.push_back(g);
  rt->runq_size.fetch_add(1, std::memory_order_relaxed);
}

void globrunqput_batch_locked(Runtime* rt, GQueue& q) {
  std::int32_t n = 0;
  while (G* g = q.pop_front()) {
    rt->runq.push_back(g);
    ++n;
  }
  rt->runq_size.fetch_add(n, std::memory_order_relaxed);
}

// Takes a batch from the global queue for p: one to run now, some more into p's ring.
G* globrunqget_locked(Runtime* rt, P* p, std::int32_t max) {
  std::int32_t size = rt->runq_size.load(std::memory_order_relaxed);
  if (size == 0) return nullptr;
  std::int32_t procs = std::max(1, rt->gomaxprocs.load(std::memory_order_relaxed));
  std::int32_t n = std::min(size, size / procs + 1);
  if (max > 0) n = std::min(n, max);
  n = std::min<std::int32_t>(n, RunQueue::kSize / 2);
  rt->runq_size.fetch_sub(n, std::memory_order_relaxed);
  G* first = rt->runq.pop_front();
  GQueue overflow;
  for (std::int32_t i = 1; i < n; ++i) {
    G* g = rt->runq.pop_front();
    if (!p->runq.push(g, overflow)) break;
  }
  if (!overflow.empty()) globrunqput_batch_locked(rt, overflow);
  return first;
}

// ---- processors ------------------------------------------------------------------------

void pidleput_locked(Runtime* rt, P* p) {
  p->status.store(PStatus::idle, std::memory_order_relaxed);
  p->m = nullptr;
  p->link = rt->pidle;
  rt->pidle = p;
  rt->npidle.fetch_add(1, std::memory_order_relaxed);
}

P* pidleget_locked(Runtime* rt) {
  P* p = rt->pidle;
  if (p) {
    rt->pidle = p->link;
    p->link = nullptr;
    rt->npidle.fetch_sub(1, std::memory_order_relaxed);
  }
  return p;
}

void acquirep(M* m, P* p) {
  p->status.store(PStatus::running, std::memory_order_relaxed);
  p->m = m;
  m->p = p;
  if (netpoll::initialized()) netpoll::note_cpu(p->id);  // P now runs on this M's CPU
}

P* releasep(M* m) {
  P* p = m->p;
  m->p = nullptr;
  if (p) p->m = nullptr;
  return p;
}

// A P beyond gomaxprocs: empty it and mark it dead (requires rt->lock).
void retire_p_locked(Runtime* rt, P* p) {
  GQueue q;
  p->runq.drain(q);
  globrunqput_batch_locked(rt, q);
  p->stacks.drain(rt->stacks);
  time_impl::move_all(p->timers, rt->allp[0].load(std::memory_order_relaxed)->timers);  // P 0 never retires
  p->status.store(PStatus::dead, std::memory_order_relaxed);
  p->m = nullptr;
  if (P* c = p->covers.load(std::memory_order_relaxed)) {
    c->stand_in.store(nullptr, std::memory_order_relaxed);
    p->covers.store(nullptr, std::memory_order_relaxed);
    --rt->noverflow;
  }
}

// True when p must stop running goroutines: beyond gomaxprocs, or a stand-in whose stuck P
// has moved on.
bool p_is_retired(Runtime* rt, P* p) {
  if (P* c = p->covers.load(std::memory_order_relaxed)) {
    return c->sched_seq.load(std::memory_order_relaxed) != p->covers_seq ||
           c->status.load(std::memory_order_relaxed) != PStatus::running;
  }
  return p->id >= rt->gomaxprocs.load(std::memory_order_relaxed);
}

// ---- threads ---------------------------------------------------------------------------

void mstart(M* m);

M* newm_locked(Runtime* rt) {
  M* m = new M;
  m->id = rt->mcount++;
  m->rng = 0x9E3779B97F4A7C15ull * std::uint64_t(m->id + 1) ^ std::uint64_t(monotonic_ns());
  if (m->rng == 0) m->rng = 1;
  rt->allm.push_back(m);
  m->alllink = rt->allm_head.load(std::memory_order_relaxed);
  rt->allm_head.store(m, std::memory_order_release);  // pushed under lock: one writer
  return m;
}

// Starts an M (an idle one, or a new thread) holding p, or an idle P when p is null.
// `spinning`: the caller already counted it in nmspinning.
void startm(Runtime* rt, P* p, bool spinning) {
  rt->lock.lock();
  if (rt->stopping.load(std::memory_order_relaxed)) {  // no new threads while shutting down
    if (p) pidleput_locked(rt, p);
    rt->lock.unlock();
    if (spinning) rt->nmspinning.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  if (!p) {
    p = pidleget_locked(rt);
    if (!p) {
      rt->lock.unlock();
      if (spinning) rt->nmspinning.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
  M* m = rt->midle;
  if (m) {
    rt->midle = m->link;
    --rt->nmidle;
  } else {
    m = newm_locked(rt);
  }
  m->spinning = spinning;
  m->nextp = p;
  p->status.store(PStatus::running, std::memory_order_relaxed);
  if (!m->thread.joinable()) {
    // Created under the lock, so run()'s shutdown never sees an M without its thread.
    m->thread = std::thread(mstart, m);
    rt->lock.unlock();
    return;
  }
  rt->lock.unlock();
  m->park.wakeup();
}

// Go's wakep: if a P is idle and nobody is spinning, start one spinning M.
void wakep(Runtime* rt) {
  if (rt->npidle.load(std::memory_order_relaxed) == 0) return;
  std::int32_t zero = 0;
  if (rt->nmspinning.load(std::memory_order_relaxed) != 0 ||
      !rt->nmspinning.compare_exchange_strong(zero, 1, std::memory_order_acq_rel))
    return;
  startm(rt, nullptr, true);
}

// Calls f(tid) for each of the process's threads, from /proc/self/task (the num_threads
// field of /proc/self/stat reads 0 under qemu-user). False if it cannot be read.
template <class F>
bool for_each_thread(F&& f) noexcept {
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return false;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') f(std::int32_t(std::atoi(e->d_name)));
  }
  ::closedir(dir);
  return true;
}

bool any_timers(Runtime* rt) noexcept {
  const std::int32_t n = rt->nallp.load(std::memory_order_acquire);
  for (std::int32_t i = 0; i < n; ++i) {
    P* p = rt->allp[i].load(std::memory_order_acquire);
    if (p && p->timers.timer0_when.load(std::memory_order_acquire) != 0) return true;
  }
  return false;
}

bool any_local_work(Runtime* rt);

// Go's checkdead, called as an M goes idle (requires rt->lock): when no M runs, nothing is
// runnable, and nothing — a timer, an M in a blocking call, a plain thread that is not
// itself blocked in the runtime — could ever make a goroutine runnable, report the
// deadlock. Threads that existed before run() (the caller, sanitizer helpers) are not
// counted as wakers.
void checkdead_locked(Runtime* rt) {
  if (rt->stopping.load(std::memory_order_relaxed)) return;
  if (rt->mcount - rt->nmidle - rt->nmidlelocked > 0) return;
  if (rt->runq_size.load(std::memory_order_relaxed) > 0 || any_local_work(rt) || any_timers(rt)) return;
  if (netpoll::waiters() > 0) return;  // an fd may become ready
  std::int64_t new_threads = 0;
  const auto& before = rt->threads_at_start;
  if (!for_each_thread([&](std::int32_t tid) { new_threads += !std::binary_search(before.begin(), before.end(), tid); }))
    return;
  const std::int64_t others = new_threads - rt->mcount;
  // (Plain threads waiting on an fd are not among the blocked: read apart, the waiters
  // count above and this one once showed a thread that had just begun to wait on its
  // socket as blocked on nothing, and a live plain thread was taken for dead.)
  if (others - g_foreign_blocked.load(std::memory_order_acquire) > 0) return;
  // Last, as Go's checkdead does: no goroutine may be running or runnable. (A safety net:
  // a TSan stress run once got here with a goroutine still running, the M accounting
  // above notwithstanding.) try_lock: allg_lock may be taken before Runtime::lock.
  if (!rt->allg_lock.try_lock()) return;
  bool live = false;
  for (const G* g : rt->allgs) {
    const GStatus s = g->status.load(std::memory_order_acquire);
    if (s == GStatus::running || s == GStatus::runnable || s == GStatus::syscall) {
      live = true;
      break;
    }
  }
  rt->allg_lock.unlock();
  if (live) return;
  rt->lock.unlock();
  fatal("all goroutines are asleep - deadlock!");
}

// Puts the M to sleep until startm hands it a P (or the runtime stops).
void stopm(Runtime* rt, M* m) {
  rt->lock.lock();
  if (rt->stopping.load(std::memory_order_relaxed)) {
    rt->lock.unlock();
    return;
  }
  m->park.clear();
  m->link = rt->midle;
  rt->midle = m;
  ++rt->nmidle;
  checkdead_locked(rt);
  rt->lock.unlock();
  // Idle time is when stacks a burst left behind give their pages back, a few at a time,
  // until someone wakes us. Stacks freed too recently wait for their release: we sleep
  // until the oldest comes of age (woken as usual if work comes first).
  rt->n_thread_parks.fetch_add(1, std::memory_order_relaxed);
  while (!m->park.woken() && !rt->stopping.load(std::memory_order_acquire)) {
    const stack::StackAllocator::Trimmed t = rt->stacks.trim_excess(stack::kTrimBatch, monotonic_ns());
    if (t.released > 0) continue;
    if (t.retry_at == 0) break;
    m->park.sleep_until(t.retry_at);
  }
  m->park.sleep();
  if (m->nextp) {
    acquirep(m, m->nextp);
    m->nextp = nullptr;
  }
}

// Gives p to another M if there is work for it, else puts it on the idle list.
void handoffp(Runtime* rt, P* p) {
  if (p_is_retired(rt, p)) {
    RuntimeLockGuard g(rt->lock);
    retire_p_locked(rt, p);
    return;
  }
  if (!p->runq.empty() || rt->runq_size.load(std::memory_order_relaxed) > 0) {
    startm(rt, p, false);
    return;
  }
  // No work: still make sure someone spins, or an idle P exists, to pick up the next.
  std::int32_t zero = 0;
  if (rt->nmspinning.load(std::memory_order_relaxed) + rt->npidle.load(std::memory_order_relaxed) == 0 &&
      rt->nmspinning.compare_exchange_strong(zero, 1, std::memory_order_acq_rel)) {
    startm(rt, p, true);
    return;
  }
  rt->lock.lock();
  if (rt->runq_size.load(std::memory_order_relaxed) > 0) {
    rt->lock.unlock();
    startm(rt, p, false);
    return;
  }
  pidleput_locked(rt, p);
  rt->lock.unlock();
  // Its timers now have no M: make sure one sleeps until the earliest.
  if (const std::int64_t when = p->timers.timer0_when.load(std::memory_order_acquire)) timer_added(rt, when);
}

// Makes goroutines the poller or sysmon readied runnable: onto the global queue, then
// wakes Ms for idle Ps (Go's injectglist).
void inject_glist(Runtime* rt, GQueue& q) {
  if (q.empty()) return;
  for (G* g = q.head; g; g = g->link) {
    san::release(g);
    g->status.store(GStatus::runnable, std::memory_order_release);
  }
  {
    RuntimeLockGuard l(rt->lock);
    globrunqput_batch_locked(rt, q);
  }
  wakep(rt);
}

// ---- switching -------------------------------------------------------------------------

// Returns false when p's ring was full and half of it went to the global queue.
[[gnu::always_inline]] inline bool put_runnable_local(Runtime* rt, P* p, G* g, bool next, bool displaced_soon = false) {
  GQueue overflow;
  bool ok = !next             ? p->runq.push(g, overflow)
            : displaced_soon ? p->runq.put_next_soon(g, overflow)
                             : p->runq.put_next(g, overflow);
  if (!ok) {
    RuntimeLockGuard l(rt->lock);
    globrunqput_batch_locked(rt, overflow);
  }
  return ok;
}

void free_dead_g(Runtime* rt, M* m, G* g) {
  if (g->stack) {
    g->stack_extent.store(0, std::memory_order_relaxed);  // before free_odd's fence
    if (g->stack.pooled && m->p) {
      m->p->stacks.put(rt->stacks, g->stack, g->deepest_sp);
    } else if (g->stack.pooled) {
      char* deepest[1] = {g->deepest_sp};
      rt->stacks.put_batch(&g->stack, deepest, 1);
    } else {
      rt->stacks.free_odd(g->stack);
    }
    g->stack = {};
  }
  g->name.clear();
  g->started = false;
  gfput(rt, m->p, g);
}

// Carries out what the goroutine that just left asked for (M::pending), on this M's g0
// TSan fiber (after_switch has released prev's clock). Returns the TSan fiber of a
// goroutine that exited, to destroy.
void* run_pending(M* m, Runtime* rt) {
  san::IgnoreAccesses ignore;
  Pending pend = m->pending;
  m->pending = {};
  G* prev = pend.prev;
  void* dead_fiber = nullptr;
  switch (pend.what) {
    case AfterSwitch::none:
      break;
    case AfterSwitch::requeue:
      prev->status.store(GStatus::runnable, std::memory_order_release);
      if (m->p) {
        put_runnable_local(rt, m->p, prev, false);
        // An idle P could run it now; without this a yielder stays queued behind a
        // goroutine that never reaches the scheduler (Go wakes one too).
        wakep(rt);
      } else {
        {
          RuntimeLockGuard l(rt->lock);
          globrunqput_locked(rt, prev);
        }
        wakep(rt);
      }
      break;
    case AfterSwitch::park:
      prev->status.store(GStatus::waiting, std::memory_order_release);
      if (pend.commit && !pend.commit(prev, pend.arg)) ready(prev);
      break;
    case AfterSwitch::exit:
      dead_fiber = prev->tsan_fiber;
      prev->tsan_fiber = nullptr;
      free_dead_g(rt, m, prev);
      break;
    case AfterSwitch::to_global: {
      // A P may have gone idle since exit_blocking found none: wake an M for prev, or
      // nobody might run it (Go's exitsyscall0 does the same).
      prev->status.store(GStatus::runnable, std::memory_order_release);
      {
        RuntimeLockGuard l(rt->lock);
        globrunqput_locked(rt, prev);
      }
      wakep(rt);
      break;
    }
  }
  return dead_fiber;
}

// Runs on the context that was just switched to, on `m`, the M that switched to it.
void after_switch(M* m) {
  G* self = m->curg ? m->curg : &m->g0;
  if constexpr (san::asan) {
    const void* old_bottom;
    std::size_t old_size;
    san::finish_switch(self->asan_fake_stack, &old_bottom, &old_size);
    self->asan_fake_stack = nullptr;
    if (!m->g0_stack_bottom) {  // an M's first switch always leaves g0
      m->g0_stack_bottom = old_bottom;
      m->g0_stack_size = old_size;
    }
  }
  if constexpr (san::tsan) {
    // The pending action may make the goroutine that left runnable, and another M may
    // switch to its fiber at once: so the action runs on this M's g0 fiber. Releasing
    // prev (and a dead one's stack) on prev's own fiber lets whoever next runs it, or
    // reuses its G or stack, see exactly its accesses. g0 takes prev's clock only for an
    // action done on prev's behalf (a park's commit unlocks what prev locked; an exit
    // frees its G): after a yield or a preemption it must not, or g0 would carry every
    // goroutine's accesses on to the next one it runs and hide their races.
    if (G* prev = m->pending.prev) {
      const AfterSwitch what = m->pending.what;
      san::release(prev);
      if (what == AfterSwitch::exit && prev->stack) san::release(prev->stack.lo);
      san::switch_fiber(m->g0.tsan_fiber);
      if (what == AfterSwitch::park || what == AfterSwitch::exit) san::acquire(prev);
    }
  }
  void* dead_fiber = run_pending(m, g_rt.load(std::memory_order_relaxed));
  if constexpr (san::tsan) {
    void* fiber = self == &m->g0 ? m->g0.tsan_fiber : self->tsan_fiber;
    san::switch_fiber(fiber);
    if (self != &m->g0) {
      san::acquire(self);            // from whoever readied or spawned it
      san::acquire(self->stack.lo);  // from the goroutine that used this stack before
    }
    if (dead_fiber) san::destroy_fiber(dead_fiber);
  }
}

// Inlined, as reschedule is, into whatever parks, yields or exits: a goroutine resumes by
// returning through the frames it left on its stack, cold after a long wait (a sleep),
// and each frame costs a cache miss behind a mispredicted return. One frame instead of
// three: sleep_many's median overshoot -6% (31 alternating pairs).
[[gnu::always_inline]] inline void switch_context(M* m, G* from, G* to) {
  // Remember how deep `from` has used its stack, for trimming; check its canary.
  if (from != &m->g0) {
    char* sp = static_cast<char*>(__builtin_frame_address(0));
    if (!from->deepest_sp || sp < from->deepest_sp) from->deepest_sp = sp;
    if (!from->stack.canary_intact()) report_stack_overflow(from);
  }
  m->curg = to == &m->g0 ? nullptr : to;
  if (to != &m->g0 && m->p) owner_bump(m->p->n_switches);
  if constexpr (san::asan) {
    const bool dying = m->pending.what == AfterSwitch::exit && m->pending.prev == from;
    if (to == &m->g0) {
      san::start_switch(dying ? nullptr : &from->asan_fake_stack, m->g0_stack_bottom, m->g0_stack_size);
    } else {
      san::start_switch(dying ? nullptr : &from->asan_fake_stack, to->stack.lo, to->stack.size());
    }
  }
  if (trace::enabled()) trace::go_switch(m, from, to);
  // We resume on whichever M switches back to us: it passes itself (no TLS read).
  after_switch(static_cast<M*>(gort_ctx_switch(&from->ctx, &to->ctx, m)));
}

[[gnu::noinline]] void g_entry(void* arg);

// Gives `g` what it needs to run for the first time: a stack and a context.
void prepare_first_run(Runtime* rt, M* m, G* g) {
  if (!g->stack) {
    if (g->odd_stack_size) {
      g->stack = rt->stacks.alloc_odd(g->odd_stack_size);
    } else {
      g->stack = m->p->stacks.get(rt->stacks);
    }
  }
  g->stack_extent.store(stack::pack_extent(g->stack), std::memory_order_release);
  if constexpr (san::asan) san::unpoison(g->stack.lo, g->stack.size());
  arch::make_context(g->ctx, g->stack.hi, &g_entry, g);
  g->started = true;
  g->deepest_sp = nullptr;
  if constexpr (san::tsan) g->tsan_fiber = san::create_fiber();
}

[[gnu::always_inline]] inline void set_running(M* m, G* g) {
  g->status.store(GStatus::running, std::memory_order_relaxed);
  consume_preempt(g);  // a request for its last run is moot
  if (P* p = m->p) p->sched_seq.store(p->sched_seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (!g->started) prepare_first_run(g_rt.load(std::memory_order_relaxed), m, g);
}

// p's earliest timer is due. Read before the switch: due timers run on g0 (see reschedule),
// which fires them at the time read here (M::timers_now) rather than read the clock again.
bool timers_due(M* m, P* p) {
  const std::int64_t w = p->timers.timer0_when.load(std::memory_order_relaxed);
  if (w == 0) return false;
  const std::int64_t now = monotonic_ns();
  if (w > now) return false;
  m->timers_now = now;
  return true;
}

// Next G for p without blocking and without stealing: the fast path of schedule().
[[gnu::always_inline]] inline G* pick_local(Runtime* rt, P* p) {
  ++p->schedtick;
  if (p->schedtick % kGlobalQueueTick == 0 && rt->runq_size.load(std::memory_order_relaxed) > 0) {
    RuntimeLockGuard l(rt->lock);
    if (G* g = globrunqget_locked(rt, p, 1)) return g;
  }
  return p->runq.pop();
}

// Called on a goroutine's own stack when it stops running for the reason in `pend`.
// Returns when the goroutine runs again (unless it exited).
// When a timer is due it goes through g0 instead of straight to the next G, as Go's
// schedule() runs timers before it picks: g0 first carries out the pending action (a park
// releases what it parked on, which a timer may need), then fires the timers, and the
// goroutine a timer woke runs next, from runnext, rather than after whatever was picked.
// (Firing them on the resumed side made each wake wait one more goroutine's turn: ~0.4 µs
// of sleep_many's median overshoot.)
[[gnu::always_inline]] inline void reschedule(M* m, G* cur, AfterSwitch what, bool (*commit)(G*, void*) = nullptr, void* arg = nullptr) {
  G* next = nullptr;
  {
    san::IgnoreAccesses ignore;  // ended before the switch: a dying fiber never comes back
    Runtime* rt = g_rt.load(std::memory_order_relaxed);
    P* p = m->p;
    if (p && !cur->locked_m && !rt->stopping.load(std::memory_order_relaxed) && !p_is_retired(rt, p) &&
        !timers_due(m, p)) {
      if (G* g = pick_local(rt, p)) {
        if (!g->locked_m) {
          set_running(m, g);
          next = g;
        } else {
          m->handoff_g = g;
        }
      }
    }
    // A locked M sleeps in g0 until its G is runnable again; arm its note before the G
    // becomes visible to wakers (in the pending action).
    if (!next && cur->locked_m) m->park.clear();
    // Field by field: the caller's arguments arrive in registers (a Pending passed by
    // value went through the stack, and its reload stalled store forwarding: 10% of a
    // yield). After the pick: its compare-and-swap need not wait for these stores.
    m->pending.what = what;
    m->pending.prev = cur;
    m->pending.commit = commit;
    m->pending.arg = arg;
  }
  switch_context(m, cur, next ? next : &m->g0);
}

[[noreturn]] void goexit(M* m, G* g) {
  Runtime* rt = g_rt.load(std::memory_order_relaxed);
  if (g->locked_m) {
    m->lockedg = nullptr;
    g->locked_m = nullptr;
    g->lock_count = 0;
  }
  g->status.store(GStatus::dead, std::memory_order_relaxed);
  if (m->p) {
    owner_bump(m->p->ngoroutines_delta, -1);
  } else {
    rt->ngoroutines.fetch_sub(1, std::memory_order_relaxed);
  }
  reschedule(m, g, AfterSwitch::exit);
  __builtin_trap();  // a dead G is never resumed
}

// The first frame of every goroutine (under the trampoline). Deliberately not noexcept and
// without handlers: an exception nobody catches finds no handler up to the trampoline,
// which ends the stack, so std::terminate runs *before* unwinding, on this stack — the
// panic report then shows where it was thrown.
void g_entry(void* arg) {
  G* g = static_cast<G*>(arg);
  after_switch(this_m());
  g->task_ops->invoke(g->task);
  g->task_ops->destroy(g->task);
  M* m = this_m();
  Runtime* rt = g_rt.load(std::memory_order_relaxed);
  if (g->id == 1) {
    // main returned: stop the world for good (goroutines left are never resumed).
    rt->stopping.store(true, std::memory_order_release);
    san::release(&rt->main_done);  // main's effects happen before run() returns
    rt->main_done.wakeup();
  }
  goexit(m, g);
}

// ---- finding work ----------------------------------------------------------------------

// A sleep, as Go's usleep(3), not a spin. Go's 3 µs last ~50 µs (Linux's default timer
// slack), and so did ours until Ms asked for 1 µs of slack (mstart): hence the 50 µs,
// written out. All that while this M counts as spinning, so the readies of a channel
// hand-off in progress on the victim wake no M (wakep sees a spinner). A 3 µs spin gave up
// at once, slept in futex, and the next ready woke it: bench/ab.sh 5 at maxprocs 2,
// select4 288 -> 201 ns, SPSC 45.9 -> 38.3 ns/item, ping-pong 217 -> 200 ns; futex calls
// per select4 run 14k -> 3k. (A 3 µs sleep with 1 µs of slack: select4 149 -> 167-207 ns.)
void runnext_backoff() noexcept {
  const timespec pause{0, 50'000};
  nanosleep(&pause, nullptr);
}

// Steals from other Ps in random order (Go's stealWork). Called while spinning.
G* steal_work(Runtime* rt, M* m) {
  P* p = m->p;
  const std::int32_t n = rt->nallp.load(std::memory_order_acquire);
  if (n <= 1) return nullptr;
  for (int pass = 0; pass < kStealPasses; ++pass) {
    const bool last = pass == kStealPasses - 1;
    // A random start and a stride coprime with n visit every P once.
    std::uint32_t start = std::uint32_t(next_rand(m) % std::uint64_t(n));
    std::uint32_t stride = std::uint32_t(next_rand(m) % std::uint64_t(n)) + 1;
    while (std::gcd(stride, std::uint32_t(n)) != 1) stride = stride % std::uint32_t(n) + 1;
    for (std::int32_t i = 0; i < n; ++i) {
      P* victim = rt->allp[(start + std::uint32_t(i) * stride) % std::uint32_t(n)].load(std::memory_order_acquire);
      if (!victim || victim == p) continue;
      // Go's runqgrab: before taking the runnext of a P that is running, give its owner
      // time to run it. The common case is a goroutine that readied another and is about
      // to block (a channel hand-off): stealing then only moves the pair between threads,
      // and a thief that gives up at once sleeps and is woken again by the next ready.
      if (last && victim->status.load(std::memory_order_relaxed) == PStatus::running && victim->runq.only_runnext())
        runnext_backoff();
      if (G* g = p->runq.steal_from(victim->runq, last)) {
        owner_bump(p->n_steals);
        if (trace::enabled()) trace::steal(p, victim, 1 + p->runq.approx_size());
        owner_bump(p->n_stolen_gs, 1 + p->runq.approx_size());
        return g;
      }
    }
  }
  return nullptr;
}

bool any_local_work(Runtime* rt) {
  const std::int32_t n = rt->nallp.load(std::memory_order_acquire);
  for (std::int32_t i = 0; i < n; ++i) {
    P* p = rt->allp[i].load(std::memory_order_acquire);
    if (p && !p->runq.empty()) return true;
  }
  return false;
}

void reset_spinning(Runtime* rt, M* m) {
  m->spinning = false;
  if (rt->nmspinning.fetch_sub(1, std::memory_order_acq_rel) == 1) wakep(rt);  // we were the last
}

std::int64_t earliest_timer(Runtime* rt) noexcept {
  std::int64_t best = 0;
  const std::int32_t n = rt->nallp.load(std::memory_order_acquire);
  for (std::int32_t i = 0; i < n; ++i) {
    P* p = rt->allp[i].load(std::memory_order_acquire);
    const std::int64_t w = p ? p->timers.timer0_when.load(std::memory_order_acquire) : 0;
    if (w != 0 && (best == 0 || w < best)) best = w;
  }
  return best;
}

int run_others_timers(Runtime* rt, P* self) noexcept {
  int fired = 0;
  std::int64_t now = 0;
  const std::int32_t n = rt->nallp.load(std::memory_order_acquire);
  for (std::int32_t i = 0; i < n; ++i) {
    P* p = rt->allp[i].load(std::memory_order_acquire);
    if (!p || p == self) continue;
    const std::int64_t w = p->timers.timer0_when.load(std::memory_order_acquire);
    if (w == 0) continue;
    if (now == 0) now = monotonic_ns();
    if (w <= now) fired += time_impl::run_due(p->timers, now);
  }
  return fired;
}

// With timers pending or fds watched, and no M already waiting for them, this M (holding
// no P) sleeps until the earliest timer is due — in the netpoller when fds are watched, so
// a ready fd wakes it too — then takes an idle P to run what it found. Returns true if it
// took a P (the caller looks for work again), false if the caller should stopm.
bool sleep_until_timer(Runtime* rt, M* m) {
  const bool poll = netpoll::initialized() && netpoll::waiters() > 0;
  if (!poll && earliest_timer(rt) == 0) return false;
  {
    RuntimeLockGuard l(rt->timer_lock);
    if (rt->timer_sleeper) {
      // A sleeper that only waits for a timer must now watch fds too: wake it to re-decide.
      if (poll && !rt->timer_sleeper_polls) rt->timer_sleeper->park.wakeup();
      return false;
    }
    rt->timer_sleeper = m;
    rt->timer_sleeper_polls = poll;
    m->park.clear();
    // Publish before the final look, so a timer added from now on wakes us (timer_added).
    rt->timer_sleep_until.store(std::numeric_limits<std::int64_t>::max(), std::memory_order_relaxed);
  }
  // Pairs with timer_added's fence: either it sees our `until` or we see its timer.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::int64_t next = earliest_timer(rt);
  {
    RuntimeLockGuard l(rt->timer_lock);
    // Only lower: a timer added since the final look may have lowered it already.
    if (next != 0 && next < rt->timer_sleep_until.load(std::memory_order_relaxed))
      rt->timer_sleep_until.store(next, std::memory_order_relaxed);
  }
  GQueue ready;
  if (poll) {
    if (!rt->stopping.load(std::memory_order_acquire)) {
      const std::int64_t now = monotonic_ns();
      rt->n_thread_parks.fetch_add(1, std::memory_order_relaxed);
      netpoll::poll(next == 0 ? -1 : std::max<std::int64_t>(next - now, 0), ready);
    }
  } else {
    // Trim meanwhile (as stopm does), and wake early when free stacks come of age for
    // release before the timer is due.
    std::int64_t wake = next;
    for (std::int64_t now = monotonic_ns(); !m->park.woken() && now < next - 1'000'000; now = monotonic_ns()) {
      const stack::StackAllocator::Trimmed t = rt->stacks.trim_excess(stack::kTrimBatch, now);
      if (t.released > 0) continue;
      if (t.retry_at != 0) wake = std::min(wake, t.retry_at);
      break;
    }
    if (next != 0 && wake > monotonic_ns() && !rt->stopping.load(std::memory_order_acquire)) {
      rt->n_thread_parks.fetch_add(1, std::memory_order_relaxed);
      m->park.sleep_until(wake);
    }
  }
  {
    RuntimeLockGuard l(rt->timer_lock);
    rt->timer_sleeper = nullptr;
    rt->timer_sleeper_polls = false;
    rt->timer_sleep_until.store(0, std::memory_order_relaxed);
  }
  // Pairs with timer_added's fence: a timer it left to us (seeing the old deadline) is on
  // a heap our next look (findrunnable, or the next sleep) sees.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  P* np = nullptr;
  if (!rt->stopping.load(std::memory_order_acquire)) {
    RuntimeLockGuard l(rt->lock);
    np = pidleget_locked(rt);
  }
  if (np) acquirep(m, np);
  inject_glist(rt, ready);  // with our P, findrunnable takes them from the global queue
  if (rt->stopping.load(std::memory_order_acquire)) return true;  // the loop sees it
  return np != nullptr;  // else every P is busy: each runs its own timers as it schedules
}

// Makes the goroutines a poll readied runnable and returns the first, for the caller to
// run. The rest go to p's own queue (they were homed on it), or with p null to the global
// queue.
G* run_polled(Runtime* rt, P* p, GQueue& q) {
  G* first = q.pop_front();
  if (!first) return nullptr;
  san::release(first);
  first->status.store(GStatus::runnable, std::memory_order_release);
  if (!p) {
    inject_glist(rt, q);
    return first;
  }
  if (q.empty()) return first;
  while (G* g = q.pop_front()) {
    san::release(g);
    g->status.store(GStatus::runnable, std::memory_order_release);
    put_runnable_local(rt, p, g, false);
  }
  wakep(rt);  // more than one: an idle P may take a share
  return first;
}

// Blocks until there is a G for this M to run; nullptr once the runtime stops.
// On return the M holds a P (unless stopping).
G* findrunnable(Runtime* rt, M* m) {
  for (;;) {
    // The clock read by the reschedule that switched here for due timers: good for this
    // pass only (a pass that sleeps or moves Ps must read the clock afresh).
    const std::int64_t timers_now = std::exchange(m->timers_now, 0);
    if (rt->stopping.load(std::memory_order_acquire)) return nullptr;
    P* p = m->p;
    if (!p) {
      // A G that parked inside blocking() left its P in syscall state: nobody returns for it.
      if (P* op = std::exchange(m->oldp, nullptr)) {
        PStatus s = PStatus::syscall;
        if (op->status.compare_exchange_strong(s, PStatus::idle, std::memory_order_acq_rel)) handoffp(rt, op);
      }
      // Our P retired under us while spinning: stop spinning before sleeping, or wakep
      // would wait forever for a spinner that is asleep.
      if (m->spinning) reset_spinning(rt, m);
      stopm(rt, m);
      continue;
    }
    if (p_is_retired(rt, p)) {
      releasep(m);
      RuntimeLockGuard l(rt->lock);
      retire_p_locked(rt, p);
      if (P* np = pidleget_locked(rt)) acquirep(m, np);
      continue;
    }
    check_timers(m, p, timers_now);
    if (G* g = pick_local(rt, p)) return g;
    if (rt->runq_size.load(std::memory_order_relaxed) > 0) {
      RuntimeLockGuard l(rt->lock);
      if (G* g = globrunqget_locked(rt, p, 0)) return g;
    }
    // Ready fds homed on this P first, and what they wake stays here: their sockets'
    // buffers are warm in this CPU's cache (docs/design.md, "Netpoller").
    if (netpoll::waiters() > 0) {
      GQueue q;
      netpoll::note_cpu(p->id);
      netpoll::poll_home(p->id, rt->gomaxprocs.load(std::memory_order_relaxed), q);
      if (G* g = run_polled(rt, p, q)) return g;
    }
    // Ready fds, without blocking, unless an M is blocked in the poller already.
    if (netpoll::waiters() > 0 && netpoll::last_poll_ns() != 0) {
      GQueue q;
      netpoll::poll(0, q);
      if (G* g = run_polled(rt, nullptr, q)) return g;
    }
    // Due timers of other Ps (idle ones have nobody else to run them); what they ready
    // lands in our queue.
    m->firing_timers = true;
    const int fired = run_others_timers(rt, p);
    m->firing_timers = false;
    if (fired > 0) {
      if (G* g = pick_local(rt, p)) return g;
    }
    // Steal, if not too many Ms are at it already.
    const std::int32_t procs = rt->gomaxprocs.load(std::memory_order_relaxed);
    if (m->spinning || 2 * rt->nmspinning.load(std::memory_order_relaxed) < procs - rt->npidle.load(std::memory_order_relaxed)) {
      if (!m->spinning) {
        m->spinning = true;
        rt->nmspinning.fetch_add(1, std::memory_order_acq_rel);
      }
      if (G* g = steal_work(rt, m)) return g;
    }
    // Nothing: give the P back, then look once more before sleeping.
    rt->lock.lock();
    if (rt->runq_size.load(std::memory_order_relaxed) > 0) {
      G* g = globrunqget_locked(rt, p, 0);
      rt->lock.unlock();
      if (g) return g;
      continue;
    }
    releasep(m);
    pidleput_locked(rt, p);
    rt->lock.unlock();
    const bool was_spinning = m->spinning;
    if (m->spinning) {
      m->spinning = false;
      rt->nmspinning.fetch_sub(1, std::memory_order_acq_rel);
    }
    // A G readied between our last look and pidleput may have seen a spinning M (us) and
    // woken nobody: re-check every queue now that we no longer spin (Go's delicate dance).
    if (was_spinning && (any_local_work(rt) || rt->runq_size.load(std::memory_order_relaxed) > 0)) {
      rt->lock.lock();
      P* np = pidleget_locked(rt);
      rt->lock.unlock();
      if (np) {
        acquirep(m, np);
        m->spinning = true;
        rt->nmspinning.fetch_add(1, std::memory_order_acq_rel);
        continue;
      }
    }
    if (sleep_until_timer(rt, m)) continue;
    stopm(rt, m);
  }
}

// ---- sysmon ----------------------------------------------------------------------------

// Lends a stand-in P for `stuck` (see "Overflow Ps" in sched.hpp) and starts an M on it.
void lend_overflow(Runtime* rt, P* stuck, std::uint32_t seq) {
  P* p = nullptr;
  {
    RuntimeLockGuard l(rt->lock);
    const std::int32_t n = rt->gomaxprocs.load(std::memory_order_relaxed);
    // A P also looks stuck when the OS does not run its thread (more threads than CPUs):
    // more stand-ins would only make that worse, so at most one per CPU (and per P).
    const std::int32_t cap = std::min(kMaxOverflowPs, std::max(1, std::min(n, rt->ncpu)));
    if (rt->stopping.load(std::memory_order_relaxed) || stuck->stand_in.load(std::memory_order_relaxed) ||
        rt->noverflow >= cap)
      return;
    std::int32_t id = n;
    for (; id < kMaxProcs; ++id) {
      P* c = rt->allp[id].load(std::memory_order_relaxed);
      if (!c || (c->status.load(std::memory_order_relaxed) == PStatus::dead && !c->covers.load(std::memory_order_relaxed))) {
        p = c;
        break;
      }
    }
    if (id == kMaxProcs) return;
    if (!p) {
      p = new P;
      p->id = id;
      rt->allp[id].store(p, std::memory_order_release);
      if (id >= rt->nallp.load(std::memory_order_relaxed)) rt->nallp.store(id + 1, std::memory_order_release);
    }
    p->covers_seq = seq;
    p->covers.store(stuck, std::memory_order_relaxed);
    stuck->stand_in.store(p, std::memory_order_relaxed);
    p->status.store(PStatus::running, std::memory_order_relaxed);
    ++rt->noverflow;
  }
  rt->n_preemptions.fetch_add(1, std::memory_order_relaxed);
  startm(rt, p, false);
}

// What sysmon last saw of a P: the sequence numbers, and since when they have not moved.
struct SysmonTick {
  std::uint32_t sched_seq = 0, syscall_seq = 0;
  std::int64_t sched_since = 0, syscall_since = 0;
};

// Go's retake: takes Ps from Ms blocked in blocking() for over a tick when work waits,
// asks Gs running over 10 ms to yield, and lends stand-ins to Ps stuck behind one.
// Returns whether it did anything.
bool retake(Runtime* rt, std::int64_t now, std::vector<SysmonTick>& seen) {
  bool acted = false;
  const std::int32_t n = rt->nallp.load(std::memory_order_acquire);
  if (seen.size() < std::size_t(n)) seen.resize(std::size_t(n));
  for (std::int32_t i = 0; i < n; ++i) {
    P* p = rt->allp[i].load(std::memory_order_acquire);
    if (!p) continue;
    SysmonTick& t = seen[std::size_t(i)];
    const PStatus s = p->status.load(std::memory_order_acquire);
    if (s == PStatus::syscall) {
      const std::uint32_t sc = p->syscall_seq.load(std::memory_order_relaxed);
      if (t.syscall_seq != sc) {
        t.syscall_seq = sc;
        t.syscall_since = now;
        continue;
      }
      // Leave it to its M if nothing waits, someone else is free to look, and not 10 ms yet.
      if (p->runq.empty() && p->timers.timer0_when.load(std::memory_order_relaxed) == 0 &&
          rt->nmspinning.load(std::memory_order_relaxed) + rt->npidle.load(std::memory_order_relaxed) > 0 &&
          now - t.syscall_since < kForcePreemptNs)
        continue;
      PStatus expect = PStatus::syscall;
      if (p->status.compare_exchange_strong(expect, PStatus::idle, std::memory_order_acq_rel)) {
        rt->n_handoffs.fetch_add(1, std::memory_order_relaxed);
        if (trace::enabled()) trace::syscall_handoff(p);
        handoffp(rt, p);
        acted = true;
      }
    } else if (s == PStatus::running) {
      const std::uint32_t sq = p->sched_seq.load(std::memory_order_relaxed);
      if (t.sched_seq != sq) {
        t.sched_seq = sq;
        t.sched_since = now;
        continue;
      }
      if (now - t.sched_since < kForcePreemptNs) continue;
      // Running one G for 10 ms (not the scheduler itself, looking for work): ask it to
      // yield at its next runtime call.
      M* m = p->m;
      G* g = m ? m->curg : nullptr;
      if (!g) continue;
      // (As in Go, a preemption request is not activity that keeps sysmon at short ticks:
      // a burst of spawning from one goroutine would otherwise keep it busy.)
      const bool asked_before = g->preempt.exchange(true, std::memory_order_relaxed);
      if (!asked_before) g_preempt_requests.fetch_add(1, std::memory_order_relaxed);
      // A G that calls into the runtime yields within a tick of being asked; only one that
      // did not (a tight loop, a call blocked in the kernel) needs a stand-in.
      if (!asked_before) continue;
      // Due timers count as work for the stand-in (which runs other Ps' timers). sysmon
      // does not fire them itself: a timer in flight on a thread that is not an M would be
      // invisible to deadlock detection.
      const std::int64_t when = p->timers.timer0_when.load(std::memory_order_relaxed);
      const bool work = !p->runq.empty() || rt->runq_size.load(std::memory_order_relaxed) > 0 ||
                        (when != 0 && when <= now);
      if (!work || p->stand_in.load(std::memory_order_relaxed)) continue;
      if (rt->npidle.load(std::memory_order_relaxed) > 0) {
        wakep(rt);  // an idle P can take the work; make sure an M looks
      } else {
        lend_overflow(rt, p, sq);
        acted = true;
      }
    }
  }
  return acted;
}

// The system monitor: a thread without a P that watches the others (Go's sysmon).
void sysmon_loop(Runtime* rt) {
  san::IgnoreAccesses ignore;  // reads other Ms' fields racily, as Go's sysmon does
  std::vector<SysmonTick> seen;
  std::int64_t delay = kSysmonMinDelayNs;
  int quiet = 0;
  while (!rt->sysmon_stop.load(std::memory_order_acquire)) {
    rt->sysmon_wake.sleep_until(monotonic_ns() + delay);
    if (rt->sysmon_stop.load(std::memory_order_acquire)) break;
    const std::int64_t now = monotonic_ns();
    rt->sysmon_now_ns.store(now, std::memory_order_relaxed);
    bool acted = false;
    // Nobody has polled fds for 10 ms (every M busy): poll, and queue what is ready.
    const std::int64_t last = netpoll::last_poll_ns();
    if (netpoll::waiters() > 0 && last != 0 && now - last > kSysmonPollNs) {
      GQueue q;
      if (netpoll::poll(0, q) > 0) {
        inject_glist(rt, q);
        acted = true;
      }
    }
    if (retake(rt, now, seen)) acted = true;
    // Go's backoff: 20 µs ticks while busy; after 1 ms of quiet, double up to 10 ms.
    if (acted) {
      quiet = 0;
      delay = kSysmonMinDelayNs;
    } else if (++quiet > 50) {
      // While goroutines run, stay within 1 ms, so a stuck P is seen within ~11 ms.
      const bool all_idle = rt->npidle.load(std::memory_order_relaxed) >= rt->gomaxprocs.load(std::memory_order_relaxed);
      delay = std::min(delay * 2, all_idle ? kSysmonMaxDelayNs : 1'000'000);
    }
  }
}

// Runs g, which is locked to another M: hand our P to that M and sleep.
void startlockedm(Runtime* rt, M* m, G* g) {
  M* owner = g->locked_m;
  P* p = releasep(m);
  {
    RuntimeLockGuard l(rt->lock);  // the owner is running again as far as checkdead goes
    --rt->nmidlelocked;
  }
  owner->nextp = p;
  owner->handoff_g = g;
  owner->park.wakeup();
  stopm(rt, m);
}

// Our locked G is not runnable: give the P away and sleep until startlockedm hands one back
// (the note was cleared in reschedule, before the G could be readied).
void stoplockedm(Runtime* rt, M* m) {
  if (P* p = releasep(m)) handoffp(rt, p);
  if (rt->stopping.load(std::memory_order_acquire)) return;
  {
    RuntimeLockGuard l(rt->lock);
    ++rt->nmidlelocked;
    checkdead_locked(rt);
  }
  m->park.sleep();  // startlockedm took us off the idle-locked count before waking us
  if (m->nextp) {
    acquirep(m, m->nextp);
    m->nextp = nullptr;
  }
}

// The scheduler loop, on the thread's own stack (g0).
void schedule_loop(Runtime* rt, M* m) {
  for (;;) {
    if (rt->stopping.load(std::memory_order_acquire)) return;
    G* g = nullptr;
    if (m->lockedg) {
      // This M runs its locked G only, and only when startlockedm hands it over.
      if (m->handoff_g != m->lockedg) {
        stoplockedm(rt, m);
        continue;
      }
      g = m->handoff_g;
      m->handoff_g = nullptr;
    }
    if (!g && m->handoff_g) {
      g = m->handoff_g;
      m->handoff_g = nullptr;
    }
    if (!g) {
      g = findrunnable(rt, m);
      if (!g) return;
      if (m->spinning) reset_spinning(rt, m);
      if (m->p && p_is_retired(rt, m->p)) {
        // Our P retired while we looked (maxprocs shrank, or the P we stood in for moved
        // on): what we found waits for a P still in service, or more than maxprocs would run.
        {
          RuntimeLockGuard l(rt->lock);
          globrunqput_locked(rt, g);
        }
        wakep(rt);
        continue;
      }
    }
    if (g->locked_m && g->locked_m != m) {
      startlockedm(rt, m, g);
      continue;
    }
    set_running(m, g);
    switch_context(m, &m->g0, g);
  }
}

// Timer slack of every M's thread. An M without work sleeps until the earliest timer (a
// futex or epoll timeout), and Linux lets such a sleep end up to the thread's slack late
// (50 µs by default) to batch wake-ups: that was most of a sleeper's lateness whenever the
// Ps ran out of work. sleep_many's median overshoot with 1,000 / 10,000 sleepers: 83 /
// 73 µs with the default, 28 / 27 µs with this.
constexpr unsigned long kMTimerSlackNs = 1000;

void mstart(M* m) {
  san::IgnoreAccesses ignore;  // g0 runs only runtime code
  gort_tls_m = m;
  Runtime* rt = g_rt.load(std::memory_order_acquire);
  setup_altstack(m);
  prctl(PR_SET_TIMERSLACK, kMTimerSlackNs, 0, 0, 0);  // best effort: no harm if refused
  m->tid.store(pid_t(syscall(SYS_gettid)), std::memory_order_release);
  if constexpr (san::tsan) m->g0.tsan_fiber = san::current_fiber();
  if (m->nextp) {
    acquirep(m, m->nextp);
    m->nextp = nullptr;
  }
  schedule_loop(rt, m);
  if (P* p = releasep(m)) {
    (void)p;  // the runtime is stopping: Ps are torn down by run()
  }
  teardown_altstack(m);
  gort_tls_m = nullptr;
  m->exited.wakeup();
}

// ---- configuration ---------------------------------------------------------------------

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return (end && *end == 0 && n > 0 && n < (1 << 30)) ? int(n) : 0;
}

std::size_t env_size(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v, &end, 10);
  std::size_t mult = 1;
  if (end && (*end == 'k' || *end == 'K')) mult = 1024, ++end;
  else if (end && (*end == 'm' || *end == 'M')) mult = 1024 * 1024, ++end;
  if (end && (*end == 'i' || *end == 'B')) ++end;
  if (end && *end == 'B') ++end;
  return (end && *end == 0) ? std::size_t(n) * mult : 0;
}

// The tightest cgroup v2 cpu.max quota on the path from our cgroup to the root, in CPUs
// (rounded up); 0 when unlimited or unknown.
int cgroup_cpu_limit() {
  std::ifstream cg("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(cg, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty()) return 0;
  double best = 0;
  for (;;) {
    std::ifstream f("/sys/fs/cgroup" + path + "/cpu.max");
    std::string quota;
    long period = 0;
    if (f >> quota >> period && quota != "max" && period > 0) {
      double cpus = std::stod(quota) / double(period);
      if (best == 0 || cpus < best) best = cpus;
    }
    if (path.empty() || path == "/") break;
    auto slash = path.find_last_of('/');
    path = slash == 0 || slash == std::string::npos ? "" : path.substr(0, slash);
  }
  return best > 0 ? std::max(1, int(std::ceil(best))) : 0;
}

int default_procs() {
  if (g_default_procs > 0) return g_default_procs;
  if (int n = env_int("GOMAXPROCS")) return std::min(n, kMaxProcs);
  return std::min(gort::num_cpu(), kMaxProcs);
}

// Changes the number of Ps (Go's procresize, without stopping the world: Ps beyond the new
// count retire when their M next schedules). Requires rt->lock.
void procresize_locked(Runtime* rt, int n) {
  const int old_n = rt->nallp.load(std::memory_order_relaxed);
  for (int i = old_n; i < n; ++i) {
    if (rt->allp[i].load(std::memory_order_relaxed)) continue;  // a stand-in's slot
    P* p = new P;
    p->id = i;
    p->status.store(PStatus::dead, std::memory_order_relaxed);
    rt->allp[i].store(p, std::memory_order_release);
  }
  if (n > old_n) rt->nallp.store(n, std::memory_order_release);
  rt->gomaxprocs.store(n, std::memory_order_release);
  // Drop idle Ps that are now beyond n; revive dead ones below n.
  P** link = &rt->pidle;
  while (*link) {
    P* p = *link;
    if (p->id >= n) {
      *link = p->link;
      rt->npidle.fetch_sub(1, std::memory_order_relaxed);
      retire_p_locked(rt, p);
    } else {
      link = &p->link;
    }
  }
  for (int i = 0; i < n; ++i) {
    P* p = rt->allp[i].load(std::memory_order_relaxed);
    if (P* c = p->covers.load(std::memory_order_relaxed)) {  // a stand-in becomes a regular P
      c->stand_in.store(nullptr, std::memory_order_relaxed);
      p->covers.store(nullptr, std::memory_order_relaxed);
      --rt->noverflow;
    }
    if (p->status.load(std::memory_order_relaxed) == PStatus::dead) pidleput_locked(rt, p);
  }
}

}  // namespace

// ---- the internal API ------------------------------------------------------------------

Runtime* runtime() noexcept { return g_rt.load(std::memory_order_acquire); }

std::int64_t count_goroutines(Runtime* rt) noexcept {
  std::int64_t n = rt->ngoroutines.load(std::memory_order_relaxed);
  const std::int32_t np = rt->nallp.load(std::memory_order_acquire);
  for (std::int32_t i = 0; i < np; ++i) {
    n += rt->allp[i].load(std::memory_order_acquire)->ngoroutines_delta.load(std::memory_order_relaxed);
  }
  return std::max<std::int64_t>(n, 1);  // as Go's gcount: a sum taken mid-change may dip
}

namespace {
struct SystemStackCall {
  void (*fn)(void*) noexcept;
  void* arg;
  G* g;
};

// Entered on g0's stack by gort_call_on_stack; the sanitizers are told of both switches.
void system_stack_entry(void* p) noexcept {
  auto* c = static_cast<SystemStackCall*>(p);
  if constexpr (san::asan) {
    const void* bottom;
    std::size_t size;
    san::finish_switch(nullptr, &bottom, &size);
  }
  san::acquire(c);
  c->fn(c->arg);
  san::release(c);
  if constexpr (san::tsan) san::switch_fiber(c->g->tsan_fiber);
  if constexpr (san::asan) san::start_switch(nullptr, c->g->stack.lo, c->g->stack.size());
}
}  // namespace

void on_system_stack(void (*fn)(void*) noexcept, void* arg) noexcept {
  M* m;
  G* g;
  std::uintptr_t top = 0;
  {
    san::IgnoreAccesses ignore;  // the M's fields belong to its g0 (TSan: another fiber)
    m = this_m();
    g = m ? m->curg : nullptr;
    if (g && !m->on_system_stack) {
      m->on_system_stack = true;
      // g0 is switched out at ctx.sp; below it (past the red zone) the thread stack is free.
      top = (std::uintptr_t(m->g0.ctx.sp) - 512) & ~std::uintptr_t(15);
    }
  }
  if (!top) {  // already on a system stack (g0, a plain thread, or a nested call)
    fn(arg);
    return;
  }
  SystemStackCall call{fn, arg, g};
  void* fake_stack = nullptr;
  if constexpr (san::asan) {
    const auto* bottom = static_cast<const char*>(m->g0_stack_bottom);
    san::start_switch(&fake_stack, bottom, std::size_t(reinterpret_cast<const char*>(top) - bottom));
  }
  san::release(&call);
  if constexpr (san::tsan) san::switch_fiber(m->g0.tsan_fiber);
  gort_call_on_stack(reinterpret_cast<void*>(top), &system_stack_entry, &call);
  if constexpr (san::asan) {
    const void* bottom;
    std::size_t size;
    san::finish_switch(fake_stack, &bottom, &size);
  }
  san::acquire(&call);
  san::IgnoreAccesses ignore;
  m->on_system_stack = false;
}

void park(WaitReason reason, bool (*commit)(G*, void*), void* arg) {
  M* m = this_m();
  G* g = m->curg;
  g->wait_reason = reason;
  g->wait_since_ns = g_rt.load(std::memory_order_relaxed)->sysmon_now_ns.load(std::memory_order_relaxed);
  if (m->p) owner_bump(m->p->n_parks);
  reschedule(m, g, AfterSwitch::park, commit, arg);
  g->wait_reason = WaitReason::none;
}

std::atomic<std::int32_t> g_preempt_requests{0};

void preempt_check_slow() noexcept {
  M* m = this_m();
  G* g = m ? m->curg : nullptr;
  if (!g || !g->preempt.load(std::memory_order_relaxed)) return;
  if (m->no_preempt) return;  // the request stands: honoured at the next safe point
  if (!g->preempt.exchange(false, std::memory_order_relaxed)) return;  // set_running took it
  g_preempt_requests.fetch_sub(1, std::memory_order_relaxed);
  if (g->locked_m || !m->p) return;  // a locked G keeps its thread; a P-less one is in blocking()
  g_rt.load(std::memory_order_relaxed)->n_preemptions.fetch_add(1, std::memory_order_relaxed);
  reschedule(m, g, AfterSwitch::to_global);
}

void run_due_timers(M* m, P* p, std::int64_t now) noexcept {
  // Timer functions run here on whatever goroutine resumed (or g0), some holding locks (an
  // after_func spawns under its timer's lock): a preemption request must wait, or the
  // lock's holder would sit in a run queue while its waiters block their threads.
  ++m->no_preempt;
  m->firing_timers = true;
  if (now == 0) now = monotonic_ns();
  time_impl::run_due(p->timers, now);
  m->firing_timers = false;
  --m->no_preempt;
}

void timer_added(Runtime* rt, std::int64_t when) noexcept {
  // Fast path, without the lock (Go's wakeNetPoller reads sched.pollUntil the same way): an
  // M sleeps until no later than `when`, and looks at every heap once up. The fence orders
  // our push onto the heap before the read (see sleep_until_timer).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::int64_t until = rt->timer_sleep_until.load(std::memory_order_relaxed);
  if (until != 0 && when >= until) return;
  if (until == 0) {
    // No M sleeps for timers, so there is nothing to lower under the lock: an M about to
    // sleep publishes `until` before its final look, and its fence pairs with ours.
    wakep(rt);
    return;
  }
  {
    RuntimeLockGuard l(rt->timer_lock);
    if (rt->timer_sleeper) {
      if (when < rt->timer_sleep_until.load(std::memory_order_relaxed)) {
        rt->timer_sleep_until.store(when, std::memory_order_relaxed);
        if (rt->timer_sleeper_polls) {
          netpoll::break_poll();
        } else {
          rt->timer_sleeper->park.wakeup();
        }
      }
      return;
    }
  }
  // Nobody waits for timers: an idle P's M will, once woken (or the M adding this timer
  // does when it next goes idle).
  wakep(rt);
}

void foreign_block_begin() noexcept { g_foreign_blocked.fetch_add(1, std::memory_order_acq_rel); }

void foreign_block_check() noexcept {
  // A plain thread that blocks may be the last thing that could have woken a goroutine:
  // nobody else would look again, every M being asleep already.
  std::shared_lock<std::shared_mutex> l(g_foreign_mu);
  Runtime* rt = g_rt.load(std::memory_order_acquire);
  if (!rt) return;
  rt->lock.lock();
  checkdead_locked(rt);
  rt->lock.unlock();
}
void foreign_block_woken() noexcept { g_foreign_blocked.fetch_sub(1, std::memory_order_acq_rel); }

void ready(G* g) noexcept {
  san::IgnoreAccesses ignore;
  Runtime* rt = g_rt.load(std::memory_order_relaxed);
  san::release(g);  // whatever the waker did happens before g resumes
  g->status.store(GStatus::runnable, std::memory_order_release);
  if (trace::enabled()) trace::go_unpark(g);
  M* m = this_m();
  if (m && m->p) {
    // runnext, so the woken one runs next (as Go's ready). What a timer displaces from
    // runnext waits in a soon slot, not behind the whole queue: due timers fire in batches.
    put_runnable_local(rt, m->p, g, true, m->firing_timers);
  } else {
    RuntimeLockGuard l(rt->lock);
    globrunqput_locked(rt, g);
  }
  wakep(rt);
}

}  // namespace gort::sched

// ---- the public API --------------------------------------------------------------------

namespace gort {
namespace detail {

using namespace gort::sched;

void* spawn_begin(const Spawn& opts, const TaskOps* ops, void** storage, void* caller_pc) {
  preempt_check();
  san::IgnoreAccesses ignore;
  M* m = this_m();
  Runtime* rt;
  G* g;
  G* parent = m ? m->curg : nullptr;
  if (parent) {
    rt = g_rt.load(std::memory_order_relaxed);
    g = gfget(rt, m->p);
  } else {
    g_foreign_mu.lock_shared();  // released in spawn_commit / spawn_abort
    rt = g_rt.load(std::memory_order_acquire);
    if (!rt || rt->stopping.load(std::memory_order_acquire)) {
      g_foreign_mu.unlock_shared();
      throw std::logic_error("gort::go: no runtime is active; start one with gort::run(main) first");
    }
    g = gfget(rt, nullptr);
  }
  if (P* p = parent ? m->p : nullptr) {
    if (p->goid_next == p->goid_end) {
      p->goid_next = rt->goid_gen.fetch_add(kGoidBatch, std::memory_order_relaxed) + 1;
      p->goid_end = p->goid_next + kGoidBatch;
    }
    g->id = p->goid_next++;
  } else {
    g->id = rt->goid_gen.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  g->parent_id = parent ? parent->id : 0;
  g->created_pc = caller_pc;
  g->task_ops = ops;
  g->odd_stack_size = (opts.stack_size && opts.stack_size != rt->stacks.default_size()) ? opts.stack_size : 0;
  g->name.assign(opts.name.data(), opts.name.size());
  g->wait_reason = WaitReason::none;
  g->locked_m = nullptr;
  g->lock_count = 0;
  consume_preempt(g);  // asked of its last goroutine, which ended first
  g->started = false;
  *storage = g->task;
  return g;
}

void spawn_commit(void* gp) noexcept {
  san::IgnoreAccesses ignore;
  G* g = static_cast<G*>(gp);
  M* m = this_m();
  Runtime* rt = g_rt.load(std::memory_order_relaxed);
  const bool in_goroutine = m && m->curg;
  if (in_goroutine && m->p) {
    owner_bump(m->p->ngoroutines_delta, 1);
  } else {
    rt->ngoroutines.fetch_add(1, std::memory_order_relaxed);
  }
  san::release(g);  // the go statement happens before the goroutine starts
  g->status.store(GStatus::runnable, std::memory_order_release);
  if (trace::enabled()) trace::go_create(g);
  bool overflowed = false;
  if (in_goroutine && m->p) {
    // Go's newproc: the new G goes to runnext, so it runs soon on a cache-warm P.
    owner_bump(m->p->n_spawns);
    overflowed = !put_runnable_local(rt, m->p, g, true);
  } else {
    RuntimeLockGuard l(rt->lock);
    globrunqput_locked(rt, g);
  }
  wakep(rt);
  if (!in_goroutine) {
    g_foreign_mu.unlock_shared();
    return;
  }
  // Spawn pressure: this goroutine has filled its P's ring with goroutines it started (half
  // of them just went to the global queue). It yields behind them, to the global queue, as
  // if preempted, so they run — and free their Gs and stacks for the next spawns, still in
  // cache — before it starts more. Go lets the spawner run on until its 10 ms time slice
  // ends: a loop of `go` then queues ~80,000 goroutines at maxprocs 1, each a fresh G.
  if (overflowed && m->no_preempt == 0 && !m->curg->locked_m) {
    rt->n_spawn_yields.fetch_add(1, std::memory_order_relaxed);
    reschedule(m, m->curg, AfterSwitch::to_global);
  }
}

void spawn_abort(void* gp) noexcept {
  san::IgnoreAccesses ignore;
  G* g = static_cast<G*>(gp);
  M* m = this_m();
  Runtime* rt = g_rt.load(std::memory_order_relaxed);
  bool foreign = !(m && m->curg);
  gfput(rt, foreign ? nullptr : m->p, g);  // m->p is nullptr inside blocking(): global list
  if (foreign) g_foreign_mu.unlock_shared();
}

namespace {
struct MainTask {
  void (*body)(void*);
  void* arg;
  void operator()() const {
    body(arg);
    debug_impl::on_main_return();  // stops debug::serve's servers while goroutines still run
  }
};

void teardown(Runtime* rt) {
  // Gs that never ran still own their callable: destroy it. Gs parked mid-call keep their
  // frames: as in Go, they are never resumed, and their stacks are unmapped below.
  for (G* g : rt->allgs) {
    san::acquire(g);
    GStatus s = g->status.load(std::memory_order_relaxed);
    if (s == GStatus::runnable && !g->started && g->task_ops) g->task_ops->destroy(g->task);
    if (g->stack && !g->stack.pooled) rt->stacks.free_odd(g->stack);
    if constexpr (san::tsan) {
      if (g->tsan_fiber) san::destroy_fiber(g->tsan_fiber);
    }
  }
  // Timers still pending (an `after` nobody waited for) drop their references.
  for (int i = 0; i < rt->nallp.load(); ++i) time_impl::discard_all(rt->allp[i].load()->timers);
  for (const Runtime::GSlab& slab : rt->gslabs) delete_g_slab(slab);
  for (int i = 0; i < rt->nallp.load(); ++i) delete rt->allp[i].load();
  for (M* m : rt->allm) delete m;
  delete rt;
}
}  // namespace

// The default stack reservation: 60 KiB, so that a stack and its 4 KiB guard page fill a
// 64 KiB slot. That holds ordinary C++ (the runtime runs its own stack-hungry library
// calls, libdw and NSS, on thread stacks) and keeps stacks dense: each 2 MiB of
// reservations costs a page-table page, and a cold stack's first touch walks it. On the
// virtual machines we measure on, slots over 64 KiB make every cold stack read ~11 us
// rather than ~0.5 us: a level-1 dump of 100k parked goroutines took 1.0-1.3 s with
// 64 KiB stacks (68 KiB slots) and 50-60 ms with 60 KiB ones. ASan's redzones and TSan's
// instrumentation make frames larger.
constexpr std::size_t kDefaultStackSize = (san::asan ? 4 : san::tsan ? 2 : 1) * 60 * 1024;

int run_main(void (*body)(void*), void* arg, std::size_t cfg_stack_size, int cfg_maxprocs) {
  san::IgnoreAccesses ignore;
  if (this_m()) throw std::logic_error("gort::run: called from inside a goroutine (run does not nest)");
  std::unique_lock<std::mutex> run_lock(g_run_mu, std::try_to_lock);
  if (!run_lock.owns_lock()) throw std::logic_error("gort::run: another run() is active (runs do not overlap)");

  std::size_t stack_size = cfg_stack_size ? cfg_stack_size : env_size("GORT_STACK_SIZE");
  if (!stack_size) stack_size = kDefaultStackSize;
  int procs = cfg_maxprocs > 0 ? std::min(cfg_maxprocs, kMaxProcs) : default_procs();

  init_heavy_barrier();  // before goroutines run: unlocks of DekkerLocks skip their fence from the start
  auto* rt = new Runtime(stack_size);
  rt->start_ns = monotonic_ns();
  rt->sysmon_now_ns.store(rt->start_ns, std::memory_order_relaxed);
  rt->ncpu = gort::num_cpu();
  debug_impl::on_run_start(rt);  // GORT_TRACE, GORT_DEBUG=schedtrace: before threads are counted
  // ThreadSanitizer starts a helper thread at the first pthread_create: start it now, so
  // it is counted among the threads that existed before run() (which never wake anyone).
  if constexpr (san::tsan) std::thread([] {}).join();
  // sysmon never wakes a goroutine by itself (it only passes on what timers and fds do):
  // count it among the threads from before run().
  rt->sysmon = std::thread(sysmon_loop, rt);
  for_each_thread([rt](std::int32_t tid) { rt->threads_at_start.push_back(tid); });
  std::sort(rt->threads_at_start.begin(), rt->threads_at_start.end());
  {
    RuntimeLockGuard l(rt->lock);
    procresize_locked(rt, procs);
  }
  install_signal_handlers();
  install_panic_handler();

  // Goroutine 1 is an ordinary G on the global queue.
  G* main_g = gfget(rt, nullptr);
  main_g->id = rt->goid_gen.fetch_add(1) + 1;
  main_g->task_ops = &InlineTask<MainTask>::ops;
  main_g->created_pc = nullptr;
  ::new (main_g->task) MainTask{body, arg};
  main_g->status.store(GStatus::runnable, std::memory_order_relaxed);
  rt->ngoroutines.store(1, std::memory_order_relaxed);
  g_preempt_requests.store(0, std::memory_order_relaxed);  // requests a previous run left
  {
    RuntimeLockGuard l(rt->lock);
    globrunqput_locked(rt, main_g);
  }
  {
    std::unique_lock<std::shared_mutex> l(g_foreign_mu);
    g_rt.store(rt, std::memory_order_release);
  }
  startm(rt, nullptr, false);

  rt->main_done.sleep();
  san::acquire(&rt->main_done);
  rt->sysmon_stop.store(true, std::memory_order_release);
  rt->sysmon_wake.wakeup();
  rt->sysmon.join();
  netpoll::break_poll();  // an M blocked in the poller sees `stopping`

  // main returned (stopping is set): wait out foreign spawns in flight; later ones throw.
  { std::unique_lock<std::shared_mutex> l(g_foreign_mu); }
  std::vector<M*> ms;
  // An M still running a goroutine (a loop that never reaches the scheduler, or a call
  // blocked in the kernel) cannot be stopped; after a grace period it is abandoned with
  // the runtime's memory, which then stays valid for it forever.
  bool abandoned = false;
  const std::int64_t grace_end = monotonic_ns() + 1'000'000'000;
  for (std::size_t done = 0;;) {
    {
      RuntimeLockGuard l(rt->lock);  // startm makes no Ms once stopping is set
      ms = rt->allm;
    }
    if (done == ms.size()) break;
    for (std::size_t i = done; i < ms.size(); ++i) ms[i]->park.wakeup();
    for (; done < ms.size(); ++done) {
      M* m = ms[done];
      // An M blocked in the poller may have had its break consumed by another poll: keep
      // breaking until it leaves.
      bool exited = false;
      for (std::int64_t now = monotonic_ns(); !exited && now < grace_end; now = monotonic_ns()) {
        netpoll::break_poll();
        exited = m->exited.sleep_until(std::min(grace_end, now + 10'000'000));
      }
      if (!exited) {
        abandoned = true;
        m->thread.detach();
      } else if (m->thread.joinable()) {
        m->thread.join();
      }
    }
  }
  debug_impl::on_run_end(rt, abandoned);
  restore_panic_handler();
  restore_signal_handlers();
  {
    std::unique_lock<std::shared_mutex> l(g_foreign_mu);
    g_rt.store(nullptr, std::memory_order_release);
  }
  if (!abandoned) teardown(rt);
  return 0;
}

void enter_blocking() {
  san::IgnoreAccesses ignore;
  M* m = this_m();
  if (!m || !m->curg || !m->p) return;  // a plain thread, or already without a P
  Runtime* rt = g_rt.load(std::memory_order_relaxed);
  G* g = m->curg;
  g->status.store(GStatus::syscall, std::memory_order_relaxed);
  g->wait_reason = WaitReason::syscall;
  g->wait_since_ns = rt->sysmon_now_ns.load(std::memory_order_relaxed);
  if (trace::enabled()) trace::syscall_enter(g);
  // Keep the P in syscall state (Go's entersyscall): a short call takes it back with one
  // CAS; sysmon hands it to another M if the call outlasts a tick while work waits.
  P* p = releasep(m);
  m->oldp = p;
  p->syscall_seq.store(p->syscall_seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  p->status.store(PStatus::syscall, std::memory_order_release);
  if (p_is_retired(rt, p) || rt->stopping.load(std::memory_order_relaxed)) {
    // Nothing to keep it for: hand it off now.
    PStatus s = PStatus::syscall;
    if (p->status.compare_exchange_strong(s, PStatus::idle, std::memory_order_acq_rel)) handoffp(rt, p);
  }
}

void exit_blocking() {
  san::IgnoreAccesses ignore;
  M* m = this_m();
  if (!m || !m->curg) return;
  Runtime* rt = g_rt.load(std::memory_order_relaxed);
  G* g = m->curg;
  g->wait_reason = WaitReason::none;
  if (trace::enabled()) trace::syscall_exit(g);
  P* oldp = m->oldp;
  m->oldp = nullptr;
  if (m->p) {  // f() parked meanwhile and we came back on an M that has a P
    g->status.store(GStatus::running, std::memory_order_relaxed);
    return;
  }
  PStatus s = PStatus::syscall;
  if (oldp && oldp->status.compare_exchange_strong(s, PStatus::running, std::memory_order_acq_rel)) {
    acquirep(m, oldp);  // the fast path: nobody took it
    g->status.store(GStatus::running, std::memory_order_relaxed);
    return;
  }
  {
    RuntimeLockGuard l(rt->lock);
    if (!rt->stopping.load(std::memory_order_relaxed)) {
      if (P* p = pidleget_locked(rt)) {
        acquirep(m, p);
        g->status.store(GStatus::running, std::memory_order_relaxed);
        return;
      }
    }
  }
  // No P free: queue ourselves globally and let this M sleep until it is needed.
  reschedule(m, g, AfterSwitch::to_global);
}

}  // namespace detail

void yield() {
  using namespace sched;
  M* m = this_m();
  if (!m || !m->curg) {
    sched_yield();
    return;
  }
  G* g = m->curg;
  Runtime* rt = g_rt.load(std::memory_order_relaxed);
  if (m->p) check_timers(m, m->p);
  if (m->p && m->p->runq.owner_empty() && rt->runq_size.load(std::memory_order_relaxed) == 0 && !m->lockedg &&
      !p_is_retired(rt, m->p))
    return;  // nothing else to run here
  reschedule(m, g, AfterSwitch::requeue);
}

int maxprocs(int n) {
  using namespace sched;
  Runtime* rt = runtime();
  if (!rt) {
    int old = default_procs();
    if (n > 0) g_default_procs = std::min(n, kMaxProcs);
    return old;
  }
  int old = rt->gomaxprocs.load(std::memory_order_relaxed);
  if (n <= 0 || n == old) return old;
  n = std::min(n, kMaxProcs);
  {
    san::IgnoreAccesses ignore;
    RuntimeLockGuard l(rt->lock);
    procresize_locked(rt, n);
  }
  // New Ps are idle: start Ms for them if there is work.
  for (int i = old; i < n; ++i) wakep(rt);
  // A retired P is given up at its M's next schedule; make ours go now if it is one.
  yield();
  return old;
}

int num_cpu() {
  cpu_set_t set;
  int n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = int(sysconf(_SC_NPROCESSORS_ONLN));
  if (int limit = sched::cgroup_cpu_limit(); limit > 0) n = std::min(n, limit);
  return std::max(1, n);
}

std::int64_t num_goroutine() {
  sched::Runtime* rt = sched::runtime();
  return rt ? sched::count_goroutines(rt) : 0;
}

std::int64_t goroutine_id() {
  sched::G* g = sched::current_g();
  return g ? g->id : 0;
}

void lock_os_thread() {
  sched::M* m = sched::this_m();
  if (!m || !m->curg) return;
  sched::G* g = m->curg;
  if (g->lock_count++ == 0) {
    g->locked_m = m;
    m->lockedg = g;
  }
}

void unlock_os_thread() {
  sched::M* m = sched::this_m();
  if (!m || !m->curg) return;
  sched::G* g = m->curg;
  if (g->lock_count == 0) return;  // as in Go: unlocking an unlocked thread is a no-op
  if (--g->lock_count == 0) {
    g->locked_m = nullptr;
    m->lockedg = nullptr;
  }
}

}  // namespace gort
