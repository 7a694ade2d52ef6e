// yield_pingpong — the cost of one goroutine switch through gort::yield().
//
// Usage: gort_yield_pingpong <maxprocs=1> [N=1000000]
// Two goroutines each call yield() N times on one processor, so control alternates between
// them; main waits on a WaitGroup (parked, not runnable). Metric: total time / (2N) switches.
// Fair with bench/go/yield_pingpong: runtime.Gosched() in a loop, GOMAXPROCS=1, same N.
#include <gort/gort.hpp>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 1000000);
  return gort::run(
      [n] {
        gort::WaitGroup wg;
        const auto t0 = bench::now();
        wg.add(2);
        for (int k = 0; k < 2; ++k) {
          gort::go([&wg, n] {
            for (long i = 0; i < n; ++i) gort::yield();
            wg.done();
          });
        }
        wg.wait();
        bench::result(bench::ns_since(t0) / (2.0 * double(n)), "ns", "ns_per_switch");
      },
      gort::Config{.maxprocs = procs});
}
