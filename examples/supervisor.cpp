// "The first error cancels all others": errgroup with a context. Workers loop, waiting each
// step on their ticker or on the group's context; one of them fails with an error code; the
// Group cancels its context, the other workers see ctx.done() closed and return, and wait()
// returns the first error. The parent context is not canceled: cancellation flows down.
//
//   g, ctx := errgroup.WithContext(parent)
//   g.Go(func() error {
//       for {
//           select {
//           case <-ticker.C:   // one more step of work
//           case <-ctx.Done(): return nil
//           }
//       }
//   })
//   err := g.Wait()
//
// Checks that wait() returned the failing worker's error and that every other worker stopped
// because the context was canceled.
#include <gort/gort.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>

#include "examples.hpp"

namespace {
using namespace std::chrono_literals;
}  // namespace

int examples::supervisor() {
  constexpr int kWorkers = 4, kFailing = 3, kFailAtStep = 5;
  auto [parent, cancel_parent] = gort::with_cancel(gort::background());  // e.g. the server's own context
  gort::Group g(parent);

  std::array<std::string, kWorkers + 1> why{};  // each worker's own slot; read after wait()
  std::array<int, kWorkers + 1> steps{};
  for (int id = 1; id <= kWorkers; ++id) {
    g.go([&g, &why, &steps, id]() -> std::error_code {
      const gort::Context& ctx = g.context();
      gort::Ticker ticker(1ms);  // stopped when it goes out of scope
      for (;;) {
        bool canceled = false;
        gort::select(gort::recv_case(ticker.c, [&] { ++steps[id]; }),
                     gort::recv_case(ctx.done(), [&] { canceled = true; }));
        if (canceled) {
          why[id] = "stopped: " + ctx.err().message();
          return {};  // not a failure: we were asked to stop
        }
        if (id == kFailing && steps[id] == kFailAtStep) {
          auto err = std::make_error_code(std::errc::io_error);
          why[id] = "failed: " + err.message();
          return err;  // the first failure: the group cancels its context
        }
      }
    });
  }
  const std::error_code err = g.wait();

  bool ok = err == std::errc::io_error && g.context().err() == gort::errc::canceled && !parent.err();
  for (int id = 1; id <= kWorkers; ++id) {
    std::printf("worker %d %s\n", id, why[id].c_str());
    ok = ok && why[id] == (id == kFailing ? "failed: " + err.message() : std::string("stopped: context canceled"));
  }
  std::printf("wait() returned the first error: %s; the group's context: %s; the parent's: %s\n",
              err.message().c_str(), g.context().err().message().c_str(), parent.err() ? "canceled" : "live");
  cancel_parent();
  if (!ok) std::printf("supervisor: WRONG RESULT\n");
  return ok ? 0 : 1;
}

#ifndef GORT_TOUR
int main() {
  return gort::run([] { return examples::supervisor(); });
}
#endif
