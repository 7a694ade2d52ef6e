// The runtime's DekkerLock, white-box: it unlocks with a plain store until a thread sleeps
// on it, then with an exchange, and goes back to stores after kUnfenceAfter unlocks in a
// row found no sleeper. Each round here drives it through that whole cycle: threads that
// outnumber the CPUs contend, holders yield the CPU while holding (so waiters give up
// spinning and sleep, and the lock fences), then one thread takes it alone long enough to
// unfence it. A lost wakeup leaves a thread asleep with the lock free: the watchdog fails
// the test instead of letting it hang. The counter the lock guards must come out exact.
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sched/futex.hpp"

namespace {

using gort::sched::DekkerLock;

TEST(DekkerLock, FencesWhenSleptOnAndUnfencesAfterAQuietStretchLosingNoWakeup) {
  gort::sched::init_heavy_barrier();  // as the runtime does at start: store unlocks on
  constexpr int kThreads = 4, kRounds = 30, kPerThread = 2000;
  DekkerLock lock;
  long counter = 0;  // guarded by lock
  int rounds_fenced = 0, rounds_unfenced = 0;

  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> l(done_mu);
    if (!done_cv.wait_for(l, std::chrono::seconds(240), [&] { return done; })) {
      std::fprintf(stderr, "DekkerLock test: no progress in 240 s, a waiter lost its wakeup\n");
      std::abort();
    }
  });

  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kPerThread; ++i) {
          lock.lock();
          ++counter;
          if (i % 50 == 0) sched_yield();  // holding: the others spin out and sleep
          lock.unlock();
        }
      });
    }
    for (auto& th : threads) th.join();
    rounds_fenced += lock.fenced();
    for (std::uint32_t i = 0; i <= DekkerLock::kUnfenceAfter; ++i) {
      lock.lock();
      ++counter;
      lock.unlock();
    }
    rounds_unfenced += !lock.fenced();
  }
  {
    std::lock_guard<std::mutex> l(done_mu);
    done = true;
  }
  done_cv.notify_one();
  watchdog.join();

  EXPECT_EQ(counter, long(kRounds) * (kThreads * kPerThread + DekkerLock::kUnfenceAfter + 1));
  EXPECT_EQ(rounds_unfenced, kRounds) << "a quiet stretch must take the lock back to store unlocks";
  EXPECT_GT(rounds_fenced, 0) << "no round made a thread sleep on the lock: the fenced side went untested";
}

}  // namespace
