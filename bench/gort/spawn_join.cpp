// spawn_join — the cost of creating, scheduling and finishing N trivial goroutines.
//
// Usage: gort_spawn_join <maxprocs> [N=1000000]
// The main goroutine starts N goroutines that each add their index to an atomic and call
// WaitGroup::done, then waits. Metric: wall time from the first go() to wait() returning.
// Fair with bench/go/spawn_join: same counts, one wg.Add(N) up front, the same per-goroutine
// work (an atomic add and a Done), the closure capturing the same three things.
#include <gort/gort.hpp>

#include <atomic>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 1000000);
  return gort::run(
      [n] {
        std::atomic<long> sum{0};
        gort::WaitGroup wg;
        const auto t0 = bench::now();
        wg.add(n);
        for (long i = 0; i < n; ++i) {
          gort::go([&sum, &wg, i] {
            sum.fetch_add(i, std::memory_order_relaxed);
            wg.done();
          });
        }
        wg.wait();
        const double ms = bench::ms_since(t0);
        bench::check(sum.load() == n * (n - 1) / 2, "sum of indices");
        bench::result(ms, "ms", "total_ms");
      },
      gort::Config{.maxprocs = procs});
}
