// spawn_join (Boost.Fiber) — create, schedule and finish N trivial fibers.
//
// Usage: boost_spawn_join <procs> [N=1000000]
// As bench/gort/spawn_join.cpp: N detached fibers each add to an atomic and call done() on a
// WaitGroup (an atomic counter + fiber condition variable) that the main fiber waits on.
// Boost.Fiber stacks are fixed-size: 16 KiB each from malloc (fixedsize_stack), a fair size
// for a trivial body (Go starts goroutines at 2 KiB and grows them; gort reserves address
// space and commits on touch). procs > 1 uses the work_stealing scheduler.
#include <atomic>

#include "boost_common.hpp"
#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 1000000);
  bench::run_fibers(procs, [n] {
    std::atomic<long> sum{0};
    bench::WaitGroup wg;
    boost::fibers::fixedsize_stack stacks(16 * 1024);
    const auto t0 = bench::now();
    wg.add(n);
    for (long i = 0; i < n; ++i) {
      boost::fibers::fiber(std::allocator_arg, stacks, [&sum, &wg, i] {
        sum.fetch_add(i, std::memory_order_relaxed);
        wg.done();
      }).detach();
    }
    wg.wait();
    const double ms = bench::ms_since(t0);
    bench::check(sum.load() == n * (n - 1) / 2, "sum of indices");
    bench::result(ms, "ms", "total_ms");
  });
}
