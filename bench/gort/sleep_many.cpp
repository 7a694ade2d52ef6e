// sleep_many — timer scalability and accuracy: many goroutines sleeping at once.
//
// Usage: gort_sleep_many <maxprocs=2> [goroutines=100000] [rounds=10] [sleep_ms=10]
// Each goroutine sleeps `sleep_ms` `rounds` times, timing each sleep with steady_clock and
// storing the overshoot (actual - requested) in its own slots of a shared array.
// Metrics: total_ms (start of spawning to the last goroutine done; ideal: rounds*sleep_ms)
// and overshoot_us, the median overshoot over all sleeps. Fair with bench/go/sleep_many:
// time.Sleep and time.Since (monotonic) in the same loop, the same median.
#include <gort/gort.hpp>

#include <algorithm>
#include <chrono>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 2));
  const long gs = bench::arg(argc, argv, 2, 100000);
  const long rounds = bench::arg(argc, argv, 3, 10);
  const long sleep_ms = bench::arg(argc, argv, 4, 10);
  return gort::run(
      [=] {
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
        auto mid = over_us.begin() + std::ptrdiff_t(over_us.size() / 2);
        std::nth_element(over_us.begin(), mid, over_us.end());
        bench::result(ms, "ms", "total_ms");
        bench::result(*mid, "us", "overshoot_us");
      },
      gort::Config{.maxprocs = procs});
}
