// Worker pools, as Go by Example teaches them: a jobs channel, N workers reading from it, a
// results channel, and a goroutine that closes results once every worker has returned — so
// main can simply range over results:
//
//   go func() { wg.Wait(); close(results) }()
//   for r := range results { ... }
//
// Checks that every job was done exactly once, with the right result.
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

#include "examples.hpp"

namespace {

using namespace std::chrono_literals;

struct Result {
  int job;
  int worker;
  long value;
};

// Go: func worker(id int, jobs <-chan int, results chan<- Result)
void worker(int id, gort::recv_chan<int> jobs, gort::send_chan<Result> results) {
  for (int j : jobs) {   // until jobs is closed and drained
    gort::sleep(1ms);    // the job takes a while: the goroutine parks, its thread runs others
    results.send({j, id, long(j) * j});
  }
}

}  // namespace

int examples::worker_pool() {
  constexpr int kJobs = 100, kWorkers = 4;
  const auto t0 = std::chrono::steady_clock::now();

  auto jobs = gort::make_chan<int>();
  auto results = gort::make_chan<Result>();

  gort::WaitGroup wg;
  for (int w = 1; w <= kWorkers; ++w) wg.go([=] { worker(w, jobs, results); });

  gort::go([jobs] {  // the producer: sends the jobs, then closes the channel
    for (int j = 1; j <= kJobs; ++j) jobs.send(j);
    jobs.close();
  });

  gort::go([&wg, results] {  // go func() { wg.Wait(); close(results) }()
    wg.wait();
    results.close();
  });

  std::vector<int> times_done(kJobs + 1, 0);
  std::vector<int> per_worker(kWorkers + 1, 0);
  long sum = 0;
  bool values_ok = true;
  for (Result r : results) {  // for r := range results
    ++times_done[r.job];
    ++per_worker[r.worker];
    sum += r.value;
    values_ok = values_ok && r.value == long(r.job) * r.job;
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  bool each_once = true;
  for (int j = 1; j <= kJobs; ++j) each_once = each_once && times_done[j] == 1;
  const long want = long(kJobs) * (kJobs + 1) * (2 * kJobs + 1) / 6;
  std::printf("%d workers did %d jobs of ~1 ms each in %.0f ms; results closed once every worker was done\n",
              kWorkers, kJobs, ms);
  std::printf("each job done exactly once: %s; sum of the squares %ld (want %ld)\n", each_once ? "yes" : "NO", sum,
              want);
  if (!each_once || !values_ok || sum != want) {
    std::printf("worker_pool: WRONG RESULT\n");
    return 1;
  }
  return 0;
}

#ifndef GORT_TOUR
int main() {
  return gort::run([] { return examples::worker_pool(); });
}
#endif
