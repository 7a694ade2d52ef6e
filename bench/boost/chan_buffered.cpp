// chan_buffered (Boost.Fiber) — SPSC throughput of a buffered channel.
//
// Usage: boost_chan_buffered <procs> [N=10000000] [cap=128]
// As bench/gort/chan_buffered.cpp, with boost::fibers::buffered_channel (its capacity must
// be a power of two and it holds capacity-1 items). A producer fiber pushes 0..N-1 and
// closes; the main fiber pops until closed.
#include "boost_common.hpp"
#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 10000000);
  const long cap = bench::arg(argc, argv, 3, 128);
  bench::run_fibers(procs, [n, cap] {
    boost::fibers::buffered_channel<long> ch{static_cast<std::size_t>(cap)};
    const auto t0 = bench::now();
    boost::fibers::fiber producer([&ch, n] {
      for (long i = 0; i < n; ++i) ch.push(i);
      ch.close();
    });
    long sum = 0;
    for (long v : ch) sum += v;
    const double ns = bench::ns_since(t0);
    producer.join();
    bench::check(sum == n * (n - 1) / 2, "received values");
    bench::result(ns / double(n), "ns", "ns_per_item");
  });
}
