// yield_pingpong (Boost.Fiber) — one fiber switch through boost::this_fiber::yield().
//
// Usage: boost_yield_pingpong <procs=1> [N=1000000]
// As bench/gort/yield_pingpong.cpp: two fibers each yield N times on one thread while the
// main fiber is blocked joining them. Metric: total time / (2N) switches.
#include "boost_common.hpp"
#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 1000000);
  bench::run_fibers(procs, [n] {
    auto body = [n] {
      for (long i = 0; i < n; ++i) boost::this_fiber::yield();
    };
    const auto t0 = bench::now();
    boost::fibers::fiber a(body), b(body);
    a.join();
    b.join();
    bench::result(bench::ns_since(t0) / (2.0 * double(n)), "ns", "ns_per_switch");
  });
}
