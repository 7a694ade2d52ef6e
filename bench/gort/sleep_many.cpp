// sleep_many — timer scalability and accuracy: many goroutines sleeping at once.
//
// Usage: gort_sleep_many <maxprocs=2> [goroutines=100000] [rounds=10] [sleep_ms=10] [listen=0]
// Each goroutine sleeps `sleep_ms` `rounds` times, timing each sleep with steady_clock and
// storing the overshoot (actual - requested) in its own slots of a shared array.
// Metrics: total_ms (start of spawning to the last goroutine done; ideal: rounds*sleep_ms)
// and overshoot_us, the median overshoot over all sleeps. Fair with bench/go/sleep_many:
// time.Sleep and time.Since (monotonic) in the same loop, the same median. Both also print
// (not as RESULT) percentiles and the share of sleeps under 3 µs late. With listen=1 a
// goroutine waits in accept on a loopback listener throughout, so an idle thread waits for
// the next timer in the netpoller (Go's always does).
#include <gort/gort.hpp>
#include <gort/net.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 2));
  const long gs = bench::arg(argc, argv, 2, 100000);
  const long rounds = bench::arg(argc, argv, 3, 10);
  const long sleep_ms = bench::arg(argc, argv, 4, 10);
  const bool listen = bench::arg(argc, argv, 5, 0) != 0;
  return gort::run(
      [=] {
        gort::net::Listener ln;
        if (listen) {
          ln = gort::net::listen("tcp", "127.0.0.1:0");
          gort::go([&ln] {
            std::error_code ec;
            (void)ln.accept(ec);  // until closed below
          });
        }
        std::vector<double> over_us(std::size_t(gs * rounds));
        gort::WaitGroup wg;
        const auto d = std::chrono::milliseconds(sleep_ms);
        const auto t0 = bench::now();
        wg.add(gs);
        for (long g = 0; g < gs; ++g) {
          gort::go([&over_us, &wg, d, g, rounds] {
            for (long r = 0; r < rounds; ++r) {
              const auto s = bench::now();
              gort::sleep(d);
              const auto slept = std::chrono::duration<double, std::micro>(bench::now() - s);
              over_us[std::size_t(g * rounds + r)] = (slept - d).count();
            }
            wg.done();
          });
        }
        wg.wait();
        const double ms = bench::ms_since(t0);
        if (listen) ln.close();
        std::sort(over_us.begin(), over_us.end());  // outside the timed part, as Go's
        bench::result(ms, "ms", "total_ms");
        bench::result(over_us[over_us.size() / 2], "us", "overshoot_us");
        // Not compared, for reading the median: it sits where the wakes that ran at once
        // (a little over 1 µs late) give way to those that waited behind others.
        const auto under_3us = std::lower_bound(over_us.begin(), over_us.end(), 3.0) - over_us.begin();
        std::printf("overshoot us: p05 %.2f p25 %.2f p50 %.2f p75 %.2f p90 %.1f; under 3 us: %.1f%%\n",
                    over_us[over_us.size() / 20], over_us[over_us.size() / 4], over_us[over_us.size() / 2],
                    over_us[over_us.size() * 3 / 4], over_us[over_us.size() * 9 / 10],
                    100.0 * double(under_3us) / double(over_us.size()));
      },
      gort::Config{.maxprocs = procs});
}
