// The program that tests/tools_test.py runs under the debugging tools: GORT_TRACE,
// GORT_DEBUG=schedtrace, gdb with share/gort/gort-gdb.py, and valgrind.
//
//   tools_child trace N       N goroutines that ping-pong on channels, block in blocking()
//                             and wait on a WaitGroup; exits 0 after checking the sum
//   tools_child schedtrace    busy goroutines until stdin reaches end of file; exits 0
//   tools_child gdb           parks 3 goroutines in gort_gdb_parked_here(), then SIGTRAP
//   tools_child valgrind      a small mix of spawns, channels, a Mutex and timers; exits 0
//   tools_child serve         debug::serve(":0"), prints the bound address, parks a goroutine
//                             named "parked for curl" in gort_serve_parked_here(); exits 0
//                             when stdin reaches end of file
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include <gort/gort.hpp>

namespace {

int parked_count(const char* reason) {
  std::ostringstream os;
  gort::debug::write_goroutines(os, 2);
  const std::string s = os.str();
  const std::string pat = std::string("[") + reason + "]";
  int n = 0;
  for (std::size_t p = s.find(pat); p != std::string::npos; p = s.find(pat, p + 1)) ++n;
  return n;
}

int trace_mode(int n) {
  return gort::run(
      [n] {
        std::atomic<long> sum{0};
        gort::WaitGroup wg;
        for (int i = 0; i < n; ++i) {
          wg.go([&sum, &wg, i] {
            // A ping-pong through a child: two parks and two unparks per goroutine. The child
            // joins the WaitGroup too: main's return abandons goroutines still running (as in
            // Go), and LeakSanitizer would report the channels an abandoned child holds.
            auto ping = gort::make_chan<int>();
            auto pong = gort::make_chan<int>();
            wg.go([ping, pong] { pong.send(*ping.recv() + 1); });
            ping.send(i);
            sum += *pong.recv();
            if (i % 16 == 0) gort::blocking([] { ::usleep(100); });  // a syscall hand-off candidate
          });
        }
        wg.wait();
        const long want = long(n) * (n - 1) / 2 + n;
        if (sum.load() != want) {
          std::fprintf(stderr, "tools_child: sum %ld, want %ld\n", sum.load(), want);
          return 1;
        }
        return 0;
      },
      gort::Config{.maxprocs = 2});
}

// Main and one goroutine ping-pong n times: a long trace from two goroutines, so that each
// M's buffer fills and spills to the side file many times.
int trace_long_mode(int n) {
  return gort::run(
      [n] {
        auto ping = gort::make_chan<int>();
        auto pong = gort::make_chan<int>();
        gort::WaitGroup wg;
        wg.go([ping, pong] {
          for (int v : ping) pong.send(v + 1);
        });
        long sum = 0;
        for (int i = 0; i < n; ++i) {
          ping.send(i);
          sum += *pong.recv();
        }
        ping.close();
        wg.wait();
        if (sum != long(n) * (n + 1) / 2) {
          std::fprintf(stderr, "tools_child: sum %ld, want %ld\n", sum, long(n) * (n + 1) / 2);
          return 1;
        }
        return 0;
      },
      gort::Config{.maxprocs = 2});
}

int schedtrace_mode() {
  return gort::run(
      [] {
        std::atomic<bool> stop{false};
        gort::WaitGroup wg;
        for (int i = 0; i < 4; ++i) {
          wg.go([&stop] {
            while (!stop.load()) gort::sleep(std::chrono::microseconds(200));
          });
        }
        // The parent closes our stdin once it has read the lines it wants.
        char buf[64];
        while (gort::blocking([&] { return ::read(0, buf, sizeof buf); }) > 0) {}
        stop = true;
        wg.wait();
        return 0;
      },
      gort::Config{.maxprocs = 2});
}

}  // namespace

// The function gdb must find at the top of the parked goroutines' stacks (exported, so it
// is named even without debug info).
extern "C" [[gnu::noinline]] void gort_gdb_parked_here(gort::chan<int> c) {
  c.recv();
  asm volatile("" ::: "memory");  // not a tail call: keep this frame on the stack
}

namespace {

int gdb_mode() {
  return gort::run([] {
    auto c = gort::make_chan<int>();
    for (int i = 0; i < 3; ++i) gort::go([c] { gort_gdb_parked_here(c); });
    while (parked_count("chan receive") < 3) gort::yield();
    raise(SIGTRAP);  // gdb stops here; outside gdb this ends the process
    return 0;
  }, gort::Config{.maxprocs = 1});  // one P: ids 2, 3, 4 from its batch (tools_test.py names them)
}

int valgrind_mode() {
  return gort::run(
      [] {
        gort::WaitGroup wg;
        gort::Mutex mu;
        long total = 0;
        auto c = gort::make_chan<int>(4);
        for (int i = 0; i < 50; ++i) {
          wg.go([&, i] {
            gort::sleep(std::chrono::microseconds(100));
            c.send(i);
            std::lock_guard<gort::Mutex> l(mu);
            total += i;
          });
        }
        long got = 0;
        for (int i = 0; i < 50; ++i) got += *c.recv();
        wg.wait();
        return got == 49 * 50 / 2 && total == got ? 0 : 1;
      },
      gort::Config{.maxprocs = 2});
}

}  // namespace

// Its body differs from gort_gdb_parked_here's, or identical code folding makes them one.
extern "C" [[gnu::noinline]] void gort_serve_parked_here(gort::chan<int> c) {
  c.recv();
  asm volatile("# serve" ::: "memory");
}

namespace {

int serve_mode() {
  return gort::run(
      [] {
        auto c = gort::make_chan<int>();
        gort::WaitGroup wg;  // main waits for it: a goroutine left parked keeps c alive (LSan)
        wg.add(1);
        gort::go(gort::Spawn{"parked for curl"}, [c, &wg] {
          gort_serve_parked_here(c);
          wg.done();
        });
        while (parked_count("chan receive") < 1) gort::yield();
        std::printf("%s\n", gort::debug::serve_addr(":0").c_str());
        std::fflush(stdout);
        char buf[64];
        while (gort::blocking([&] { return ::read(0, buf, sizeof buf); }) > 0) {}
        c.close();
        wg.wait();
        gort::debug::stop_serving();
        return 0;
      },
      gort::Config{.maxprocs = 2});
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "trace") return trace_mode(argc > 2 ? std::atoi(argv[2]) : 1000);
  if (mode == "trace_long") return trace_long_mode(argc > 2 ? std::atoi(argv[2]) : 100000);
  if (mode == "schedtrace") return schedtrace_mode();
  if (mode == "gdb") return gdb_mode();
  if (mode == "valgrind") return valgrind_mode();
  if (mode == "serve") return serve_mode();
  std::fprintf(stderr, "usage: %s trace N | trace_long N | schedtrace | gdb | valgrind | serve\n", argv[0]);
  return 2;
}
