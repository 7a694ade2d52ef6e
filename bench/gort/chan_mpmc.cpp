// chan_mpmc — many-producer many-consumer throughput of one buffered channel.
//
// Usage: gort_chan_mpmc <maxprocs> [N=10000000] [producers=4] [consumers=4] [cap=128]
// P producers each send N/P items into one channel of capacity `cap`; C consumers range
// over it, each summing locally and adding to an atomic once. main waits for the producers,
// closes the channel, waits for the consumers. Metric: ns per item (total time / items).
// Fair with bench/go/chan_mpmc: the same goroutines, WaitGroups and close sequence.
#include <gort/gort.hpp>

#include <atomic>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 2));
  const long n = bench::arg(argc, argv, 2, 10000000);
  const long producers = bench::arg(argc, argv, 3, 4);
  const long consumers = bench::arg(argc, argv, 4, 4);
  const long cap = bench::arg(argc, argv, 5, 128);
  return gort::run(
      [=] {
        const long per = n / producers;
        const long items = per * producers;
        auto ch = gort::make_chan<long>(std::size_t(cap));
        std::atomic<long> total{0};
        gort::WaitGroup sent, received;
        const auto t0 = bench::now();
        received.add(consumers);
        for (long c = 0; c < consumers; ++c) {
          gort::go([ch, &total, &received] {
            long sum = 0;
            for (long v : ch) sum += v;
            total.fetch_add(sum);
            received.done();
          });
        }
        sent.add(producers);
        for (long p = 0; p < producers; ++p) {
          gort::go([ch, &sent, per] {
            for (long i = 0; i < per; ++i) ch.send(i);
            sent.done();
          });
        }
        sent.wait();
        ch.close();
        received.wait();
        const double ns = bench::ns_since(t0);
        bench::check(total.load() == producers * (per * (per - 1) / 2), "received values");
        bench::result(ns / double(items), "ns", "ns_per_item");
      },
      gort::Config{.maxprocs = procs});
}
