#include "debug/symbolize.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>

#if GORT_HAVE_LIBDW
#include <dwarf.h>
#include <elfutils/libdwfl.h>
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
// g_target (guarded by g_mu), whose registers come from its saved context and whose memory
// reads are confined to its stack. The Dwfl is attached to these callbacks once.

struct UnwindTarget {
  const arch::Context* ctx;
  std::uintptr_t lo, hi;
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
  if (!t || addr % sizeof(Dwarf_Word) != 0 || addr < t->lo || addr + sizeof(Dwarf_Word) > t->hi) return false;
  *result = *reinterpret_cast<const volatile Dwarf_Word*>(addr);
  return true;
}

bool set_initial_registers(Dwfl_Thread* thread, void* arg) {
  const arch::Context& c = *static_cast<UnwindTarget*>(arg)->ctx;
  // DWARF register numbers of the callee-saved registers the switch kept.
#if defined(__x86_64__)
  const Dwarf_Word rbx = c.rbx, rbp_rsp[2] = {c.fp, c.sp}, r12_r15[4] = {c.r12, c.r13, c.r14, c.r15};
  if (!dwfl_thread_state_registers(thread, 3, 1, &rbx) || !dwfl_thread_state_registers(thread, 6, 2, rbp_rsp) ||
      !dwfl_thread_state_registers(thread, 12, 4, r12_r15))
    return false;
#elif defined(__aarch64__)
  Dwarf_Word x19_sp[13] = {c.x19, c.x20};
  for (int i = 0; i < 8; ++i) x19_sp[2 + i] = c.x21_x28[i];
  x19_sp[10] = c.fp;  // x29
  x19_sp[11] = c.pc;  // x30: the resume address was the link register
  x19_sp[12] = c.sp;  // 31
  if (!dwfl_thread_state_registers(thread, 19, 13, x19_sp)) return false;
#endif
  dwfl_thread_state_register_pc(thread, c.pc);
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

bool attach_locked() {
  if (g_attached == 0) {
    g_attached = -1;
    if ((g_dwfl || report_modules()) && dwfl_attach_state(g_dwfl, nullptr, getpid(), &g_thread_callbacks, nullptr))
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

// Whether the function at addr finds its frame (CFA) from the frame pointer: rbp+16 once
// its prologue ran, in every function built with frame pointers.
std::unordered_map<std::uintptr_t, bool> g_cfa_from_fp;  // guarded by g_mu

bool cfa_from_frame_pointer_locked(std::uintptr_t addr) {
#if defined(__x86_64__)
  if (auto it = g_cfa_from_fp.find(addr); it != g_cfa_from_fp.end()) return it->second;
  bool from_fp = true;  // unknown: trust the chain
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
        Dwarf_Op* ops = nullptr;
        std::size_t nops = 0;
        if (dwarf_frame_cfa(frame, &ops, &nops) == 0 && nops == 1) {
          from_fp = ops[0].atom == DW_OP_breg6 || (ops[0].atom == DW_OP_bregx && ops[0].number == 6);
        }
        std::free(frame);
      }
    }
  }
  if (g_cfa_from_fp.size() >= (1u << 16)) g_cfa_from_fp.clear();
  g_cfa_from_fp.emplace(addr, from_fp);
  return from_fp;
#else
  (void)addr;
  return true;  // arm64 compilers keep the CFA on sp even with frame records: cannot tell
#endif
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
            c->exact = cfa_from_frame_pointer_locked(addr);
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

int unwind_with_cfi(const arch::Context& ctx, std::uintptr_t lo, std::uintptr_t hi, void** out, int max) {
#if GORT_HAVE_LIBDW
  if (max <= 0) return 0;
  UnwindTarget target{&ctx, lo, hi, out, max, 0};
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
  (void)ctx;
  (void)lo;
  (void)hi;
  (void)out;
  (void)max;
  return 0;
#endif
}

}  // namespace gort::debug_impl
