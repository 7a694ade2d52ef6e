// fib — fork/join parallelism: recursive fib(n) that spawns a goroutine per call above a cutoff.
//
// Usage: gort_fib <maxprocs> [n=32] [cutoff=8]
// fib(k) for k >= cutoff runs fib(k-1) in a new goroutine, computes fib(k-2) itself and joins
// through a WaitGroup; below the cutoff it recurses serially. fib(32) with cutoff 8 spawns
// 196,417 goroutines. Metric: total ms. Fair with bench/go/fib: identical recursion, cutoff
// and join (a WaitGroup on the caller's frame, the result written through a captured reference).
// Note: the serial leaves are compiled by g++ vs the Go compiler; the low cutoff keeps them small.
#include <gort/gort.hpp>

#include "common.hpp"

static long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

static long fib(int n, int cutoff) {
  if (n < cutoff || n < 2) return fib_serial(n);
  long a = 0;
  gort::WaitGroup wg;
  wg.add(1);
  gort::go([&a, &wg, n, cutoff] {
    a = fib(n - 1, cutoff);
    wg.done();
  });
  const long b = fib(n - 2, cutoff);
  wg.wait();
  return a + b;
}

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const int n = int(bench::arg(argc, argv, 2, 32));
  const int cutoff = int(bench::arg(argc, argv, 3, 8));
  return gort::run(
      [n, cutoff] {
        const auto t0 = bench::now();
        const long r = fib(n, cutoff);
        const double ms = bench::ms_since(t0);
        bench::check(r == fib_serial(n), "fib value");
        bench::result(ms, "ms", "total_ms");
      },
      gort::Config{.maxprocs = procs});
}
