#include "debug/symbolize.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>

#if GORT_HAVE_LIBDW
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <libelf.h>
#endif

#include "sched/sched.hpp"

namespace gort::debug_impl {

namespace {

std::string demangle(const char* name) {
  if (!name) return {};
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  return out;
}

std::mutex g_mu;

#if GORT_HAVE_LIBDW
Dwfl* g_dwfl = nullptr;  // guarded by g_mu
const Dwfl_Callbacks g_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = nullptr,
};

// (Re)reads the process's module list: also after a dlopen, when an address is unknown.
bool report_modules() {
  if (!g_dwfl) g_dwfl = dwfl_begin(&g_callbacks);
  if (!g_dwfl) return false;
  dwfl_report_begin(g_dwfl);
  int rc = dwfl_linux_proc_report(g_dwfl, getpid());
  dwfl_report_end(g_dwfl, nullptr, nullptr);
  return rc == 0;
}

bool symbolize_dw(Dwarf_Addr addr, Symbol& out) {
  if (!g_dwfl && !report_modules()) return false;
  Dwfl_Module* mod = dwfl_addrmodule(g_dwfl, addr);
  if (!mod) {
    report_modules();
    mod = dwfl_addrmodule(g_dwfl, addr);
    if (!mod) return false;
  }
  const char* mainfile = nullptr;
  const char* modname = dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, &mainfile, nullptr);
  out.module = mainfile ? mainfile : (modname ? modname : "");
  GElf_Off off = 0;
  GElf_Sym sym;
  if (const char* name = dwfl_module_addrinfo(mod, addr, &off, &sym, nullptr, nullptr, nullptr)) {
    out.function = demangle(name);
    out.offset = off;
  }
  if (Dwfl_Line* line = dwfl_module_getsrc(mod, addr)) {
    int lineno = 0;
    if (const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr)) {
      out.file = file;
      out.line = lineno;
    }
  }
  return !out.function.empty();
}

// ---- CFI unwinding -------------------------------------------------------------------------
//
// libdw unwinds "threads" it learns of through callbacks: here one, the goroutine named by
// g_target (guarded by g_mu), whose registers are given and whose memory reads are
// confined to its stack (or that stack's copy). The Dwfl is attached to these callbacks once.

struct UnwindTarget {
  const DwarfRegisters* regs;
  StackMemory stack;
  void** out;
  int max;
  int n;
};
UnwindTarget* g_target = nullptr;  // guarded by g_mu
constexpr pid_t kTargetTid = 1;    // the one thread the callbacks know
int g_attached = 0;                // 1 attached, -1 failed; guarded by g_mu

pid_t next_thread(Dwfl*, void*, void** thread_argp) {
  // Only dwfl_getthreads enumerates; we ask for the one thread by id.
  *thread_argp = nullptr;
  return 0;
}

bool get_thread(Dwfl*, pid_t tid, void*, void** thread_argp) {
  if (tid != kTargetTid || !g_target) return false;
  *thread_argp = g_target;
  return true;
}

// A parked goroutine may start running meanwhile and change its stack under us: reads
// stay inside it (and are exempt from ASan, which would report a new frame's redzones).
__attribute__((no_sanitize_address)) bool memory_read(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void*) {
  const UnwindTarget* t = g_target;
  if (!t || addr % sizeof(Dwarf_Word) != 0 || !t->stack.holds(addr, sizeof(Dwarf_Word))) return false;
  if (t->stack.copy) {
    std::memcpy(result, t->stack.copy + (addr - t->stack.lo), sizeof(Dwarf_Word));
  } else {
    *result = *reinterpret_cast<const volatile Dwarf_Word*>(addr);
  }
  return true;
}

// Hands libdw each run of consecutive known registers.
bool set_initial_registers(Dwfl_Thread* thread, void* arg) {
  const DwarfRegisters& regs = *static_cast<UnwindTarget*>(arg)->regs;
  for (int first = 0; first < DwarfRegisters::kCount;) {
    if (!(regs.known >> first & 1)) {
      ++first;
      continue;
    }
    int end = first;
    while (end < DwarfRegisters::kCount && (regs.known >> end & 1)) ++end;
    static_assert(sizeof(Dwarf_Word) == sizeof(regs.r[0]));
    if (!dwfl_thread_state_registers(thread, first, unsigned(end - first), reinterpret_cast<const Dwarf_Word*>(&regs.r[first])))
      return false;
    first = end;
  }
  dwfl_thread_state_register_pc(thread, regs.pc);
  return true;
}

const Dwfl_Thread_Callbacks g_thread_callbacks = {
    .next_thread = next_thread,
    .get_thread = get_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
    .detach = nullptr,
    .thread_detach = nullptr,
};

// The executable's ELF, mapped for good: the attached process takes its backend (the
// register layout) from it. Attached without one, libdw borrows the first module's
// backend, which dangles once a module-list re-read (an unknown pc) drops that module: a
// later unwind then asserted in libdw (seen under TSan, whose delayed signals give samples
// stale registers and so stray pcs).
Elf* g_exe_elf = nullptr;  // guarded by g_mu

bool attach_locked() {
  if (g_attached == 0) {
    g_attached = -1;
    elf_version(EV_CURRENT);
    const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      g_exe_elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
      if (g_exe_elf) elf_cntl(g_exe_elf, ELF_C_FDDONE);  // mapped: the descriptor is not needed
      close(fd);
    }
    if (g_exe_elf && (g_dwfl || report_modules()) &&
        dwfl_attach_state(g_dwfl, g_exe_elf, getpid(), &g_thread_callbacks, nullptr))
      g_attached = 1;
  }
  return g_attached == 1;
}

int on_frame(Dwfl_Frame* state, void* arg) {
  auto* t = static_cast<UnwindTarget*>(arg);
  Dwarf_Addr pc;
  if (!dwfl_frame_pc(state, &pc, nullptr) || pc == 0) return DWARF_CB_ABORT;
  t->out[t->n++] = reinterpret_cast<void*>(pc);
  return t->n < t->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}

#if defined(__aarch64__)
// Where the CFI at `frame` says a register's caller value is saved: CFA + offset.
std::optional<std::int64_t> saved_at_cfa_offset(Dwarf_Frame* frame, int regno) {
  Dwarf_Op mem[3];
  Dwarf_Op* ops = nullptr;
  std::size_t nops = 0;
  if (dwarf_frame_register(frame, regno, mem, &ops, &nops) != 0 || nops == 0 || ops[0].atom != DW_OP_call_frame_cfa)
    return std::nullopt;
  if (nops == 1) return 0;
  if (nops == 2 && ops[1].atom == DW_OP_plus_uconst) return std::int64_t(ops[1].number);
  return std::nullopt;
}
#endif

// Whether the function at addr keeps the frame-pointer chain there, so a walk through it
// finds its caller. x86-64: it finds its frame (CFA) from the frame pointer, rbp+16 once
// its prologue ran, in every function built with frame pointers. arm64 keeps the CFA on
// sp even then; there the function has stored a frame record (x29 and x30 side by side,
// which x29 points at once its prologue ran).
std::unordered_map<std::uintptr_t, bool> g_keeps_chain;  // guarded by g_mu

bool keeps_frame_pointer_chain_locked(std::uintptr_t addr) {
  if (auto it = g_keeps_chain.find(addr); it != g_keeps_chain.end()) return it->second;
  bool keeps = true;  // unknown: trust the chain
  if (g_dwfl || report_modules()) {
    if (Dwfl_Module* mod = dwfl_addrmodule(g_dwfl, addr)) {
      Dwarf_Addr bias = 0;
      Dwarf_CFI* cfi = dwfl_module_eh_cfi(mod, &bias);
      Dwarf_Frame* frame = nullptr;
      if (!cfi || dwarf_cfi_addrframe(cfi, addr - bias, &frame) != 0) {
        cfi = dwfl_module_dwarf_cfi(mod, &bias);
        if (cfi && dwarf_cfi_addrframe(cfi, addr - bias, &frame) != 0) frame = nullptr;
      }
      if (frame) {
#if defined(__x86_64__)
        Dwarf_Op* ops = nullptr;
        std::size_t nops = 0;
        if (dwarf_frame_cfa(frame, &ops, &nops) == 0 && nops == 1) {
          keeps = ops[0].atom == DW_OP_breg6 || (ops[0].atom == DW_OP_bregx && ops[0].number == 6);
        }
#elif defined(__aarch64__)
        const auto x29 = saved_at_cfa_offset(frame, 29), x30 = saved_at_cfa_offset(frame, 30);
        keeps = x29 && x30 && *x30 == *x29 + 8;
#endif
        std::free(frame);
      }
    }
  }
  if (g_keeps_chain.size() >= (1u << 16)) g_keeps_chain.clear();
  g_keeps_chain.emplace(addr, keeps);
  return keeps;
}
#endif

}  // namespace

Symbol symbolize(void* pc, bool is_return_address) {
  auto addr = reinterpret_cast<std::uintptr_t>(pc) - (is_return_address ? 1 : 0);
  Symbol out;
  std::lock_guard<std::mutex> l(g_mu);
#if GORT_HAVE_LIBDW
  if (symbolize_dw(addr, out)) {
    if (is_return_address) out.offset += 1;
    return out;
  }
#endif
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(addr), &info)) {
    out.module = info.dli_fname ? info.dli_fname : "";
    if (info.dli_sname) {
      out.function = demangle(info.dli_sname);
      out.offset = reinterpret_cast<std::uintptr_t>(pc) - reinterpret_cast<std::uintptr_t>(info.dli_saddr);
    } else if (info.dli_fbase) {
      out.offset = reinterpret_cast<std::uintptr_t>(pc) - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
    }
  }
  return out;
}

bool frame_pointer_walk_exact(void* const* pcs, int n) {
#if GORT_HAVE_LIBDW
  struct Call {
    void* const* pcs;
    int n;
    bool exact;
  } call{pcs, n, true};
  // On the thread stack: reading a module's CFI the first time takes more than a goroutine has.
  sched::on_system_stack(
      [](void* p) noexcept {
        auto* c = static_cast<Call*>(p);
        try {
          std::lock_guard<std::mutex> l(g_mu);
          for (int i = 0; i < c->n && c->exact; ++i) {
            const auto addr = reinterpret_cast<std::uintptr_t>(c->pcs[i]) - (i > 0 ? 1 : 0);
            c->exact = keeps_frame_pointer_chain_locked(addr);
          }
        } catch (...) {
          c->exact = true;  // out of memory: keep the walk we have
        }
      },
      &call);
  return call.exact;
#else
  (void)pcs;
  (void)n;
  return true;
#endif
}

DwarfRegisters registers_of(const arch::Context& c) {
  DwarfRegisters regs;
  auto set = [&regs](int i, std::uint64_t v) {
    regs.r[i] = v;
    regs.known |= 1u << i;
  };
  // The callee-saved registers the switch kept, and sp.
#if defined(__x86_64__)
  set(3, c.rbx);
  set(6, c.fp);
  set(7, c.sp);
  set(12, c.r12);
  set(13, c.r13);
  set(14, c.r14);
  set(15, c.r15);
#elif defined(__aarch64__)
  set(19, c.x19);
  set(20, c.x20);
  for (int i = 0; i < 8; ++i) set(21 + i, c.x21_x28[i]);
  set(29, c.fp);
  set(30, c.pc);  // the resume address was the link register
  set(31, c.sp);
#endif
  regs.pc = c.pc;
  return regs;
}

int unwind_with_cfi(const DwarfRegisters& regs, const StackMemory& stack, void** out, int max) {
#if GORT_HAVE_LIBDW
  if (max <= 0) return 0;
  UnwindTarget target{&regs, stack, out, max, 0};
  sched::on_system_stack(
      [](void* p) noexcept {
        auto* t = static_cast<UnwindTarget*>(p);
        try {
          std::lock_guard<std::mutex> l(g_mu);
          if (!attach_locked()) return;
          g_target = t;
          dwfl_getthread_frames(g_dwfl, kTargetTid, on_frame, t);  // ends with an error at the outermost frame
          g_target = nullptr;
        } catch (...) {
          g_target = nullptr;
          t->n = 0;
        }
      },
      &target);
  return target.n;
#else
  (void)regs;
  (void)stack;
  (void)out;
  (void)max;
  return 0;
#endif
}

}  // namespace gort::debug_impl
