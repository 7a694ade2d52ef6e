// preempt_latency — how late a sleeper wakes while another goroutine spins without ever
// calling into the runtime (Go 1.14's promise: tight loops do not starve the others).
//
// Usage: gort_preempt_latency <maxprocs=1> [samples=200] [sleep_ms=1]
// A goroutine spins on a relaxed atomic; main sleeps `sleep_ms` `samples` times and records
// each lateness (actual - requested). Metrics: p50_us and p99_us of the lateness. Fair with
// bench/go/preempt_latency: the same loop with time.Sleep and an atomic.LoadInt32 spin.
#include <gort/gort.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long samples = bench::arg(argc, argv, 2, 200);
  const long sleep_ms = bench::arg(argc, argv, 3, 1);
  return gort::run(
      [=] {
        std::atomic<int> stop{0};
        gort::WaitGroup wg;
        for (int i = 0; i < procs; ++i) {  // one spinner per P: every P is taken
          wg.go([&stop] {
            while (stop.load(std::memory_order_relaxed) == 0) {}
          });
        }
        std::vector<double> late_us(static_cast<std::size_t>(samples));
        const auto d = std::chrono::milliseconds(sleep_ms);
        for (long i = 0; i < samples; ++i) {
          const auto s = bench::now();
          gort::sleep(d);
          late_us[std::size_t(i)] = std::chrono::duration<double, std::micro>(bench::now() - s - d).count();
        }
        stop.store(1);
        wg.wait();
        std::sort(late_us.begin(), late_us.end());
        bench::result(late_us[late_us.size() / 2], "us", "p50_us");
        bench::result(late_us[std::min(late_us.size() - 1, late_us.size() * 99 / 100)], "us", "p99_us");
      },
      gort::Config{.maxprocs = procs});
}
