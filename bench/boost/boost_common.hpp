// bench/boost/boost_common.hpp — running Boost.Fiber programs on 1 or N threads, and a
// WaitGroup built from fiber primitives (Boost.Fiber has none).
#pragma once
#include <boost/fiber/all.hpp>

#include <atomic>
#include <barrier>
#include <mutex>
#include <thread>
#include <vector>

namespace bench {

// Runs fn() on the calling thread's main fiber. With procs > 1, procs threads (this one
// included) share fibers through Boost's work_stealing scheduler, the closest analogue of
// gort/Go processors; idle threads sleep on a condition variable (suspend = true) rather
// than spin. With procs == 1 the default round_robin scheduler runs everything here.
template <class F>
void run_fibers(int procs, F fn) {
  namespace fibers = boost::fibers;
  if (procs <= 1) {
    fn();
    return;
  }
  fibers::mutex mu;
  fibers::condition_variable cv;
  bool done = false;
  // Every thread must have registered its scheduler before any fiber can be stolen.
  std::barrier registered(procs);
  std::vector<std::thread> threads;
  for (int i = 1; i < procs; ++i) {
    threads.emplace_back([&] {
      fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(procs, true);
      registered.arrive_and_wait();
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return done; });  // runs stolen fibers meanwhile
    });
  }
  fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(procs, true);
  registered.arrive_and_wait();
  fn();
  {
    std::lock_guard lk(mu);
    done = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
}

// Go's sync.WaitGroup for fibers (on any thread).
class WaitGroup {
 public:
  void add(long n) { count_.fetch_add(n); }
  void done() {
    if (count_.fetch_sub(1) == 1) {
      std::lock_guard lk(mu_);
      cv_.notify_all();
    }
  }
  void wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return count_.load() == 0; });
  }

 private:
  std::atomic<long> count_{0};
  boost::fibers::mutex mu_;
  boost::fibers::condition_variable cv_;
};

}  // namespace bench
