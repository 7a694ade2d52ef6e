// Failures: panics (uncaught exceptions), stack overflow under every guard kind, misuse,
// deadlock, SIGQUIT.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>

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
using Deadlock = DeathTest;
using Sigquit = DeathTest;

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

// Symbolizing (libdw's first look at a line table alone needs more than 64 KiB of stack)
// runs on the thread's stack: a goroutine with a small stack still reports its panic, and
// can dump every goroutine, instead of overflowing in the middle of the report.
TEST_F(Panic, ReportedInFullFromASmallStack) {
  EXPECT_EXIT(gort::run([] {
                gort::go(gort::Spawn{"small", 32 * 1024}, [] { throw_boom(); });
                for (;;) gort::yield();
              }),
              ::testing::ExitedWithCode(2),
              "panic: std::runtime_error: boom\n\ngoroutine [0-9]+ \\[running\\] \"small\":\n.*throw_boom");
}

TEST_F(Panic, GoroutinesDumpedFromASmallStack) {
  EXPECT_EXIT(
      {
        gort::run([] {
          gort::WaitGroup wg;
          wg.add(1);
          gort::go(gort::Spawn{"small", 32 * 1024}, [&wg] {
            while (gort_test::count_parked("sync.WaitGroup.Wait") < 1) gort::yield();  // main
            std::ostringstream os;
            gort::debug::write_goroutines(os, 2);
            std::fputs(os.str().c_str(), stderr);
            wg.done();
          });
          wg.wait();
        });
        std::exit(7);
      },
      ::testing::ExitedWithCode(7), "goroutine 1 \\[sync.WaitGroup.Wait\\]:\n(.|\n)*goroutine [0-9]+ \\[running\\] \"small\":\n");
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

TEST_F(Misuse, ChannelMisusePanicsWithGosMessages) {
  gort::run([] {
    gort::chan<int> nil;
    auto c = gort::make_chan<int>(1);
    c.close();
    try {
      c.send(1);
      ADD_FAILURE() << "send on a closed channel did not throw";
    } catch (const gort::panic_error& e) {
      EXPECT_STREQ(e.what(), "send on closed channel");
    }
    try {
      c.close();
      ADD_FAILURE() << "close of a closed channel did not throw";
    } catch (const gort::panic_error& e) {
      EXPECT_STREQ(e.what(), "close of closed channel");
    }
    try {
      nil.close();
      ADD_FAILURE() << "close of the nil channel did not throw";
    } catch (const gort::panic_error& e) {
      EXPECT_STREQ(e.what(), "close of nil channel");
    }
  });
}

TEST_F(Misuse, UncaughtSendOnClosedChannelIsAPanic) {
  EXPECT_EXIT(gort::run([] {
                auto c = gort::make_chan<int>();
                c.close();
                c.send(1);
              }),
              ::testing::ExitedWithCode(2), "panic: gort::panic_error: send on closed channel\n\ngoroutine 1 \\[running\\]:");
}

// ---- global deadlock detection ----------------------------------------------------------

constexpr const char* kDeadlock = "fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 \\[";

TEST_F(Deadlock, EveryGoroutineBlockedOnChannelsIsFatal) {
  EXPECT_EXIT(gort::run([] {
                auto c = gort::make_chan<int>();
                for (int i = 0; i < 3; ++i) gort::go([c] { c.recv(); });
                c.recv();
              }),
              ::testing::ExitedWithCode(2), std::string(kDeadlock) + "chan receive\\]:");
}

TEST_F(Deadlock, EmptySelectInMainIsFatal) {
  EXPECT_EXIT(gort::run([] { gort::select(); }), ::testing::ExitedWithCode(2),
              std::string(kDeadlock) + "select \\(no cases\\)\\]:");
}

TEST_F(Deadlock, LockingAHeldMutexAgainIsFatal) {
  EXPECT_EXIT(gort::run([] {
                gort::Mutex m;
                m.lock();
                m.lock();
              }),
              ::testing::ExitedWithCode(2), std::string(kDeadlock) + "sync.Mutex.Lock\\]:");
}

TEST_F(Deadlock, DetectedAtEveryMaxprocs) {
  for (int procs : {1, 2, 8}) {
    EXPECT_EXIT(gort::run(
                    [] {
                      gort::WaitGroup wg;
                      wg.add(1);
                      gort::go([] { gort::make_chan<int>().send(1); });
                      wg.wait();
                    },
                    gort::Config{.maxprocs = procs}),
                ::testing::ExitedWithCode(2), std::string(kDeadlock) + "sync.WaitGroup.Wait\\]:");
  }
}

TEST_F(Deadlock, APlainThreadBlockedOnAChannelCannotWakeAnyone) {
  EXPECT_EXIT(gort::run([] {
                auto c = gort::make_chan<int>();
                auto never = gort::make_chan<int>();
                std::thread t([never] { never.recv(); });
                t.detach();
                c.recv();
              }),
              ::testing::ExitedWithCode(2), std::string(kDeadlock) + "chan receive\\]:");
}

// Never a false positive: each of these has every goroutine blocked for a while, with
// something outside the goroutines that will wake one.
int exit_code_of(int got, int want) { return got == want ? 0 : 1; }

TEST_F(Deadlock, NotReportedWhileATimerIsPending) {
  EXPECT_EXIT(std::exit(exit_code_of(gort::run([] {
                auto c = gort::make_chan<int>();
                gort::go([c] {
                  gort::sleep(std::chrono::milliseconds(50));
                  c.send(7);
                });
                auto t = gort::after(std::chrono::milliseconds(30));
                t.recv();
                return *c.recv();
              }), 7)),
              ::testing::ExitedWithCode(0), "");
}

TEST_F(Deadlock, NotReportedWhileAPlainThreadCanStillSend) {
  EXPECT_EXIT(std::exit(exit_code_of(gort::run([] {
                auto c = gort::make_chan<int>();
                std::thread t([c] {
                  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the thing under test: a slow outsider
                  c.send(5);
                });
                int v = *c.recv();
                gort::blocking([&] { t.join(); });
                return v;
              }), 5)),
              ::testing::ExitedWithCode(0), "");
}

TEST_F(Deadlock, NotReportedWhileABlockingCallIsInFlight) {
  EXPECT_EXIT(std::exit(exit_code_of(gort::run([] {
                auto c = gort::make_chan<int>();
                gort::go([c] {
                  int v = gort::blocking([] {
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                    return 9;
                  });
                  c.send(v);
                });
                return *c.recv();
              }), 9)),
              ::testing::ExitedWithCode(0), "");
}

// ---- SIGQUIT -----------------------------------------------------------------------------

// Parks a receiver and a locker, waits until the dump shows both parked, then sends itself
// SIGQUIT with `quit`. Main then sleeps: with a timer pending, no deadlock report can stand
// in for the SIGQUIT dump.
template <class Quit>
void parked_then_quit(Quit quit) {
  gort::run([quit] {
    auto c = gort::make_chan<int>();
    static gort::Mutex mu;
    mu.lock();
    gort::go(gort::Spawn{"receiver"}, [c] { c.recv(); });
    gort::go(gort::Spawn{"locker"}, [] { mu.lock(); });
    while (gort_test::count_parked("chan receive") < 1 || gort_test::count_parked("sync.Mutex.Lock") < 1) gort::yield();
    quit();
    for (;;) gort::sleep(std::chrono::hours(1));
  });
}

// The two are found by name: ids come from per-P batches of 16 (Go's goidcache), so when
// main moves to another P between the two spawns (a preemption, seen under qemu) the
// locker's id comes from a new batch (18, not 3).
constexpr const char* kQuitDump =
    "SIGQUIT: quit\nPC=0x[0-9a-f]+ m=-?[0-9]+ sigcode=-?[0-9]+\n\n(.|\n)*"
    "goroutine [0-9]+ \\[chan receive\\] \"receiver\":\n(.|\n)*goroutine [0-9]+ \\[sync.Mutex.Lock\\] \"locker\":\n";

TEST_F(Sigquit, FromAGoroutineDumpsEveryGoroutineAndExits2) {
  EXPECT_EXIT(parked_then_quit([] { raise(SIGQUIT); }), ::testing::ExitedWithCode(2), kQuitDump);
}

// A process-directed SIGQUIT (kill -QUIT) from a plain thread, as a user at a terminal sends.
TEST_F(Sigquit, FromOutsideDumpsEveryGoroutineAndExits2) {
  EXPECT_EXIT(parked_then_quit([] { std::thread([] { kill(getpid(), SIGQUIT); }).detach(); }),
              ::testing::ExitedWithCode(2), kQuitDump);
}

// Not in the TSan build: TSan runs an asynchronous signal's handler only once the receiving
// thread enters a call it intercepts, and the spinner below never does, so its sample
// never comes (docs/debugging.md). Release, ASan and arm64 run it.
#if !defined(__SANITIZE_THREAD__)
}  // namespace

// A goroutine running on another thread when SIGQUIT comes is sampled: it is listed
// running, with its frames (its M walks them when signalled), not "stack unavailable".
// (Outside the anonymous namespace: without libdw, dumps name only
// exported functions.)
[[gnu::noinline]] void spin_forever(std::atomic<bool>& spinning) {
  spinning = true;
  for (;;) asm volatile("" ::: "memory");
}

namespace {

TEST_F(Sigquit, ShowsTheFramesOfAGoroutineRunningOnAnotherThread) {
  EXPECT_EXIT(gort::run(
                  [] {
                    static std::atomic<bool> spinning{false};
                    gort::go(gort::Spawn{"spinner"}, [] { spin_forever(spinning); });
                    while (!spinning) gort::yield();
                    raise(SIGQUIT);
                    for (;;) gort::sleep(std::chrono::hours(1));
                  },
                  gort::Config{.maxprocs = 2}),
              ::testing::ExitedWithCode(2), "goroutine 2 \\[running\\] \"spinner\":\n[^\n]*spin_forever");
}
#endif  // !__SANITIZE_THREAD__

}  // namespace
