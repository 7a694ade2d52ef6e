#include "debug/symbolize.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#if GORT_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#endif

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

}  // namespace gort::debug_impl
