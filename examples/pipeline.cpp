// Pipelines and cancellation, after the Go blog's "Go Concurrency Patterns: Pipelines and
// cancellation": generate -> square (fan-out: several goroutines read one channel) -> merge
// (fan-in: one channel carries all their outputs). main takes the first few values, then
// cancels the Context; every stage sees ctx.done() closed while sending, closes its output
// and returns, so nothing leaks:
//
//   select {
//   case out <- v:
//   case <-ctx.Done():
//       return
//   }
//
// Checks the values taken, that the context reports canceled, and that after waiting for the
// stages (a WaitGroup, not sleeps) num_goroutine() is back where it started.
#include <gort/gort.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>
#include <vector>

#include "examples.hpp"

namespace {

// Sends v on out unless ctx is canceled first; false if it was.
bool send(const gort::Context& ctx, const gort::send_chan<int>& out, int v) {
  return gort::select(gort::send_case(out, v), gort::recv_case(ctx.done())) == 0;
}

// Stage 1: sends 1, 2, 3, ... until canceled, then closes its output.
gort::recv_chan<int> generate(gort::WaitGroup& stages, const gort::Context& ctx) {
  auto out = gort::make_chan<int>();
  stages.go([ctx, out] {
    for (int i = 1; send(ctx, out, i); ++i) {}
    out.close();
  });
  return out;
}

// Stage 2: squares what it receives, until its input is closed or ctx is canceled.
gort::recv_chan<int> square(gort::WaitGroup& stages, const gort::Context& ctx, gort::recv_chan<int> in) {
  auto out = gort::make_chan<int>();
  stages.go([ctx, in, out] {
    for (int v : in) {
      if (!send(ctx, out, v * v)) break;
    }
    out.close();
  });
  return out;
}

// Stage 3: fan-in. A goroutine per input copies it to out; a last one closes out when they
// are all done. Their WaitGroup is shared: it must outlive merge() (Go's closure captures it).
gort::recv_chan<int> merge(gort::WaitGroup& stages, const gort::Context& ctx,
                           const std::vector<gort::recv_chan<int>>& inputs) {
  auto out = gort::make_chan<int>();
  auto copiers = std::make_shared<gort::WaitGroup>();
  for (const auto& in : inputs) {
    copiers->go([ctx, in, out] {
      for (int v : in) {
        if (!send(ctx, out, v)) break;
      }
    });
  }
  stages.go([copiers, out] {  // go func() { wg.Wait(); close(out) }()
    copiers->wait();
    out.close();
  });
  return out;
}

}  // namespace

int examples::pipeline() {
  constexpr int kSquarers = 3, kTake = 5;
  const std::int64_t before = gort::num_goroutine();
  auto [ctx, cancel] = gort::with_cancel(gort::background());

  // Every stage goroutine is joined through `stages` (the copiers through merge's closer).
  gort::WaitGroup stages;
  auto nums = generate(stages, ctx);
  std::vector<gort::recv_chan<int>> squares;
  for (int i = 0; i < kSquarers; ++i) squares.push_back(square(stages, ctx, nums));  // fan-out
  gort::recv_chan<int> out = merge(stages, ctx, squares);                           // fan-in
  const std::int64_t running = gort::num_goroutine() - before;

  std::vector<int> got;
  for (int i = 0; i < kTake; ++i) got.push_back(*out.recv());
  cancel();       // the stages are still sending: each sees ctx.done() closed and returns
  stages.wait();  // ...and the last one closed the merged channel

  // A goroutine still counts for a moment after its WaitGroup's done(), until it returns
  // (as in Go): give the last ones that moment, but no more than a second.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (gort::num_goroutine() > before && std::chrono::steady_clock::now() < give_up) {
    gort::sleep(std::chrono::microseconds(50));
  }
  const std::int64_t after = gort::num_goroutine() - before;

  std::printf("%lld stage goroutines (1 generator, %d squarers, %d copiers, 1 closer) fed main %d values\n",
              static_cast<long long>(running), kSquarers, kSquarers, kTake);
  std::printf("main canceled the context (%s); after waiting for the stages, %lld of them are left\n",
              ctx.err().message().c_str(), static_cast<long long>(after));

  // The values arrive in no fixed order, but each is the square of a distinct number.
  std::set<int> roots;
  for (int v : got) {
    int r = static_cast<int>(std::lround(std::sqrt(double(v))));
    if (r * r == v) roots.insert(r);
  }
  bool closed = !out.recv().has_value();
  if (running != 2 + 2 * kSquarers || roots.size() != std::size_t(kTake) || ctx.err() != gort::errc::canceled ||
      after != 0 || !closed) {
    std::printf("pipeline: WRONG RESULT\n");
    return 1;
  }
  return 0;
}

#ifndef GORT_TOUR
int main() {
  return gort::run([] { return examples::pipeline(); });
}
#endif
