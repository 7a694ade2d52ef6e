// chan_pingpong — round-trip latency through two unbuffered channels.
//
// Usage: gort_chan_pingpong <maxprocs> [N=1000000]
// main sends i on `ping`; an echo goroutine receives it and sends it back on `pong`; main
// receives it. Every send rendezvouses with a parked receiver, so each round trip is two
// handoffs and two wakeups. Metric: ns per round trip. Fair with bench/go/chan_pingpong:
// the same two `chan int`s, the echo goroutine a `for v := range ping` loop.
#include <gort/gort.hpp>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 1000000);
  return gort::run(
      [n] {
        auto ping = gort::make_chan<long>();
        auto pong = gort::make_chan<long>();
        gort::go([ping, pong] {
          for (long v : ping) pong.send(v);
        });
        long sum = 0;
        const auto t0 = bench::now();
        for (long i = 0; i < n; ++i) {
          ping.send(i);
          sum += *pong.recv();
        }
        const double ns = bench::ns_since(t0);
        ping.close();
        bench::check(sum == n * (n - 1) / 2, "echoed values");
        bench::result(ns / double(n), "ns", "ns_per_roundtrip");
      },
      gort::Config{.maxprocs = procs});
}
