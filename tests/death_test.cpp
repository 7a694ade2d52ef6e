// Failures: panics (uncaught exceptions), stack overflow under every guard kind, misuse.
#include <cstdlib>
#include <cstring>

#include "test_util.hpp"

// Outside the anonymous namespace: without libdw (cross builds) only exported names show.
[[gnu::noinline]] void throw_boom() { throw std::runtime_error("boom"); }

namespace {

// The runtime starts threads; "threadsafe" death tests re-execute the binary instead of
// forking a multithreaded process. Under qemu-user (cross builds) a guest binary cannot be
// re-executed, so there they fork: each death statement starts its own runtime anyway.
class DeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if GORT_DEATH_TESTS_FORK
    GTEST_FLAG_SET(death_test_style, "fast");
#else
    GTEST_FLAG_SET(death_test_style, "threadsafe");
#endif
  }
};
using Panic = DeathTest;
using StackOverflow = DeathTest;
using Misuse = DeathTest;

TEST_F(Panic, UncaughtExceptionInGoroutinePrintsPanicAndExits2) {
  EXPECT_EXIT(gort::run([] {
                gort::go([] { throw_boom(); });
                for (;;) gort::yield();
              }),
              ::testing::ExitedWithCode(2),
              "panic: std::runtime_error: boom\n\ngoroutine [0-9]+ \\[running\\]:\n.*throw_boom");
}

TEST_F(Panic, UncaughtExceptionInMainPanicsAsGoroutineOne) {
  EXPECT_EXIT(gort::run([] { throw gort::panic_error("send on closed channel"); }), ::testing::ExitedWithCode(2),
              "panic: gort::panic_error: send on closed channel\n\ngoroutine 1 \\[running\\]:");
}

TEST_F(Panic, RecoveredInsideTheGoroutineIsNotAPanic) {
  EXPECT_EQ(gort::run([] {
              std::atomic<int> recovered{0};
              gort::WaitGroup wg;
              wg.go([&] {
                try {
                  throw_boom();
                } catch (const std::runtime_error&) {
                  recovered = 1;
                }
              });
              wg.wait();
              return recovered.load();
            }),
            1);
}

TEST_F(Panic, TracebackAllAddsOtherGoroutines) {
  EXPECT_EXIT(
      {
        setenv("GORT_TRACEBACK", "all", 1);
        gort::run([] {
          gort::WaitGroup never;
          never.add(1);
          gort::go(gort::Spawn{"bystander"}, [&] { never.wait(); });
          gort::yield();
          throw_boom();
        });
      },
      ::testing::ExitedWithCode(2), "goroutine 1 \\[running\\]:(.|\n)*goroutine 2 \\[sync.WaitGroup.Wait\\] \"bystander\"");
}

[[gnu::noinline]] int recurse_forever(int depth) {
  volatile char pad[512];
  pad[0] = char(depth);
  return recurse_forever(depth + 1) + pad[0];
}

void overflow_in_goroutine() {
  gort::run([] {
    gort::WaitGroup wg;
    wg.go([] { recurse_forever(0); });
    wg.wait();
  });
}

TEST_F(StackOverflow, KernelGuardIsAFatalErrorNamingTheGoroutine) {
  EXPECT_EXIT(overflow_in_goroutine(), ::testing::ExitedWithCode(2),
              "fatal error: stack overflow(.|\n)*goroutine 2 \\[running\\]");
}

TEST_F(StackOverflow, MprotectGuardIsAFatalError) {
  EXPECT_EXIT(
      {
        setenv("GORT_STACK_GUARD", "mprotect", 1);
        overflow_in_goroutine();
      },
      ::testing::ExitedWithCode(2), "fatal error: stack overflow(.|\n)*goroutine 2 \\[running\\]");
}

// Past the guard budget stacks carry a canary, checked when the goroutine switches away.
// Not in the TSan build: there the child sometimes reports "failed to die" after printing
// the report and calling _exit(2) under parallel ctest (TSan intercepts _exit); open
// problem, tracked in the session note. Release, ASan and arm64 run it.
#if !defined(__SANITIZE_THREAD__)
TEST_F(StackOverflow, CanaryIsCheckedAtTheNextSwitch) {
  EXPECT_EXIT(
      {
        setenv("GORT_STACK_GUARD", "canary", 1);
        gort::run([] {
          gort::WaitGroup wg;
          wg.add(1);
          gort::go(gort::Spawn{"smasher", 64 * 1024}, [&] {
            // A little larger than the 64 KiB stack: it covers the canary at the stack's
            // lowest word and ends inside the (unprotected) guard gap below it, so only the
            // canary check at the next switch can notice. Every byte, so the canary is hit.
            volatile char big[64 * 1024 + 512];
            for (std::size_t i = 0; i < sizeof big; ++i) big[i] = 1;  // volatile: not elided
            gort::yield();
            wg.done();
          });
          wg.wait();
        });
      },
      ::testing::ExitedWithCode(2), "fatal error: stack overflow");
}
#endif

TEST_F(Misuse, NegativeWaitGroupCounterPanics) {
  gort::run([] {
    gort::WaitGroup wg;
    EXPECT_THROW(wg.done(), gort::panic_error);
  });
}

TEST_F(Misuse, UnlockOfUnlockedMutexIsFatal) {
  EXPECT_EXIT(gort::run([] {
                gort::Mutex m;
                m.unlock();
              }),
              ::testing::ExitedWithCode(2), "fatal error: sync: unlock of unlocked mutex");
}

}  // namespace
