// parked — memory per parked goroutine and the time to get a million of them parked.
//
// Usage: gort_parked <maxprocs> [N=1000000]
// Starts N goroutines that each call parked.done() and then block in gate.wait() on a
// WaitGroup that main holds at 1. When parked.wait() returns all N exist and (up to the
// last few, still on their way into wait()) are blocked.
// Metrics: rss_per_g = (RSS now - RSS before spawning) / N in KiB, RSS read from
// /proc/self/statm; create_ms = time until all are parked; total_ms = that plus opening
// the gate and joining all N through a third WaitGroup. No sleeps, no polling.
// Fair with bench/go/parked: the same three sync.WaitGroups, RSS read the same way.
#include <gort/gort.hpp>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 2));
  const long n = bench::arg(argc, argv, 2, 1000000);
  return gort::run(
      [n] {
        gort::WaitGroup parked, gate, finished;
        gate.add(1);
        const long base = bench::rss_bytes();
        const auto t0 = bench::now();
        parked.add(n);
        finished.add(n);
        for (long i = 0; i < n; ++i) {
          gort::go([&parked, &gate, &finished] {
            parked.done();
            gate.wait();  // blocks until main opens the gate
            finished.done();
          });
        }
        parked.wait();
        const double create_ms = bench::ms_since(t0);
        const long rss = bench::rss_bytes();
        gate.done();
        finished.wait();
        const double total_ms = bench::ms_since(t0);
        bench::result(double(rss - base) / 1024.0 / double(n), "KiB", "rss_per_g");
        bench::result(create_ms, "ms", "create_ms");
        bench::result(total_ms, "ms", "total_ms");
      },
      gort::Config{.maxprocs = procs});
}
