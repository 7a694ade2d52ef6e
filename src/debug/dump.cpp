// debug/dump — goroutine dumps in Go's format.
//
// Parked goroutines are walked from their saved frame pointer (the runtime keeps frame
// pointers; gort::gort asks user code for them too), every step checked against the
// goroutine's stack bounds, so a broken chain ends the walk instead of faulting; where
// that walk cannot be exact (code built without frame pointers), libdw unwinds with the
// CFI tables instead (debug/symbolize.hpp). The
// running goroutine of the caller is walked with the unwinder. Goroutines running on other
// threads are sampled: their Ms walk their own frames when signalled (debug/sample.hpp);
// one that does not answer in time is shown as Go shows it, "stack unavailable".
#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <ostream>
#include <span>
#include <sstream>
#include <unordered_map>

#include <gort/debug.hpp>

#include "debug/dump.hpp"
#include "debug/sample.hpp"
#include "debug/symbolize.hpp"
#include "netpoll/netpoll.hpp"
#include "time/heap.hpp"

namespace gort::debug_impl {

using namespace gort::sched;

namespace {

std::string wait_duration(const G* g) {
  if (!g->wait_since_ns) return "";
  std::int64_t minutes = (coarse_monotonic_ns() - g->wait_since_ns) / 60'000'000'000;
  if (minutes < 1) return "";
  return ", " + std::to_string(minutes) + (minutes == 1 ? " minute" : " minutes");
}

}  // namespace

namespace {

std::string describe_pc_uncached(void* pc, bool is_return_address) {
  // On the M's thread stack: libdw's first look at a module's line table alone needs more
  // than 64 KiB, and a panicking goroutine may have a small stack, mostly used.
  struct Call {
    void* pc;
    bool is_return_address;
    Symbol sym;
  } call{pc, is_return_address, {}};
  sched::on_system_stack(
      [](void* p) noexcept {
        auto* c = static_cast<Call*>(p);
        try {
          c->sym = symbolize(c->pc, c->is_return_address);
        } catch (...) {
          c->sym = {};  // out of memory: the frame prints as "?"
        }
      },
      &call);
  const Symbol& sym = call.sym;
  std::ostringstream os;
  os << (sym.function.empty() ? "?" : sym.function);
  if (sym.function.find('(') == std::string::npos) os << "(...)";
  os << "\n\t";
  if (!sym.file.empty()) {
    os << sym.file << ":" << sym.line;
  } else {
    os << (sym.module.empty() ? "?" : sym.module);
  }
  os << " +0x" << std::hex << sym.offset;
  return os.str();
}

// Code does not move while the process lives (gort never dlcloses), so a pc's description
// is computed once: a dump of 100k goroutines parked at a few places symbolizes a few
// dozen pcs, not millions (libdw's lookups cost tens of microseconds each). Bounded, in
// case pcs keep coming (JIT code, many modules). The lock is not held while symbolizing.
constexpr std::size_t kDescribeCacheMax = 1 << 16;
std::mutex g_describe_mu;
std::unordered_map<std::uintptr_t, std::string> g_describe_cache;  // key: pc | is_return_address

}  // namespace

std::string describe_pc(void* pc, bool is_return_address) {
  // The top bit marks a return address (user-space pcs never have it set).
  const std::uintptr_t key = reinterpret_cast<std::uintptr_t>(pc) ^ (is_return_address ? std::uintptr_t(1) << 63 : 0);
  {
    std::lock_guard l(g_describe_mu);
    if (auto it = g_describe_cache.find(key); it != g_describe_cache.end()) return it->second;
  }
  std::string d = describe_pc_uncached(pc, is_return_address);
  std::lock_guard l(g_describe_mu);
  if (g_describe_cache.size() >= kDescribeCacheMax) g_describe_cache.clear();
  g_describe_cache.emplace(key, d);
  return d;
}

bool is_scheduler_frame(const std::string& d) {
  for (const char* prefix : {"gort::sched::", "gort_ctx_", "gort::detail::InlineTask", "gort::detail::BoxedTask",
                             "gort::detail::spawn", "gort::debug::write_goroutines"}) {
    if (d.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

namespace {

// The goroutine may start running on another thread while we walk: its stack then changes
// under us (ASan would report reads of redzones that a new frame poisoned). The walk only
// trusts what the bounds checks allow, so it is exempt from ASan.
__attribute__((no_sanitize_address)) int frame_pointer_walk(const G* g, const StackMemory& stack, void** out,
                                                            int max) {
  int n = 0;
  out[n++] = reinterpret_cast<void*>(g->ctx.pc);
  std::uintptr_t fp = g->ctx.fp;
  while (n < max && stack.holds(fp, 16) && fp % sizeof(void*) == 0) {
    auto* frame = reinterpret_cast<std::uintptr_t*>(fp);
    std::uintptr_t ret = frame[1];
    std::uintptr_t next = frame[0];
    if (ret == 0) break;
    out[n++] = reinterpret_cast<void*>(ret);
    if (next <= fp) break;
    fp = next;
  }
  return n;
}

}  // namespace

bool returns_to_trampoline(void* pc) {
  const auto at = reinterpret_cast<std::uintptr_t>(pc), tramp = reinterpret_cast<std::uintptr_t>(&gort_ctx_trampoline);
  return at > tramp && at <= tramp + 16;
}

// Frame pointers first: a few loads per frame, where the CFI unwinder costs microseconds.
// The walk is kept when it reached the goroutine's first frame through functions that all
// keep frame pointers; otherwise (code built without them skipped or broke the chain) the
// CFI tables unwind the goroutine instead.
int parked_frames(const G* g, void** out, int max) {
  // The bounds in one load (g->stack may be rebound on another thread meanwhile): whatever
  // stack they name is mapped for the whole dump (stack.hpp, begin_foreign_reads).
  const stack::Extent extent = stack::unpack_extent(g->stack_extent.load(std::memory_order_acquire));
  if (!g->started || extent.lo == 0 || max <= 0) return 0;
  const StackMemory stack{extent.lo, extent.hi};
  const int n = frame_pointer_walk(g, stack, out, max);
  if (returns_to_trampoline(out[n - 1]) && frame_pointer_walk_exact(out, n - 1)) return n;
  void* cfi[kMaxDumpFrames];
  const int m = unwind_with_cfi(registers_of(g->ctx), stack, cfi, std::min(max, kMaxDumpFrames));
  if (m <= 1) return n;  // no CFI unwinder here
  std::copy_n(cfi, m, out);
  return m;
}

std::string goroutine_header(const G* g, bool running_here) {
  std::ostringstream os;
  os << "goroutine " << g->id << " [";
  GStatus s = g->status.load(std::memory_order_acquire);
  if (running_here || s == GStatus::running) {
    os << "running";
  } else if (s == GStatus::waiting || s == GStatus::syscall) {
    os << wait_reason_string(s == GStatus::syscall ? WaitReason::syscall : g->wait_reason) << wait_duration(g);
  } else {
    os << status_string(s);
  }
  os << "]";
  if (!g->name.empty()) os << " \"" << g->name << "\"";
  return os.str();
}

namespace {

void write_created_by(std::ostream& os, const G* g) {
  if (!g->created_pc) return;
  std::string site = describe_pc(g->created_pc, true);
  os << "created by " << site.substr(0, site.find('\n'));
  if (g->parent_id) os << " in goroutine " << g->parent_id;
  os << site.substr(site.find('\n')) << "\n";
}

}  // namespace

std::vector<const G*> live_goroutines(Runtime* rt) {
  std::vector<const G*> out;
  RuntimeLockGuard l(rt->allg_lock);
  for (const G* g : rt->allgs) {
    GStatus s = g->status.load(std::memory_order_acquire);
    if (s != GStatus::idle && s != GStatus::dead) out.push_back(g);
  }
  std::sort(out.begin(), out.end(), [](const G* a, const G* b) { return a->id < b->id; });
  return out;
}

namespace {

void write_frames(std::ostream& os, void* const* pcs, int n) {
  for (int i = 0; i < n; ++i) {
    std::string d = describe_pc(pcs[i], i > 0);
    if (!is_scheduler_frame(d)) os << d << "\n";
  }
}

}  // namespace

void write_goroutine(std::ostream& os, const G* g, const Samples& running) {
  GStatus s = g->status.load(std::memory_order_acquire);
  if (s == GStatus::idle || s == GStatus::dead) return;  // exited since it was listed
  if (auto it = running.find(g); it != running.end()) {
    // Sampled while it ran: shown running, although it may have parked since.
    os << goroutine_header(g, true) << ":\n";
    write_frames(os, it->second.data(), int(it->second.size()));
  } else {
    os << goroutine_header(g, false) << ":\n";
    if (s == GStatus::waiting || (s == GStatus::runnable && g->started)) {
      void* pcs[kMaxDumpFrames];
      write_frames(os, pcs, parked_frames(g, pcs, kMaxDumpFrames));
    } else if (s == GStatus::running) {
      os << "\tgoroutine running on other thread; stack unavailable\n";
    }
  }
  write_created_by(os, g);
  os << "\n";
}

void dump_all_to_fd(int fd, const G* skip) {
  san::IgnoreAccesses ignore;
  Runtime* rt = runtime();
  if (!rt) return;
  // Every caller exits after the dump: odd-size stacks stay mapped until then.
  rt->stacks.begin_foreign_reads();
  const Samples running = sample_running(rt);
  std::ostringstream os;
  for (const G* g : live_goroutines(rt)) {
    if (g == skip) continue;
    write_goroutine(os, g, running);
  }
  std::string s = os.str();
  ssize_t unused = write(fd, s.data(), s.size());
  (void)unused;
}

}  // namespace gort::debug_impl

namespace gort::sched {

const char* wait_reason_string(WaitReason r) noexcept {
  switch (r) {
    case WaitReason::none: return "runnable";
    case WaitReason::chan_receive: return "chan receive";
    case WaitReason::chan_send: return "chan send";
    case WaitReason::select: return "select";
    case WaitReason::select_no_cases: return "select (no cases)";
    case WaitReason::chan_receive_nil: return "chan receive (nil chan)";
    case WaitReason::chan_send_nil: return "chan send (nil chan)";
    case WaitReason::sleep: return "sleep";
    case WaitReason::io_wait: return "IO wait";
    case WaitReason::mutex_lock: return "sync.Mutex.Lock";
    case WaitReason::rwmutex_rlock: return "sync.RWMutex.RLock";
    case WaitReason::rwmutex_lock: return "sync.RWMutex.Lock";
    case WaitReason::waitgroup_wait: return "sync.WaitGroup.Wait";
    case WaitReason::cond_wait: return "sync.Cond.Wait";
    case WaitReason::once_call: return "sync.Once.Do";
    case WaitReason::semacquire: return "semacquire";
    case WaitReason::sync_semaphore: return "semaphore.Acquire";
    case WaitReason::syscall: return "syscall";
    case WaitReason::timer_goroutine_idle: return "timer goroutine (idle)";
    case WaitReason::forever: return "wait forever";
  }
  return "?";
}

const char* status_string(GStatus s) noexcept {
  switch (s) {
    case GStatus::idle: return "idle";
    case GStatus::runnable: return "runnable";
    case GStatus::running: return "running";
    case GStatus::waiting: return "waiting";
    case GStatus::syscall: return "syscall";
    case GStatus::dead: return "dead";
  }
  return "?";
}

}  // namespace gort::sched

namespace gort::debug {

using namespace gort::sched;

Stats stats() {
  san::IgnoreAccesses ignore;
  Stats s;
  Runtime* rt = runtime();
  if (!rt) return s;
  s.goroutines = count_goroutines(rt);
  s.procs = rt->gomaxprocs.load(std::memory_order_relaxed);
  s.idle_procs = rt->npidle.load(std::memory_order_relaxed);
  s.spinning_threads = rt->nmspinning.load(std::memory_order_relaxed);
  {
    RuntimeLockGuard l(rt->lock);
    s.threads = std::int64_t(rt->allm.size());
  }
  for (int i = 0, n = rt->nallp.load(std::memory_order_acquire); i < n; ++i) {
    P* p = rt->allp[i].load(std::memory_order_acquire);
    s.spawns += p->n_spawns.load(std::memory_order_relaxed);
    s.context_switches += p->n_switches.load(std::memory_order_relaxed);
    s.parks += p->n_parks.load(std::memory_order_relaxed);
    s.steals += p->n_steals.load(std::memory_order_relaxed);
    s.stolen_goroutines += p->n_stolen_gs.load(std::memory_order_relaxed);
    RuntimeLockGuard tl(p->timers.lock);
    s.timers += p->timers.items.size();
  }
  if (netpoll::initialized()) s.netpoll_waits = netpoll::total_waits();  // never creates the poller
  s.thread_parks = rt->n_thread_parks.load(std::memory_order_relaxed);
  s.syscall_handoffs = rt->n_handoffs.load(std::memory_order_relaxed);
  s.preemptions = rt->n_preemptions.load(std::memory_order_relaxed);
  s.spawn_yields = rt->n_spawn_yields.load(std::memory_order_relaxed);
  {
    RuntimeLockGuard l(rt->allg_lock);
    s.descriptors = rt->allgs.size();
  }
  const stack::StackAllocator::Counts stacks = rt->stacks.counts();
  s.stacks_pooled = stacks.pooled;
  s.stacks_released = stacks.released;
  s.stack_release_calls = stacks.release_calls;
  return s;
}

void write_goroutines(std::ostream& os, int level) {
  san::IgnoreAccesses ignore;  // reads other goroutines' descriptors while they run
  Runtime* rt = runtime();
  if (!rt) return;
  G* self = current_g();
  // Odd-size stacks of goroutines that exit meanwhile stay mapped until we are done.
  struct ForeignReads {
    stack::StackAllocator& a;
    explicit ForeignReads(stack::StackAllocator& s) : a(s) { a.begin_foreign_reads(); }
    ~ForeignReads() { a.end_foreign_reads(); }
  } reads(rt->stacks);
  const debug_impl::Samples running = debug_impl::sample_running(rt);
  std::vector<const G*> gs = debug_impl::live_goroutines(rt);
  if (level >= 2) {
    for (const G* g : gs) {
      if (g == self) {
        os << debug_impl::goroutine_header(g, true) << ":\n";
        void* pcs[64];
        int n = backtrace(pcs, 64);
        for (int i = 1; i < n; ++i) {
          std::string d = debug_impl::describe_pc(pcs[i], true);
          if (!debug_impl::is_scheduler_frame(d)) os << d << "\n";
        }
        debug_impl::write_created_by(os, g);
        os << "\n";
      } else {
        debug_impl::write_goroutine(os, g, running);
      }
    }
    return;
  }
  // Level 1: group by stack, as pprof's debug=1. Looked up by span, so only a new group
  // allocates its key.
  struct PcsLess {
    using is_transparent = void;
    bool operator()(std::span<void* const> a, std::span<void* const> b) const noexcept {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
    }
  };
  std::map<std::vector<void*>, int, PcsLess> groups;
  void* key[debug_impl::kMaxDumpFrames + 1];
  for (std::size_t i = 0; i < gs.size(); ++i) {
    // Each walk starts with a cache and TLB miss on a stack nobody touched lately: start
    // the next ones' early (the G 32 ahead, the top frame of the one 16 ahead), so 100k
    // goroutines cost overlapping misses rather than one after another.
    if (i + 32 < gs.size()) __builtin_prefetch(&gs[i + 32]->ctx);
    if (i + 16 < gs.size()) __builtin_prefetch(reinterpret_cast<const void*>(gs[i + 16]->ctx.fp));
    const G* g = gs[i];
    // Only a parked goroutine's saved registers are current (as level 2 walks them).
    const GStatus st = g->status.load(std::memory_order_acquire);
    const bool parked = st == GStatus::waiting || (st == GStatus::runnable && g->started);
    int n = 0;
    if (auto it = running.find(g); it != running.end()) {
      n = int(std::min(it->second.size(), std::size_t(debug_impl::kMaxDumpFrames)));
      std::copy_n(it->second.begin(), n, key);
    } else if (g == self) {
      // The caller, walked here from its caller on, as level 2 shows it.
      n = backtrace(key, debug_impl::kMaxDumpFrames);
      if (n > 0) std::copy(key + 1, key + n--, key);
    } else if (parked) {
      n = debug_impl::parked_frames(g, key, debug_impl::kMaxDumpFrames);
    }
    key[n++] = g->created_pc;
    const std::span<void* const> pcs(key, std::size_t(n));
    if (auto it = groups.find(pcs); it != groups.end()) {
      ++it->second;
    } else {
      groups.emplace(std::vector<void*>(pcs.begin(), pcs.end()), 1);
    }
  }
  os << "goroutine profile: total " << gs.size() << "\n";
  for (auto& [pcs, count] : groups) {
    os << count << " @";
    for (void* pc : pcs) os << " " << pc;
    os << "\n";
    for (std::size_t i = 0; i + 1 < pcs.size(); ++i) {
      std::string d = debug_impl::describe_pc(pcs[i], i > 0);
      os << "#\t" << pcs[i] << "\t" << d.substr(0, d.find('\n')) << "\n";
    }
    os << "\n";
  }
}

}  // namespace gort::debug
