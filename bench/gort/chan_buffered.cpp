// chan_buffered — single-producer single-consumer throughput of a buffered channel.
//
// Usage: gort_chan_buffered <maxprocs> [N=10000000] [cap=128]
// A producer goroutine sends 0..N-1 into a channel of capacity `cap` and closes it; main
// receives until closed. Metric: ns per item (total time / N). Fair with
// bench/go/chan_buffered: `make(chan int, 128)`, a send loop and `for v := range ch`.
#include <gort/gort.hpp>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 10000000);
  const long cap = bench::arg(argc, argv, 3, 128);
  return gort::run(
      [n, cap] {
        auto ch = gort::make_chan<long>(std::size_t(cap));
        const auto t0 = bench::now();
        gort::go([ch, n] {
          for (long i = 0; i < n; ++i) ch.send(i);
          ch.close();
        });
        long sum = 0;
        for (long v : ch) sum += v;
        const double ns = bench::ns_since(t0);
        bench::check(sum == n * (n - 1) / 2, "received values");
        bench::result(ns / double(n), "ns", "ns_per_item");
      },
      gort::Config{.maxprocs = procs});
}
