// sched/signals — a goroutine's stack overflow as a clean fatal error; SIGQUIT as Go's dump;
// SIGURG samples running goroutines for dumps (debug/sample.hpp).
//
// Each M has an alternate signal stack, so the SIGSEGV raised by touching a guard page can
// be handled although the goroutine's stack is exhausted. The handler only reads the
// current G's stack bounds (immutable while it runs) and writes with write(2); a fault that
// is not a guard hit gets the previous disposition back and is re-raised by returning.
//
// SIGQUIT prints every goroutine and exits with status 2, as Go does. The dump allocates and
// takes the all-G lock, which a thread interrupted inside malloc or holding that lock could
// never get: so it is written by run()'s own thread, which while goroutines run only sleeps
// on a futex and holds nothing. A SIGQUIT that lands on any other thread records where it
// landed and forwards itself there with tgkill. Outside run() the previous disposition
// applies.
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ucontext.h>

#include <atomic>
#include <cstdio>
#include <cstring>

#include "debug/dump.hpp"
#include "debug/sample.hpp"
#include "sched/sched.hpp"

namespace gort::sched {

namespace {

struct sigaction g_prev_segv, g_prev_bus, g_prev_quit;
pid_t g_run_tid = 0;                        // run()'s thread: it writes the SIGQUIT dump
std::atomic<bool> g_quit_forwarded{false};  // one SIGQUIT forwarded; later ones are ignored
// Where the first SIGQUIT landed, for the report's "PC=... m=... sigcode=..." line.
std::atomic<std::uintptr_t> g_quit_pc{0};
std::atomic<std::int64_t> g_quit_m{-1};
std::atomic<int> g_quit_code{0};
constexpr std::size_t kAltStackSize = 64 * 1024;

void put(const char* s) {
  ssize_t unused = write(STDERR_FILENO, s, std::strlen(s));
  (void)unused;
}

void put_hex(std::uintptr_t v) {
  char buf[20];
  int i = 19;
  buf[i] = 0;
  do {
    buf[--i] = "0123456789abcdef"[v % 16];
    v /= 16;
  } while (v);
  put("0x");
  put(buf + i);
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


std::uintptr_t interrupted_pc(void* uctx) {
  auto* uc = static_cast<ucontext_t*>(uctx);
#if defined(__x86_64__)
  return std::uintptr_t(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return std::uintptr_t(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;
#endif
}

void on_quit(int sig, siginfo_t* info, void* uctx) {
  if (!runtime()) {
    // Not ours (run() just ended): the previous disposition, once this handler returns.
    sigaction(sig, &g_prev_quit, nullptr);
    raise(sig);
    return;
  }
  const pid_t self = pid_t(syscall(SYS_gettid));
  if (!g_quit_forwarded.exchange(true)) {
    const M* m = this_m();
    g_quit_pc.store(interrupted_pc(uctx));
    g_quit_m.store(m ? m->id : -1);
    g_quit_code.store(info->si_code);
    if (self != g_run_tid) {
      syscall(SYS_tgkill, getpid(), g_run_tid, SIGQUIT);
      return;
    }
  } else if (self != g_run_tid) {
    return;  // already on its way to run()'s thread
  }
  put("SIGQUIT: quit\nPC=");
  put_hex(g_quit_pc.load());
  put(" m=");
  put_num(g_quit_m.load());
  put(" sigcode=");
  put_num(g_quit_code.load());
  put("\n\n");
  debug_impl::dump_all_to_fd(STDERR_FILENO, nullptr);
  // exit_group directly, as fatal() does: no atexit handlers, no sanitizer finalization.
  syscall(SYS_exit_group, 2);
  _exit(2);
}

}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_prev_segv);
  sigaction(SIGBUS, &sa, &g_prev_bus);
  // Called on run()'s thread: the one that writes the SIGQUIT dump.
  g_run_tid = pid_t(syscall(SYS_gettid));
  g_quit_forwarded.store(false);
  struct sigaction quit {};
  quit.sa_sigaction = on_quit;
  // Not SA_ONSTACK: the dump (symbolization included) needs run()'s full thread stack, not
  // an alternate stack (ASan gives every thread a small one); forwarding needs almost none.
  quit.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&quit.sa_mask);
  sigaction(SIGQUIT, &quit, &g_prev_quit);
  debug_impl::install_sample_handler();
}

void restore_signal_handlers() {
  sigaction(SIGSEGV, &g_prev_segv, nullptr);
  sigaction(SIGBUS, &g_prev_bus, nullptr);
  sigaction(SIGQUIT, &g_prev_quit, nullptr);
  debug_impl::restore_sample_handler();
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
