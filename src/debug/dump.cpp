// debug/dump — goroutine dumps in Go's format.
//
// Parked goroutines are walked from their saved frame pointer (the runtime keeps frame
// pointers; gort::gort asks user code for them too), every step checked against the
// goroutine's stack bounds, so a broken chain ends the walk instead of faulting. The
// running goroutine of the caller is walked with the unwinder. Goroutines running on other
// threads are listed with their state; their frames are not captured.
#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <ostream>
#include <sstream>

#include <gort/debug.hpp>

#include "debug/dump.hpp"
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

std::string describe_pc(void* pc, bool is_return_address) {
  Symbol sym = symbolize(pc, is_return_address);
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

bool is_scheduler_frame(const std::string& d) {
  for (const char* prefix : {"gort::sched::", "gort_ctx_", "gort::detail::InlineTask", "gort::detail::BoxedTask",
                             "gort::detail::spawn", "gort::debug::write_goroutines"}) {
    if (d.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// The goroutine may start running on another thread while we walk: its stack then changes
// under us (ASan would report reads of redzones that a new frame poisoned). The walk only
// trusts what the bounds checks allow, so it is exempt from ASan.
__attribute__((no_sanitize_address)) std::vector<void*> parked_frames(const G* g, int max) {
  std::vector<void*> pcs;
  if (!g->started || !g->stack) return pcs;
  const auto lo = reinterpret_cast<std::uintptr_t>(g->stack.lo);
  const auto hi = reinterpret_cast<std::uintptr_t>(g->stack.hi);
  pcs.push_back(reinterpret_cast<void*>(g->ctx.pc));
  std::uintptr_t fp = g->ctx.fp;
  while (pcs.size() < std::size_t(max) && fp >= lo && fp + 16 <= hi && fp % sizeof(void*) == 0) {
    auto* frame = reinterpret_cast<std::uintptr_t*>(fp);
    std::uintptr_t ret = frame[1];
    std::uintptr_t next = frame[0];
    if (ret == 0) break;
    pcs.push_back(reinterpret_cast<void*>(ret));
    if (next <= fp) break;
    fp = next;
  }
  return pcs;
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

void write_goroutine(std::ostream& os, const G* g) {
  GStatus s = g->status.load(std::memory_order_acquire);
  if (s == GStatus::idle || s == GStatus::dead) return;  // exited since it was listed
  os << goroutine_header(g, false) << ":\n";
  if (s == GStatus::waiting || (s == GStatus::runnable && g->started)) {
    for (void* pc : parked_frames(g)) {
      std::string d = describe_pc(pc, pc != reinterpret_cast<void*>(g->ctx.pc));
      if (!is_scheduler_frame(d)) os << d << "\n";
    }
  }
  write_created_by(os, g);
  os << "\n";
}

void dump_all_to_fd(int fd, const G* skip) {
  san::IgnoreAccesses ignore;
  Runtime* rt = runtime();
  if (!rt) return;
  std::ostringstream os;
  for (const G* g : live_goroutines(rt)) {
    if (g == skip) continue;
    write_goroutine(os, g);
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
  s.goroutines = rt->ngoroutines.load(std::memory_order_relaxed);
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
  return s;
}

void write_goroutines(std::ostream& os, int level) {
  san::IgnoreAccesses ignore;  // reads other goroutines' descriptors while they run
  Runtime* rt = runtime();
  if (!rt) return;
  G* self = current_g();
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
        debug_impl::write_goroutine(os, g);
      }
    }
    return;
  }
  // Level 1: group by stack, as pprof's debug=1.
  std::map<std::vector<void*>, int> groups;
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
    std::vector<void*> key = g != self && parked ? debug_impl::parked_frames(g) : std::vector<void*>{};
    key.push_back(g->created_pc);
    ++groups[key];
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
