// sched/signals — turning a goroutine's stack overflow into a clean fatal error.
//
// Each M has an alternate signal stack, so the SIGSEGV raised by touching a guard page can
// be handled although the goroutine's stack is exhausted. The handler only reads the
// current G's stack bounds (immutable while it runs) and writes with write(2); a fault that
// is not a guard hit gets the previous disposition back and is re-raised by returning.
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "sched/sched.hpp"

namespace gort::sched {

namespace {

struct sigaction g_prev_segv, g_prev_bus;
constexpr std::size_t kAltStackSize = 64 * 1024;

void put(const char* s) {
  ssize_t unused = write(STDERR_FILENO, s, std::strlen(s));
  (void)unused;
}

void put_num(std::int64_t v) {
  char buf[24];
  int i = 23;
  buf[i] = 0;
  bool neg = v < 0;
  std::uint64_t u = neg ? std::uint64_t(-v) : std::uint64_t(v);
  do {
    buf[--i] = char('0' + u % 10);
    u /= 10;
  } while (u);
  if (neg) buf[--i] = '-';
  put(buf + i);
}

}  // namespace

// Prints with write(2) only and exits: the stack is exhausted, so nothing that needs stack
// space (symbolization, the full dump) can run here.
void report_stack_overflow(const G* g) noexcept {
  put("fatal error: stack overflow\n\nruntime: goroutine stack exceeds ");
    put_num(std::int64_t(g->stack.size()));
    put("-byte limit\n\ngoroutine ");
    put_num(g->id);
    put(" [running]:\n");
    if (!g->name.empty()) {
      put("\tname: ");
      put(g->name.c_str());
      put("\n");
    }
    put("\t(frames omitted: the stack is exhausted)\n");
    // exit_group itself: TSan's _exit interceptor would run its own finalization here,
    // on an overflowed stack.
    syscall(SYS_exit_group, 2);
    _exit(2);
}

namespace {

void on_fault(int sig, siginfo_t* info, void* uctx) {
  M* m = this_m();
  G* g = m ? m->curg : nullptr;
  Runtime* rt = runtime();
  if (g && rt && g->stack && rt->stacks.in_guard(info->si_addr, g->stack)) report_stack_overflow(g);
  // Not ours: restore the previous handler and let the fault happen again.
  sigaction(sig, sig == SIGSEGV ? &g_prev_segv : &g_prev_bus, nullptr);
  (void)uctx;
}

}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_prev_segv);
  sigaction(SIGBUS, &sa, &g_prev_bus);
}

void restore_signal_handlers() {
  sigaction(SIGSEGV, &g_prev_segv, nullptr);
  sigaction(SIGBUS, &g_prev_bus, nullptr);
}

void setup_altstack(M* m) {
  void* p = mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  stack_t ss{};
  ss.ss_sp = p;
  ss.ss_size = kAltStackSize;
  if (sigaltstack(&ss, nullptr) == 0) m->altstack = p;
  else munmap(p, kAltStackSize);
}

void teardown_altstack(M* m) {
  if (!m->altstack) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  munmap(m->altstack, kAltStackSize);
  m->altstack = nullptr;
}

}  // namespace gort::sched
