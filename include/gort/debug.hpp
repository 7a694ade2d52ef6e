// gort/debug.hpp — what the runtime is doing: goroutine dumps and scheduler counters.
// Every function here may be called from any goroutine or plain thread.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

namespace gort::debug {

struct Stats {
  std::int64_t goroutines = 0;         // alive now
  std::int64_t threads = 0;            // Ms created
  std::int64_t procs = 0;              // gomaxprocs
  std::int64_t idle_procs = 0;
  std::int64_t spinning_threads = 0;
  std::uint64_t spawns = 0;            // goroutines started from goroutines
  std::uint64_t context_switches = 0;  // switches into a goroutine
  std::uint64_t parks = 0;             // goroutines that blocked
  std::uint64_t steals = 0;            // successful steal operations
  std::uint64_t stolen_goroutines = 0; // goroutines moved by them
  std::uint64_t thread_parks = 0;      // Ms that went to sleep for lack of work
  std::uint64_t syscall_handoffs = 0;  // Ps handed to another M around a blocking call
  std::uint64_t preemptions = 0;
  // Times a goroutine that filled its P's run queue with goroutines it started yielded to
  // them (spawn pressure), and goroutine descriptors allocated so far, live or kept for reuse
  // (Go's allglen): a spawn loop that outruns its children is what grows the latter.
  std::uint64_t spawn_yields = 0;
  std::uint64_t descriptors = 0;
  std::uint64_t timers = 0;            // timers pending
  std::uint64_t netpoll_waits = 0;
  // Free default-size stacks in the global pool (per-P caches hold up to 64 more), how many
  // of them have had their pages given back to the kernel, and in how many madvise calls.
  std::uint64_t stacks_pooled = 0;
  std::uint64_t stacks_released = 0;
  std::uint64_t stack_release_calls = 0;
};

// A snapshot of the counters; all zero outside run().
Stats stats();

// level 2: every goroutine in Go's dump format; level 1: identical stacks grouped, with counts.
// Goroutines running on other threads are sampled with SIGURG (their threads pause for one
// frame walk; the dump waits at most 20 ms for them), which gort handles while run() is
// active, passing on any SIGURG that is not its own.
void write_goroutines(std::ostream& os, int level = 2);

// An HTTP/1.1 endpoint served by the runtime itself on gort::net (Go's net/http/pprof):
//   /                                  an HTML index linking the pages below (also /debug/pprof/)
//   /debug/pprof/goroutine?debug=1     write_goroutines level 1 (identical stacks grouped), text
//   /debug/pprof/goroutine?debug=2     write_goroutines level 2 (every goroutine), text
//   /debug/vars                        stats(), the command line and memory figures, as JSON (expvar)
//   /debug/sched                       a GORT_DEBUG=schedtrace line, then every stats() counter
// GET and HEAD only (405 otherwise); keep-alive unless `Connection: close`.
//
// `address` is "host:port" as gort::net::listen takes it. An empty host (":6060", ":0")
// binds 127.0.0.1 only, unlike net::listen: name an interface ("0.0.0.0:6060",
// "[::]:6060") to serve beyond loopback. An address containing '/' (or starting with '@')
// is a Unix socket path. Returns once listening; throws std::system_error if it cannot.
//
// The server runs as goroutines named "gort debug server" (the accept loop) and
// "gort debug conn" (one per connection): verify_none ignores them with
// VerifyOptions{.ignore = {"gort debug"}}. It stops at stop_serving(), or when run()'s
// main returns (main then waits for the server's goroutines to end, so no socket
// outlives run()). Several servers may run at once. Call from a goroutine, or from a plain
// thread while run() is active (std::logic_error otherwise).
void serve(std::string_view address);
// As serve, returning the bound address ("127.0.0.1:43117"; the path for a Unix socket),
// for an address with port 0.
std::string serve_addr(std::string_view address);
// Stops every server serve() started in this run(): closes its listener and connections
// and waits for its goroutines to return. Does nothing when none runs. Any goroutine or
// plain thread; not from a handler of the server itself.
void stop_serving();

}  // namespace gort::debug
