// The sanitizer builds really see goroutines: a data race between two goroutines that
// share one thread is reported by TSan, and a use of a returned goroutine frame by ASan
// (whose fake stacks must survive every switch). Built only in the matching build.
#include <cstdlib>

#include "test_util.hpp"

namespace {

class Sanitizer : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

#if defined(__SANITIZE_THREAD__)
TEST_F(Sanitizer, DataRaceBetweenGoroutinesOnOneThreadIsReported) {
  EXPECT_EXIT(
      {
        gort::Config cfg;
        cfg.maxprocs = 1;
        gort::run(
            [] {
              int shared = 0;  // deliberately unsynchronized
              gort::WaitGroup wg;
              wg.go([&] { shared = 1; });
              wg.go([&] {
                gort::yield();  // let the writer run first; yield synchronizes nothing
                volatile int seen = shared;
                (void)seen;
              });
              wg.wait();
            },
            cfg);
        std::exit(0);
      },
      ::testing::ExitedWithCode(66), "WARNING: ThreadSanitizer: data race");
}

TEST_F(Sanitizer, ChannelLikeHandOffThroughWaitGroupIsNotARace) {
  gort::testing::run_test([] {
    int shared = 0;
    gort::WaitGroup wg;
    wg.go([&] { shared = 42; });
    wg.wait();  // done() happens before wait() returns
    EXPECT_EQ(shared, 42);
  }, 1);
}
#endif

#if defined(__SANITIZE_ADDRESS__)
[[gnu::noinline]] int* escape_local() {
  int local = 7;
  int* volatile p = &local;
  return p;
}

TEST_F(Sanitizer, UseAfterReturnInAGoroutineIsReported) {
  EXPECT_DEATH(gort::run([] {
                 gort::WaitGroup wg;
                 wg.go([] {
                   int* p = escape_local();
                   gort::yield();  // the fake stack must survive the switch
                   std::printf("%d\n", *p);
                 });
                 wg.wait();
               }),
               "stack-use-after-return");
}

TEST_F(Sanitizer, ManySwitchesWithFakeStacksAreClean) {
  gort::testing::run_test([] {
    std::atomic<int> sum{0};
    gort::WaitGroup wg;
    for (int g = 0; g < 100; ++g) {
      wg.go([&] {
        int local[16] = {};
        for (int i = 0; i < 50; ++i) {
          local[i % 16] += i;
          gort::yield();
        }
        sum += local[0];
      });
    }
    wg.wait();
    EXPECT_EQ(sum.load(), 100 * (0 + 16 + 32 + 48));
  }, 2);
}
#endif

}  // namespace
