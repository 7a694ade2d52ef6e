// chan_pingpong (Boost.Fiber) — round trip through two unbuffered channels.
//
// Usage: boost_chan_pingpong <procs> [N=1000000]
// As bench/gort/chan_pingpong.cpp, with boost::fibers::unbuffered_channel: the main fiber
// pushes i on `ping`, an echo fiber pops it and pushes it back on `pong`.
#include "boost_common.hpp"
#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 1000000);
  bench::run_fibers(procs, [n] {
    boost::fibers::unbuffered_channel<long> ping, pong;
    boost::fibers::fiber echo([&ping, &pong] {
      for (long v : ping) pong.push(v);
    });
    long sum = 0;
    const auto t0 = bench::now();
    for (long i = 0; i < n; ++i) {
      ping.push(i);
      sum += pong.value_pop();
    }
    const double ns = bench::ns_since(t0);
    ping.close();
    echo.join();
    bench::check(sum == n * (n - 1) / 2, "echoed values");
    bench::result(ns / double(n), "ns", "ns_per_roundtrip");
  });
}
