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
// Accesses TSan does not instrument: neither a race nor a synchronization to it.
__attribute__((no_sanitize("thread"), noinline)) bool unseen_load(volatile bool* b) { return *b; }
__attribute__((no_sanitize("thread"), noinline)) void unseen_store(volatile bool* b) { *b = true; }

TEST_F(Sanitizer, DataRaceBetweenGoroutinesOnOneThreadIsReported) {
  EXPECT_EXIT(
      {
        gort::Config cfg;
        cfg.maxprocs = 1;
        gort::run(
            [] {
              int shared = 0;  // deliberately unsynchronized
              // Flags TSan does not see order the two without a happens-before edge: the
              // writer waits until the reader has started (so they are two live goroutines,
              // not one reusing the other's G and stack, which does synchronize), the
              // reader until the write is done.
              volatile bool reader_started = false, written = false;
              gort::WaitGroup wg;
              wg.go([&] {
                while (!unseen_load(&reader_started)) gort::yield();
                shared = 1;
                unseen_store(&written);
              });
              wg.go([&] {
                unseen_store(&reader_started);
                while (!unseen_load(&written)) gort::yield();  // yield synchronizes nothing
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
