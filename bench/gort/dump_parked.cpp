// dump_parked — how long a goroutine dump takes with many goroutines parked.
//
// Usage: gort_dump_parked <maxprocs> [N=100000]
// Starts N goroutines parked in a channel receive, from three different functions (so the
// level-1 profile has three groups), then times gort::debug::write_goroutines into a
// string: level 1 (identical stacks grouped, Go's pprof debug=1) and then level 2 (every
// goroutine, debug=2). Each dump is the process's first at its level, as a user's would be.
// Metrics: dump1_ms, dump2_ms. Checked: the level-1 header counts all N (plus main).
// Fair with bench/go/dump_parked: the same goroutines, pprof.Lookup("goroutine").WriteTo.
#include <gort/gort.hpp>

#include <sstream>
#include <string>

#include "common.hpp"

namespace {

[[gnu::noinline]] void park_a(gort::chan<int> gate) { (void)gate.recv(); }
[[gnu::noinline]] void park_b(gort::chan<int> gate) { (void)gate.recv(); }
[[gnu::noinline]] void park_c(gort::chan<int> gate) { (void)gate.recv(); }

}  // namespace

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 2));
  const long n = bench::arg(argc, argv, 2, 100000);
  return gort::run(
      [n] {
        auto gate = gort::make_chan<int>();
        gort::WaitGroup started, finished;
        started.add(n);
        finished.add(n);
        for (long i = 0; i < n; ++i) {
          gort::go([gate, i, &started, &finished] {
            started.done();
            if (i % 3 == 0) park_a(gate);
            else if (i % 3 == 1) park_b(gate);
            else park_c(gate);
            finished.done();
          });
        }
        started.wait();

        std::ostringstream level1;
        auto t0 = bench::now();
        gort::debug::write_goroutines(level1, 1);
        const double dump1_ms = bench::ms_since(t0);
        const std::string header = "goroutine profile: total " + std::to_string(n + 1) + "\n";
        bench::check(level1.str().rfind(header, 0) == 0, "the level-1 dump counts every goroutine");

        std::ostringstream level2;
        t0 = bench::now();
        gort::debug::write_goroutines(level2, 2);
        const double dump2_ms = bench::ms_since(t0);
        bench::check(level2.str().size() > std::size_t(n) * 40, "the level-2 dump lists every goroutine");

        gate.close();
        finished.wait();
        bench::result(dump1_ms, "ms", "dump1_ms");
        bench::result(dump2_ms, "ms", "dump2_ms");
      },
      gort::Config{.maxprocs = procs});
}
