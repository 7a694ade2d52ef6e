// sched/panic — what happens when a goroutine fails.
//
// A panic is an exception that no frame of its goroutine catches. The goroutine's first
// frame has no handler and the trampoline below it ends the stack, so the C++ runtime's
// search phase finds nothing and calls std::terminate *before unwinding*: our terminate
// handler still runs on the throwing goroutine's stack and can print where it was thrown.
// A fatal error (a broken invariant) is not an exception: it prints and exits at once.
// Both exit with status 2, as Go does.
#include <cxxabi.h>
#include <execinfo.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <typeinfo>
#include <vector>

#include "debug/dump.hpp"
#include "sched/sched.hpp"

namespace gort::sched {

namespace {

std::terminate_handler g_prev_terminate = nullptr;

void write_str(const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(STDERR_FILENO, s.data() + off, s.size() - off);
    if (n <= 0) break;
    off += std::size_t(n);
  }
}

std::string exception_type_name() {
  std::type_info* t = abi::__cxa_current_exception_type();
  if (!t) return "unknown exception";
  int status = 0;
  char* d = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : t->name();
  std::free(d);
  return out;
}

// The current goroutine's frames, from the unwinder (we are still on its stack). Frames of
// the reporting machinery are dropped: everything up to __cxa_throw for a panic, or the
// first `skip` frames otherwise.
std::string current_frames(int skip) {
  void* pcs[100];
  int n = backtrace(pcs, 100);
  std::vector<std::string> frames;
  int start = skip;
  for (int i = 0; i < n; ++i) {
    frames.push_back(debug_impl::describe_pc(pcs[i], i > 0));
    if (frames.back().rfind("__cxa_throw", 0) == 0 || frames.back().rfind("__cxa_rethrow", 0) == 0) start = i + 1;
  }
  std::string out;
  for (int i = start; i < n; ++i) {
    if (!debug_impl::is_scheduler_frame(frames[std::size_t(i)])) out += frames[std::size_t(i)] + "\n";
  }
  return out;
}

bool traceback_all() {
  const char* v = std::getenv("GORT_TRACEBACK");
  return v && (std::strcmp(v, "all") == 0 || std::strcmp(v, "system") == 0 || std::strcmp(v, "crash") == 0);
}

void report_current_goroutine(G* g, int skip) {
  std::string out = debug_impl::goroutine_header(g, true) + ":\n" + current_frames(skip);
  if (g->created_pc) {
    std::string site = debug_impl::describe_pc(g->created_pc, true);
    out += "created by " + site.substr(0, site.find('\n'));
    if (g->parent_id) out += " in goroutine " + std::to_string(g->parent_id);
    out += site.substr(site.find('\n')) + "\n";
  }
  write_str(out + "\n");
}

[[noreturn]] void on_terminate() {
  G* g = current_g();
  std::exception_ptr ex = std::current_exception();
  if (!g || !ex) {
    if (g_prev_terminate) g_prev_terminate();
    std::abort();
  }
  std::string what;
  try {
    std::rethrow_exception(ex);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "(not a std::exception)";
  }
  write_str("panic: " + exception_type_name() + ": " + what + "\n\n");
  report_current_goroutine(g, 2);
  if (traceback_all()) debug_impl::dump_all_to_fd(STDERR_FILENO, g);
  _exit(2);
}

}  // namespace

void install_panic_handler() { g_prev_terminate = std::set_terminate(on_terminate); }
void restore_panic_handler() { std::set_terminate(g_prev_terminate); }

void fatal(const char* why) noexcept {
  write_str(std::string("fatal error: ") + why + "\n\n");
  G* g = current_g();
  if (g) report_current_goroutine(g, 2);
  debug_impl::dump_all_to_fd(STDERR_FILENO, g);
  // exit_group directly: a fatal error may come from the scheduler's own context, where
  // sanitizer interceptors of _exit would report the runtime's internal state instead.
  syscall(SYS_exit_group, 2);
  _exit(2);
}

}  // namespace gort::sched
