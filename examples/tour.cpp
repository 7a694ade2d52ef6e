// The gort tour: what Go's documentation teaches about goroutines, run in C++.
// `make demo` builds it in Release and runs it.
#include <gort/gort.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

long rss_kib() {
  std::ifstream f("/proc/self/statm");
  long size = 0, resident = 0;
  f >> size >> resident;
  return resident * 4;
}

void burn(int n) {
  for (int i = 0; i < n; ++i) asm volatile("" ::: "memory");
}

void section(const char* title) { std::printf("\n== %s\n", title); }

// 1 goroutine, then 16 on 8 processors: count how many ever run at the same time.
void parallelism() {
  section("goroutines run in parallel, at most maxprocs at once");
  gort::WaitGroup one;
  one.go([] { std::printf("hello from goroutine %lld\n", static_cast<long long>(gort::goroutine_id())); });
  one.wait();

  std::atomic<int> running{0}, peak{0};
  gort::WaitGroup wg;
  for (int i = 0; i < 16; ++i) {
    wg.go([&] {
      int now = running.fetch_add(1) + 1;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {}
      burn(20'000'000);  // ~10 ms of work that never yields
      running.fetch_sub(1);
    });
  }
  wg.wait();
  std::printf("16 goroutines on maxprocs %d: at most %d ran at once (limit %d, CPUs here %d)\n", gort::maxprocs(),
              peak.load(), gort::maxprocs(), gort::num_cpu());
}

// A million goroutines, started and joined.
void million() {
  section("a million goroutines");
  const long before = rss_kib();
  const auto t0 = Clock::now();
  std::atomic<long> sum{0};
  gort::WaitGroup wg;
  for (int i = 0; i < 1'000'000; ++i) wg.go([&sum, i] { sum.fetch_add(i, std::memory_order_relaxed); });
  wg.wait();
  std::printf("started and joined 1,000,000 goroutines in %.0f ms (sum %ld); memory grew %ld KiB\n", ms_since(t0),
              sum.load(), rss_kib() - before);

  // Now many that all exist at once, each parked on a WaitGroup. (100,000 here: on a virtual
  // machine every new stack page costs a ~10 µs first-touch fault; `make bench` parks 1M.)
  const long before_parked = rss_kib();
  const auto t1 = Clock::now();
  gort::WaitGroup parked, gate, done;
  gate.add(1);
  const int n = 100'000;
  parked.add(n);
  done.add(n);
  for (int i = 0; i < n; ++i) {
    gort::go([&] {
      parked.done();
      gate.wait();
      done.done();
    });
  }
  parked.wait();
  const long per_g = (rss_kib() - before_parked) * 1024 / n;
  std::printf("%d goroutines parked at once after %.0f ms: %ld bytes each, %lld alive\n", n, ms_since(t1), per_g,
              static_cast<long long>(gort::num_goroutine()));
  gate.done();
  done.wait();
}

// Work stealing: one goroutine queues work on its own processor; idle ones steal it.
void stealing() {
  section("work stealing");
  auto before = gort::debug::stats();
  std::atomic<int> finished{0};
  gort::WaitGroup wg;
  for (int i = 0; i < 200; ++i) {
    wg.go([&] {
      burn(200'000);
      finished.fetch_add(1);
    });
  }
  wg.wait();
  auto after = gort::debug::stats();
  std::printf("200 goroutines queued on one processor finished; %llu steals moved %llu goroutines to idle ones\n",
              static_cast<unsigned long long>(after.steals - before.steals),
              static_cast<unsigned long long>(after.stolen_goroutines - before.stolen_goroutines));
  std::printf("threads %lld, processors %lld, context switches so far %llu\n", static_cast<long long>(after.threads),
              static_cast<long long>(after.procs), static_cast<unsigned long long>(after.context_switches));
}

// recover: catch inside the goroutine. (An exception that escapes a goroutine is a panic:
// the program prints "panic: ..." with the goroutine's stack and exits with status 2.)
void recovered_panic() {
  section("a panic recovered inside its goroutine");
  gort::WaitGroup wg;
  wg.go([] {
    try {
      throw std::runtime_error("something went wrong in goroutine " + std::to_string(gort::goroutine_id()));
    } catch (const std::exception& e) {
      std::printf("recovered: %s\n", e.what());
    }
  });
  wg.wait();
  gort::WaitGroup misuse;
  try {
    misuse.done();
  } catch (const gort::panic_error& e) {
    std::printf("recovered Go's panic for a negative counter: %s\n", e.what());
  }
}

// What every goroutine is doing: plant a leak and dump it, as SIGQUIT would in Go.
void dump_a_leak() {
  section("goroutine dump of a planted leak");
  static gort::WaitGroup never;  // nobody will ever call done(): a leak
  never.add(1);
  gort::go(gort::Spawn{"leaky-worker"}, [] { never.wait(); });
  gort::yield();
  try {
    gort::testing::verify_none(std::chrono::milliseconds(50));
  } catch (const gort::testing::leak_error& e) {
    std::cout << e.what();
  }
  never.done();
  gort::testing::verify_none();  // the worker now returns
}

}  // namespace

int main() {
  gort::Config cfg;
  cfg.maxprocs = 8;
  return gort::run(
      [] {
        std::printf("gort tour: goroutine %lld is main, on %d processors\n",
                    static_cast<long long>(gort::goroutine_id()), gort::maxprocs());
        parallelism();
        million();
        stealing();
        recovered_panic();
        dump_a_leak();
        std::printf("\ntour done: %lld goroutine(s) left\n", static_cast<long long>(gort::num_goroutine()));
      },
      cfg);
}
