// select4 — a blocking select over four receive cases.
//
// Usage: gort_select4 <maxprocs> [N=1000000]
// Four sender goroutines each send N/4 values on their own unbuffered channel; main runs
// N selects over the four receive cases. Metric: ns per select (total time / N).
// Fair with bench/go/select4: a four-case `select { case v := <-c0: ... }` in a loop.
#include <gort/gort.hpp>

#include <optional>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long n = bench::arg(argc, argv, 2, 1000000);
  return gort::run(
      [n] {
        const long per = n / 4;
        const long total = per * 4;
        gort::chan<long> c[4] = {gort::make_chan<long>(), gort::make_chan<long>(),
                                 gort::make_chan<long>(), gort::make_chan<long>()};
        const auto t0 = bench::now();
        for (auto& ch : c) {
          gort::go([ch, per] {
            for (long i = 0; i < per; ++i) ch.send(i);
          });
        }
        long sum = 0;
        auto add = [&sum](std::optional<long> v) { sum += *v; };
        for (long i = 0; i < total; ++i) {
          gort::select(gort::recv_case(c[0], add), gort::recv_case(c[1], add),
                       gort::recv_case(c[2], add), gort::recv_case(c[3], add));
        }
        const double ns = bench::ns_since(t0);
        bench::check(sum == 4 * (per * (per - 1) / 2), "received values");
        bench::result(ns / double(total), "ns", "ns_per_select");
      },
      gort::Config{.maxprocs = procs});
}
