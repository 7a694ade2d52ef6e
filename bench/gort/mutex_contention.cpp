// mutex_contention — gort::Mutex lock/unlock under contention.
//
// Usage: gort_mutex_contention <maxprocs=2> [ops=1000000] [goroutines=8]
// `goroutines` goroutines each lock, increment a shared counter and unlock ops/goroutines
// times. Metric: ns per lock/unlock pair (total time / ops). Fair with
// bench/go/mutex_contention: sync.Mutex, the same counter, Lock/Unlock around counter++.
#include <gort/gort.hpp>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 2));
  const long ops = bench::arg(argc, argv, 2, 1000000);
  const long gs = bench::arg(argc, argv, 3, 8);
  return gort::run(
      [ops, gs] {
        const long per = ops / gs;
        gort::Mutex mu;
        long counter = 0;
        gort::WaitGroup wg;
        const auto t0 = bench::now();
        wg.add(gs);
        for (long g = 0; g < gs; ++g) {
          gort::go([&mu, &counter, &wg, per] {
            for (long i = 0; i < per; ++i) {
              mu.lock();
              ++counter;
              mu.unlock();
            }
            wg.done();
          });
        }
        wg.wait();
        const double ns = bench::ns_since(t0);
        bench::check(counter == per * gs, "counter");
        bench::result(ns / double(per * gs), "ns", "ns_per_op");
      },
      gort::Config{.maxprocs = procs});
}
