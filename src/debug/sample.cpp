// debug/sample — sampling running goroutines' stacks with SIGURG. Invariants: sample.hpp.
#include "debug/sample.hpp"

#include <dlfcn.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ucontext.h>

#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>

#include "debug/dump.hpp"
#include "debug/symbolize.hpp"
#include "sched/sanitizer.hpp"

namespace gort::debug_impl {

using namespace gort::sched;

namespace {

enum SlotState : int { kIdle, kRequested, kBusy, kDone };

struct sigaction g_prev_urg;
std::mutex g_sampler_mu;

struct Registers {
  std::uintptr_t pc = 0, sp = 0, fp = 0, lr = 0;
};

Registers interrupted(const void* uctx) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(uctx);
  Registers r;
#if defined(__x86_64__)
  r.pc = std::uintptr_t(uc->uc_mcontext.gregs[REG_RIP]);
  r.sp = std::uintptr_t(uc->uc_mcontext.gregs[REG_RSP]);
  r.fp = std::uintptr_t(uc->uc_mcontext.gregs[REG_RBP]);
#elif defined(__aarch64__)
  r.pc = std::uintptr_t(uc->uc_mcontext.pc);
  r.sp = std::uintptr_t(uc->uc_mcontext.sp);
  r.fp = std::uintptr_t(uc->uc_mcontext.regs[29]);
  r.lr = std::uintptr_t(uc->uc_mcontext.regs[30]);
#else
  (void)uc;
#endif
  return r;
}

// The interrupted registers in DWARF numbering (symbolize.hpp's DwarfRegisters), for the
// CFI unwinder: kTakenRegisters is the set take_registers fills.
#if defined(__x86_64__)
constexpr int kDwarfSp = 7;
constexpr std::uint32_t kTakenRegisters = 0xFFFFu;
#elif defined(__aarch64__)
constexpr int kDwarfSp = 31;
constexpr std::uint32_t kTakenRegisters = 0xFFFFFFFFu;
#else
constexpr int kDwarfSp = 0;
constexpr std::uint32_t kTakenRegisters = 0;
#endif

// How much of a running goroutine's stack, from sp up, a sample copies for the CFI
// unwinder (none where there is no unwinder). Frames beyond it are not unwound.
#if GORT_HAVE_LIBDW
constexpr std::size_t kStackCopyBytes = std::size_t(128) << 10;
#else
constexpr std::size_t kStackCopyBytes = 0;
#endif

void take_registers(const void* uctx, std::uint64_t* regs, std::uint64_t& pc) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(uctx);
#if defined(__x86_64__)
  static constexpr int kGreg[16] = {REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP,
                                    REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
  for (int i = 0; i < 16; ++i) regs[i] = std::uint64_t(uc->uc_mcontext.gregs[kGreg[i]]);
  pc = std::uint64_t(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  for (int i = 0; i < 31; ++i) regs[i] = uc->uc_mcontext.regs[i];
  regs[31] = uc->uc_mcontext.sp;
  pc = uc->uc_mcontext.pc;
#else
  (void)uc;
  (void)regs;
  pc = 0;
#endif
}

// Copies the live stack [sp, min(hi, sp + cap)) a word at a time. Exempt from the
// sanitizers: the frames it reads hold ASan's redzones, and memcpy would be checked.
__attribute__((no_sanitize_address, no_sanitize_thread)) std::size_t copy_stack(std::uintptr_t sp, std::uintptr_t hi,
                                                                                unsigned char* to, std::size_t cap) noexcept {
  const std::size_t words = (std::min<std::uintptr_t>(hi - sp, cap)) / sizeof(std::uintptr_t);
  const auto* from = reinterpret_cast<const volatile std::uintptr_t*>(sp);
  auto* dst = reinterpret_cast<std::uintptr_t*>(to);
  for (std::size_t i = 0; i < words; ++i) dst[i] = from[i];
  return words * sizeof(std::uintptr_t);
}

// The walk of parked_frames, from interrupted registers: only reads inside [lo, hi), each
// frame above the last. Exempt from ASan: frames carry redzones it would report.
__attribute__((no_sanitize_address)) int walk(const Registers& r, std::uintptr_t lo, std::uintptr_t hi, void** out,
                                              int max) noexcept {
  const StackMemory stack{lo, hi};
  if (!stack.holds(r.sp, sizeof(void*)) || r.pc == 0) return 0;  // on another stack (g0's, a signal's)
  int n = 0;
  out[n++] = reinterpret_cast<void*>(r.pc);
  std::uintptr_t fp = r.fp;
  while (n < max && fp >= r.sp && stack.holds(fp, 16) && fp % sizeof(void*) == 0) {
    const auto* frame = reinterpret_cast<const std::uintptr_t*>(fp);
    const std::uintptr_t ret = frame[1], next = frame[0];
    if (ret == 0) break;
    out[n++] = reinterpret_cast<void*>(ret);
    if (next <= fp) break;
    fp = next;
  }
  return n;
}

__attribute__((no_sanitize_address)) std::uintptr_t top_of_stack(std::uintptr_t sp) noexcept {
  return *reinterpret_cast<const std::uintptr_t*>(sp);
}

// Whether the instruction before `ret` is a call (so `ret` is a return address): x86-64's
// call rel32 (E8), call *reg (FF /2, with or without REX), call *[rip+rel32] (FF 15);
// arm64's BL and BLR. The bytes are read with process_vm_readv: `ret` is only a word from
// the top of the stack, and dladdr also matches the unmapped gaps between a module's
// segments, so a plain load could fault.
bool follows_call(std::uintptr_t ret) noexcept {
  std::uint8_t code[8];
  const iovec local{code, sizeof code}, remote{reinterpret_cast<void*>(ret - sizeof code), sizeof code};
  if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != ssize_t(sizeof code)) return false;
  const std::uint8_t* b = code + sizeof code;
#if defined(__x86_64__)
  auto modrm_is_call = [](std::uint8_t m) { return (m >> 3 & 7) == 2; };
  return b[-5] == 0xE8 || (b[-2] == 0xFF && modrm_is_call(b[-1]) && b[-1] >= 0xD0) ||
         (b[-3] == 0xFF && modrm_is_call(b[-2])) || (b[-6] == 0xFF && b[-5] == 0x15);
#elif defined(__aarch64__)
  std::uint32_t insn;
  std::memcpy(&insn, b - 4, 4);
  return (insn & 0xFC000000u) == 0x94000000u || (insn & 0xFFFFFC1Fu) == 0xD63F0000u;
#else
  (void)b;
  return false;
#endif
}

// A goroutine interrupted in a leaf function that keeps no frame (GCC omits it in leaves)
// has its caller's frame pointer: the walk then skips the caller. Its return address is
// still at hand (leaf_ret); it goes in when it is a return address into another function
// than the interrupted pc's and not already the next frame. Runs outside the handler:
// dladdr is not async-signal-safe.
void add_leaf_caller(std::vector<void*>& pcs, std::uintptr_t leaf_ret) {
  if (pcs.empty() || leaf_ret == 0) return;
  if (pcs.size() > 1 && reinterpret_cast<std::uintptr_t>(pcs[1]) == leaf_ret) return;
  Dl_info ret_info{}, pc_info{};
  if (!dladdr(reinterpret_cast<void*>(leaf_ret), &ret_info) || !ret_info.dli_fbase) return;
  if (leaf_ret - reinterpret_cast<std::uintptr_t>(ret_info.dli_fbase) < 8 || !follows_call(leaf_ret)) return;
  if (dladdr(pcs[0], &pc_info) && pc_info.dli_saddr && pc_info.dli_saddr == ret_info.dli_saddr) return;
  pcs.insert(pcs.begin() + 1, reinterpret_cast<void*>(leaf_ret));
}

// Replaces the frame-pointer walk in `pcs` with the CFI unwind of the sample's registers
// and stack copy when that unwind is at least as complete: it also sees frames built
// without frame pointers, frameless leaves and prologues. Returns whether it did.
bool unwind_sample_with_cfi(const M::StackSample& s, std::vector<void*>& pcs) {
  if (s.copy_len == 0) return false;
  DwarfRegisters regs;
  std::copy(std::begin(s.regs), std::end(s.regs), regs.r);
  regs.known = kTakenRegisters;
  regs.pc = s.pc;
  const auto sp = std::uintptr_t(s.regs[kDwarfSp]);
  void* cfi[kMaxDumpFrames];
  const int k = unwind_with_cfi(regs, StackMemory{sp, sp + s.copy_len, s.copy}, cfi, kMaxDumpFrames);
  if (k <= 1 || (!returns_to_trampoline(cfi[k - 1]) && !pcs.empty() && returns_to_trampoline(pcs.back()))) return false;
  pcs.assign(cfi, cfi + k);
  return true;
}

void forward(int sig, siginfo_t* info, void* uctx) {
  if (g_prev_urg.sa_flags & SA_SIGINFO) {
    if (g_prev_urg.sa_sigaction) g_prev_urg.sa_sigaction(sig, info, uctx);
  } else if (g_prev_urg.sa_handler != SIG_DFL && g_prev_urg.sa_handler != SIG_IGN) {
    g_prev_urg.sa_handler(sig);
  }
  // SIGURG's default action is to ignore it.
}

void on_sample_signal(int sig, siginfo_t* info, void* uctx) {
  M* m = this_m();
  int want = kRequested;
  if (!m || !m->sample.state.compare_exchange_strong(want, kBusy, std::memory_order_acquire)) {
    forward(sig, info, uctx);
    return;
  }
  const G* g = m->curg;
  int n = 0;
  if (g && g->stack && !m->on_system_stack) {
    const Registers r = interrupted(uctx);
    const auto lo = reinterpret_cast<std::uintptr_t>(g->stack.lo), hi = reinterpret_cast<std::uintptr_t>(g->stack.hi);
    n = walk(r, lo, hi, m->sample.pcs, int(std::size(m->sample.pcs)));
    m->sample.leaf_ret = r.lr != 0 ? r.lr : n > 0 ? top_of_stack(r.sp) : 0;  // walk checked sp
    m->sample.copy_len = 0;
    if (n > 0 && m->sample.copy && kTakenRegisters != 0) {
      take_registers(uctx, m->sample.regs, m->sample.pc);
      m->sample.copy_len = copy_stack(r.sp, hi, m->sample.copy, m->sample.copy_cap);
    }
  }
  m->sample.g = n > 0 ? g : nullptr;
  m->sample.n = n;
  m->sample.state.store(kDone, std::memory_order_release);
}

}  // namespace

std::unordered_map<const G*, std::vector<void*>> sample_running(Runtime* rt) {
  std::unordered_map<const G*, std::vector<void*>> out;
  std::lock_guard<std::mutex> l(g_sampler_mu);
  const M* self = this_m();
  const pid_t pid = getpid();
  std::vector<M*> asked;
  std::vector<std::unique_ptr<unsigned char[]>> copies;  // outlive every handler that writes them
  for (M* m = rt->allm_head.load(std::memory_order_acquire); m; m = m->alllink) {
    if (m == self) continue;
    const pid_t tid = m->tid.load(std::memory_order_acquire);
    const G* g;
    {
      san::IgnoreAccesses ignore;  // a racy peek, only to skip idle Ms: the handler decides
      g = m->curg;
    }
    if (tid == 0 || !g || g->status.load(std::memory_order_relaxed) != GStatus::running) continue;
    if (kStackCopyBytes > 0) {
      // Lent before the request: the handler may not allocate.
      copies.push_back(std::unique_ptr<unsigned char[]>(new (std::nothrow) unsigned char[kStackCopyBytes]));
      m->sample.copy = copies.back().get();
      m->sample.copy_cap = m->sample.copy ? kStackCopyBytes : 0;
    }
    m->sample.state.store(kRequested, std::memory_order_release);
    if (syscall(SYS_tgkill, pid, tid, SIGURG) == 0) {
      asked.push_back(m);
    } else {
      m->sample.state.store(kIdle, std::memory_order_relaxed);  // the thread has exited
      m->sample.copy = nullptr;
      m->sample.copy_cap = 0;
    }
  }
  const std::int64_t deadline = monotonic_ns() + std::chrono::nanoseconds(kSampleWait).count();
  for (M* m : asked) {
    for (;;) {
      int s = m->sample.state.load(std::memory_order_acquire);
      if (s == kDone) break;
      if (s == kRequested && monotonic_ns() >= deadline &&
          m->sample.state.compare_exchange_strong(s, kIdle, std::memory_order_acq_rel)) {
        break;  // given up: a late signal finds the slot idle
      }
      // Requested and not yet late, or busy (a walk is bounded): poll again shortly.
      const timespec pause{0, 20'000};
      nanosleep(&pause, nullptr);
    }
    if (m->sample.state.load(std::memory_order_acquire) == kDone) {
      if (m->sample.g) {
        std::vector<void*>& pcs = out[m->sample.g];
        pcs.assign(m->sample.pcs, m->sample.pcs + m->sample.n);
        if (!unwind_sample_with_cfi(m->sample, pcs)) add_leaf_caller(pcs, m->sample.leaf_ret);
      }
      m->sample.state.store(kIdle, std::memory_order_relaxed);
    }
  }
  // No handler writes now: each slot is idle, or done and read.
  for (M* m : asked) {
    m->sample.copy = nullptr;
    m->sample.copy_cap = 0;
  }
  return out;
}

void install_sample_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sample_signal;
  // The alternate stack: the goroutine's own may be nearly full. SA_RESTART: a sample must
  // not fail the interrupted goroutine's system call.
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGURG, &sa, &g_prev_urg);
}

void restore_sample_handler() { sigaction(SIGURG, &g_prev_urg, nullptr); }

}  // namespace gort::debug_impl
