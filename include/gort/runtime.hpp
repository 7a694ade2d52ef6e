// gort/runtime.hpp — starting the runtime, starting goroutines, and the runtime's knobs.
//
// Threads: run() is called from a plain thread and blocks it until main returns. Everything
// else here may be called from any goroutine; go() also from a plain thread while run() is
// active. Functions that only make sense inside a goroutine say so.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <gort/detail/task.hpp>

namespace gort {

// Thrown for the misuse Go panics on (send on a closed channel, close of a nil or closed
// channel, a negative WaitGroup counter). Catch it to recover.
class panic_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

struct Config {
  // Number of processors (Ps): how many goroutines run in parallel. 0: $GOMAXPROCS, else
  // the cgroup CPU quota, else the number of online CPUs.
  int maxprocs = 0;
  // Address space reserved for each goroutine's stack, in bytes (rounded up to pages; only
  // touched pages cost memory). 0: $GORT_STACK_SIZE, else 60 KiB
  // (240 KiB in AddressSanitizer builds, 120 KiB in ThreadSanitizer builds).
  std::size_t stack_size = 0;
};

// Starts the runtime, runs `main` as goroutine 1, and returns when it returns: main's int,
// or 0 for a void main. Goroutines still alive then are never resumed (as in Go). May be
// called again after it returned; a nested or concurrent call throws std::logic_error.
template <class F>
int run(F&& main, Config cfg = {}) {
  using R = std::invoke_result_t<F&>;
  struct Frame {
    F* fn;
    int result = 0;
  } frame{&main};
  auto body = +[](void* p) {
    auto* fr = static_cast<Frame*>(p);
    if constexpr (std::is_void_v<R>) {
      std::invoke(*fr->fn);
    } else {
      fr->result = static_cast<int>(std::invoke(*fr->fn));
    }
  };
  int status = detail::run_main(body, &frame, cfg.stack_size, cfg.maxprocs);
  return status != 0 ? status : frame.result;
}

// Starts f(args...) in a new goroutine. The callable and arguments are moved (decayed
// copies, as std::thread does). Throws std::logic_error outside an active run().
// (Not inlined, so its return address is the call site that dumps print as "created by".)
template <class F, class... A>
  requires(!std::is_same_v<std::remove_cvref_t<F>, Spawn>)
[[gnu::noinline]] void go(F&& f, A&&... args) {
  detail::spawn_task(Spawn{}, detail::bind_task(std::forward<F>(f), std::forward<A>(args)...),
                     __builtin_return_address(0));
}

// As go(f, args...), with a name for dumps and an optional stack size.
template <class F, class... A>
[[gnu::noinline]] void go(const Spawn& opts, F&& f, A&&... args) {
  detail::spawn_task(opts, detail::bind_task(std::forward<F>(f), std::forward<A>(args)...),
                     __builtin_return_address(0));
}

// Lets other goroutines run; the caller stays runnable (runtime.Gosched).
void yield();
// Gets, and with n > 0 sets, the number of processors; returns the previous value
// (runtime.GOMAXPROCS). Outside run() it reports what run() would use.
int maxprocs(int n = 0);
// CPUs this process may use: the affinity mask, capped by the cgroup v2 cpu.max quota.
int num_cpu();
// Goroutines that exist now (started and not yet returned).
std::int64_t num_goroutine();
// The calling goroutine's id (main is 1); 0 outside a goroutine.
std::int64_t goroutine_id();
// Wires the calling goroutine to its OS thread until unlock_os_thread() (calls nest, as in
// Go). Meanwhile that thread runs no other goroutine.
void lock_os_thread();
void unlock_os_thread();

// Runs f() on the calling goroutine, with its processor handed to another thread meanwhile,
// so other goroutines keep running while f blocks the OS thread. Returns f's result or
// rethrows its exception. From a plain thread it just calls f.
template <class F>
auto blocking(F&& f) -> std::invoke_result_t<F&> {
  struct Exit {
    ~Exit() { detail::exit_blocking(); }
  };
  detail::enter_blocking();
  Exit exit;
  return std::invoke(f);
}

}  // namespace gort
