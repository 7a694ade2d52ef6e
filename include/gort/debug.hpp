// gort/debug.hpp — what the runtime is doing: goroutine dumps and scheduler counters.
// Every function here may be called from any goroutine or plain thread.
#pragma once
#include <cstdint>
#include <iosfwd>

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
  std::uint64_t timers = 0;            // timers pending
  std::uint64_t netpoll_waits = 0;
};

// A snapshot of the counters; all zero outside run().
Stats stats();

// level 2: every goroutine in Go's dump format; level 1: identical stacks grouped, with counts.
void write_goroutines(std::ostream& os, int level = 2);

}  // namespace gort::debug
