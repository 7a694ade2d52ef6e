// Sync: Mutex (with Go's starvation mode), RWMutex (writer preference), WaitGroup, Once,
// Cond and the weighted Semaphore, over maxprocs 1, 2 and 8, from goroutines and from
// plain OS threads. Where a test needs "goroutine X is now blocked", it reads the goroutine
// dump (an event wait on the runtime's own state), never a sleep.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gort/context.hpp>
#include <gort/debug.hpp>
#include <gort/sync.hpp>
#include <gort/time.hpp>

#include "test_util.hpp"

using namespace std::chrono_literals;
using gort_test::panic_message;
using gort_test::burn_cpu;
using gort_test::scaled;

namespace {

// Goroutine counts: creating a goroutine costs milliseconds under TSan (a fiber each), so
// tests that spawn many shrink twice as much there.
constexpr int spawn_scaled(int n) { return scaled(scaled(n)); }

class Mutexes : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Mutexes);
class RWMutexes : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(RWMutexes);
class WaitGroups : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(WaitGroups);
class Onces : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Onces);
class Conds : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Conds);
class Semaphores : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Semaphores);
class ForeignThreads : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(ForeignThreads);

// A watchdog for the event waits below: a broken primitive fails the test instead of hanging
// it. Generous, since it only matters when something is wrong.
constexpr auto kHangGuard = 60s;

using gort_test::count_parked;

// Yields until pred() holds; false (and a test failure) if the watchdog runs out first.
template <class P>
bool yield_until(P&& pred, const char* what = "condition") {
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "timed out waiting for " << what;
      return false;
    }
    gort::yield();
  }
  return true;
}

// Yields until at least n goroutines are parked as `reason`.
bool wait_parked(const std::string& reason, int n) {
  return yield_until([&] { return count_parked(reason) >= n; }, reason.c_str());
}

void join_all(std::vector<std::thread>& ts) {
  gort::blocking([&] {
    for (auto& t : ts) t.join();
  });
}

// ---- Mutex -------------------------------------------------------------------------------

TEST_P(Mutexes, ContendedPlainCounterIsExact) {
  run([] {
    const int gs = 16, each = scaled(50000);
    gort::Mutex mu;
    long counter = 0;  // plain: only the Mutex orders the accesses
    gort::WaitGroup wg;
    for (int g = 0; g < gs; ++g) {
      wg.go([&] {
        for (int i = 0; i < each; ++i) {
          mu.lock();
          const long v = counter;
          if (i % 32 == 0) gort::yield();  // sometimes hold it across a reschedule
          counter = v + 1;
          mu.unlock();
        }
      });
    }
    wg.wait();
    EXPECT_EQ(counter, long(gs) * each);
  });
}

TEST_P(Mutexes, LockGuardUniqueLockAndScopedLockOverTwoMutexes) {
  run([] {
    const int gs = 8, each = scaled(8000);
    gort::Mutex a, b;
    long ca = 0, cb = 0, both = 0;  // ca guarded by a, cb by b, both by a and b
    gort::WaitGroup wg;
    for (int g = 0; g < gs; ++g) {
      wg.go([&, g] {
        for (int i = 0; i < each; ++i) {
          switch ((g + i) % 4) {
            case 0: {
              std::lock_guard l(a);
              ++ca;
              break;
            }
            case 1: {
              std::unique_lock l(b);
              ++cb;
              l.unlock();
              EXPECT_FALSE(l.owns_lock());
              l.lock();
              ++cb;
              break;
            }
            case 2: {
              std::scoped_lock l(a, b);
              ++ca, ++cb, ++both;
              break;
            }
            default: {  // the opposite order: std::lock must not deadlock against case 2
              std::scoped_lock l(b, a);
              ++ca, ++cb, ++both;
              if (i % 16 == 3) gort::yield();
              break;
            }
          }
        }
      });
    }
    wg.wait();
    long ea = 0, eb = 0, eboth = 0;
    for (int g = 0; g < gs; ++g) {
      for (int i = 0; i < each; ++i) {
        const int k = (g + i) % 4;
        ea += (k == 0) + (k >= 2);
        eb += 2 * (k == 1) + (k >= 2);
        eboth += (k >= 2);
      }
    }
    EXPECT_EQ(ca, ea);
    EXPECT_EQ(cb, eb);
    EXPECT_EQ(both, eboth);
    EXPECT_TRUE(a.try_lock());
    EXPECT_TRUE(b.try_lock());
    a.unlock();
    b.unlock();
  });
}

TEST_P(Mutexes, TryLockFailsWhileHeldAndSucceedsWhenFree) {
  run([] {
    gort::Mutex mu;
    EXPECT_TRUE(mu.try_lock());
    EXPECT_FALSE(mu.try_lock());  // not recursive
    std::atomic<int> other{-1};
    gort::WaitGroup wg;
    wg.go([&] { other = mu.try_lock() ? 1 : 0; });
    wg.wait();
    EXPECT_EQ(other.load(), 0);
    mu.unlock();
    // As in Go, a Mutex is not tied to a goroutine: another one may lock and unlock it.
    wg.go([&] {
      other = mu.try_lock() ? 1 : 0;
      if (other == 1) mu.unlock();
    });
    wg.wait();
    EXPECT_EQ(other.load(), 1);
    {
      std::unique_lock l(mu, std::try_to_lock);
      EXPECT_TRUE(l.owns_lock());
      std::unique_lock l2(mu, std::try_to_lock);
      EXPECT_FALSE(l2.owns_lock());
    }
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
}

TEST_P(Mutexes, LockBlocksUntilUnlock) {
  run([] {
    gort::Mutex mu;
    int shared = 0;  // plain: written by main before unlock, read by the waiter after lock
    std::atomic<bool> acquired{false};
    mu.lock();
    gort::WaitGroup wg;
    wg.go([&] {
      mu.lock();
      acquired = true;
      EXPECT_EQ(shared, 1);
      mu.unlock();
    });
    ASSERT_TRUE(wait_parked("sync.Mutex.Lock", 1));
    EXPECT_FALSE(acquired.load());
    shared = 1;
    mu.unlock();
    wg.wait();
    EXPECT_TRUE(acquired.load());
  });
}

// Go's TestMutexFairness: one goroutine holds the lock nearly all the time (100 µs holds,
// relocking right after each unlock); another wants it 10 times. In normal mode the woken
// waiter keeps losing the race to the relock; once it has waited over 1 ms the Mutex
// switches to starvation mode and unlock hands it the lock. The hog is bounded by rounds,
// not time: the waiter must be done long before the hog runs out of them.
TEST_P(Mutexes, StarvationModeHandsTheLockToAnOldWaiter) {
  run([] {
    gort::Mutex mu;
    std::atomic<bool> stop{false};
    std::atomic<int> hog_rounds{0}, got{0};
    const int bound = 5000;  // starvation mode needs ~10 hog rounds per acquisition
    gort::WaitGroup wg;
    wg.go([&] {
      for (int i = 0; i < bound && !stop.load(); ++i) {
        mu.lock();
        gort::sleep(100us);  // the hold time, not a synchronization
        mu.unlock();
        hog_rounds.fetch_add(1);
      }
    });
    wg.go([&] {
      for (int i = 0; i < 10; ++i) {
        gort::sleep(100us);
        mu.lock();
        got.fetch_add(1);
        mu.unlock();
      }
      stop = true;
    });
    wg.wait();
    EXPECT_EQ(got.load(), 10);
    EXPECT_LT(hog_rounds.load(), bound) << "the waiter got the lock only after the hog gave up";
  });
}

// Two Mutexes used as binary semaphores (Go allows unlocking from another goroutine) pass a
// baton back and forth: every lock blocks, and the unlock that wakes it often lands while
// the blocked goroutine is still on its way to parking (the semaphore releases its lock
// before the park, and the two agree through a handshake). The plain counters check that
// each side sees the other's writes, and TSan checks that the handshake orders them.
TEST_P(Mutexes, BatonPassedThroughUnlockFromAnotherGoroutine) {
  run([] {
    gort::Mutex ping, pong;
    ping.lock();
    pong.lock();
    long sent = 0, seen = 0;
    const long rounds = scaled(20'000);
    gort::WaitGroup wg;
    wg.go([&] {
      for (long i = 0; i < rounds; ++i) {
        ping.lock();  // main unlocks it
        EXPECT_EQ(sent, i + 1);
        seen = sent;
        pong.unlock();
      }
    });
    for (long i = 0; i < rounds; ++i) {
      sent = i + 1;
      ping.unlock();
      pong.lock();  // the worker unlocks it
      EXPECT_EQ(seen, i + 1);
    }
    wg.wait();
    pong.unlock();
    EXPECT_EQ(seen, rounds);
  });
}


// The same with a CPU-bound hog that never parks: it relocks within nanoseconds of each
// unlock. (With one P the hog must yield now and then for the waiter to run at all.) The
// waiter is started by a channel, not a yield loop: a goroutine that yields behind a
// goroutine that never enters the scheduler is not picked up by idle Ps (a scheduler
// issue of its own, not this test's subject).
TEST_P(Mutexes, TightLockLoopDoesNotStarveAWaiter) {
  run([] {
    gort::Mutex mu;
    std::atomic<bool> acquired{false};
    std::atomic<long> rounds{0};
    const long bound = scaled(20'000'000);
    const bool one_p = gort::maxprocs() == 1;
    auto started = gort::make_chan<int>();
    gort::WaitGroup wg;
    wg.go([&] {
      for (long i = 0; i < bound && !acquired.load(std::memory_order_relaxed); ++i) {
        if (i == 1000) started.close();
        mu.lock();
        burn_cpu(200);
        mu.unlock();
        rounds.fetch_add(1, std::memory_order_relaxed);
        if (one_p && i % 64 == 0) gort::yield();
      }
    });
    wg.go([&] {
      started.recv();  // compete only once the hog is in its loop
      mu.lock();
      acquired = true;
      mu.unlock();
    });
    wg.wait();
    EXPECT_TRUE(acquired.load());
    EXPECT_LT(rounds.load(), bound) << "the waiter got the lock only after the hog gave up";
  });
}

// ---- RWMutex -----------------------------------------------------------------------------

// Every reader waits inside its read section until all have arrived: that deadlocks unless
// readers really hold the lock together (on any number of Ps).
TEST_P(RWMutexes, ReadersHoldTheLockTogether) {
  run([] {
    gort::RWMutex rw;
    const int readers = 8;
    std::atomic<int> inside{0};
    gort::WaitGroup wg;
    for (int r = 0; r < readers; ++r) {
      wg.go([&, r] {
        std::shared_lock l(rw, std::defer_lock);
        if (r % 2) {
          l.lock();
        } else {
          while (!l.try_lock()) gort::yield();  // try_lock_shared never fails without a writer
        }
        inside.fetch_add(1);
        yield_until([&] { return inside.load() == readers; }, "all readers inside");
        EXPECT_FALSE(rw.try_lock());  // a writer cannot get in meanwhile
      });
    }
    wg.wait();
    EXPECT_EQ(inside.load(), readers);
    EXPECT_TRUE(rw.try_lock());
    rw.unlock();
  });
}

TEST_P(RWMutexes, WriterExcludesReadersAndWriters) {
  run([] {
    gort::RWMutex rw;
    long a = 0, b = 0;  // plain, updated together under the write lock
    std::atomic<int> readers_in{0}, writers_in{0}, violations{0};
    std::atomic<long> reads{0};
    const int writers = 4, readers = 8, each = scaled(5000);
    gort::WaitGroup wg;
    for (int w = 0; w < writers; ++w) {
      wg.go([&] {
        for (int i = 0; i < each; ++i) {
          std::unique_lock l(rw);
          if (writers_in.fetch_add(1) != 0 || readers_in.load() != 0) violations.fetch_add(1);
          ++a;
          if (i % 16 == 0) gort::yield();
          ++b;
          writers_in.fetch_sub(1);
        }
      });
    }
    for (int r = 0; r < readers; ++r) {
      wg.go([&] {
        for (int i = 0; i < each; ++i) {
          std::shared_lock l(rw);
          readers_in.fetch_add(1);
          if (writers_in.load() != 0 || a != b) violations.fetch_add(1);
          if (i % 16 == 0) gort::yield();
          if (a != b) violations.fetch_add(1);
          readers_in.fetch_sub(1);
          reads.fetch_add(1);
        }
      });
    }
    wg.wait();
    EXPECT_EQ(violations.load(), 0);
    EXPECT_EQ(a, long(writers) * each);
    EXPECT_EQ(b, a);
    EXPECT_EQ(reads.load(), long(readers) * each);
  });
}

// Reader R1 holds the lock; writer W blocks in lock(). From then on new readers must wait for
// W: try_lock_shared fails, and lock_shared returns only after W has had and released it.
TEST_P(RWMutexes, WaitingWriterBlocksNewReaders) {
  run([] {
    gort::RWMutex rw;
    std::atomic<int> step{0};
    int writer_at = -1;  // read after wg.wait()
    std::vector<int> reader_at(3, -1);
    rw.lock_shared();  // R1
    gort::WaitGroup wg;
    wg.go([&] {
      rw.lock();
      writer_at = step.fetch_add(1);
      rw.unlock();
    });
    ASSERT_TRUE(wait_parked("sync.RWMutex.Lock", 1));
    const bool sneaked = rw.try_lock_shared();
    EXPECT_FALSE(sneaked) << "a new reader got in ahead of the waiting writer";
    if (sneaked) rw.unlock_shared();
    EXPECT_FALSE(rw.try_lock());
    for (int r = 0; r < 3; ++r) {
      wg.go([&, r] {
        std::shared_lock l(rw);
        reader_at[std::size_t(r)] = step.fetch_add(1);
      });
    }
    ASSERT_TRUE(wait_parked("sync.RWMutex.RLock", 3));
    EXPECT_EQ(step.load(), 0);
    rw.unlock_shared();  // R1 leaves: W first, then every queued reader
    wg.wait();
    EXPECT_EQ(writer_at, 0);
    std::sort(reader_at.begin(), reader_at.end());
    EXPECT_EQ(reader_at, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(rw.try_lock());
    rw.unlock();
  });
}

TEST_P(RWMutexes, TryLocksAgainstEachState) {
  run([] {
    gort::RWMutex rw;
    // Free: both succeed.
    EXPECT_TRUE(rw.try_lock_shared());
    EXPECT_TRUE(rw.try_lock_shared());  // readers share
    EXPECT_FALSE(rw.try_lock());        // read-held
    rw.unlock_shared();
    EXPECT_FALSE(rw.try_lock());  // still one reader
    rw.unlock_shared();
    EXPECT_TRUE(rw.try_lock());
    EXPECT_FALSE(rw.try_lock());         // write-held
    EXPECT_FALSE(rw.try_lock_shared());  // write-held
    std::atomic<int> other{-1};
    gort::WaitGroup wg;
    wg.go([&] { other = int(rw.try_lock_shared()) + 2 * int(rw.try_lock()); });
    wg.wait();
    EXPECT_EQ(other.load(), 0);
    rw.unlock();
    // A writer that gets in via lock() after readers leave.
    rw.lock_shared();
    std::atomic<bool> wrote{false};
    wg.go([&] {
      std::unique_lock l(rw);
      wrote = true;
    });
    ASSERT_TRUE(wait_parked("sync.RWMutex.Lock", 1));
    EXPECT_FALSE(wrote.load());
    rw.unlock_shared();
    wg.wait();
    EXPECT_TRUE(wrote.load());
    EXPECT_TRUE(rw.try_lock_shared());
    rw.unlock_shared();
  });
}

// ---- WaitGroup ---------------------------------------------------------------------------

TEST_P(WaitGroups, WaitReturnsAfterEveryDone) {
  run([] {
    const int n = gort_test::kScale > 1 ? 40 : 200;
    std::atomic<int> finished{0};
    gort::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      gort::go([&, i] {
        for (int k = 0; k < i % 5; ++k) gort::yield();
        finished.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(finished.load(), n);
  });
}

TEST_P(WaitGroups, WaitStaysParkedUntilTheCounterReachesZero) {
  run([] {
    gort::WaitGroup wg, outer;
    std::atomic<bool> returned{false};
    wg.add(2);
    outer.go([&] {
      wg.wait();
      returned = true;
    });
    ASSERT_TRUE(wait_parked("sync.WaitGroup.Wait", 1));
    wg.done();
    // Waking the waiter would make it runnable inside done(): it must still be parked.
    EXPECT_EQ(count_parked("sync.WaitGroup.Wait"), 1);
    EXPECT_FALSE(returned.load());
    wg.done();
    outer.wait();
    EXPECT_TRUE(returned.load());
    wg.wait();  // zero: returns at once
  });
}

TEST_P(WaitGroups, GoRunsTheFunctionAndCountsIt) {
  run([] {
    const int n = spawn_scaled(20000);
    std::atomic<long> sum{0};
    gort::WaitGroup wg;
    for (int i = 0; i < n; ++i) wg.go([&sum, i] { sum.fetch_add(i); });
    auto p = std::make_unique<int>(1000);
    wg.go([&sum, q = std::move(p)] { sum.fetch_add(*q); });  // move-only callable
    wg.wait();
    EXPECT_EQ(sum.load(), long(n) * (n - 1) / 2 + 1000);
    // done() runs even when f throws (and catches inside the goroutine).
    std::atomic<int> caught{0};
    wg.go([&] {
      try {
        throw std::runtime_error("x");
      } catch (const std::runtime_error&) {
        caught = 1;
      }
    });
    wg.wait();
    EXPECT_EQ(caught.load(), 1);
  });
}

TEST_P(WaitGroups, ReusedForManyRounds) {
  run([] {
    gort::WaitGroup wg;
    std::atomic<int> total{0};
    const int rounds = spawn_scaled(1000), per = 10;
    for (int r = 0; r < rounds; ++r) {
      for (int i = 0; i < per; ++i) {
        wg.go([&] {
          gort::yield();
          total.fetch_add(1);
        });
      }
      wg.wait();
      ASSERT_EQ(total.load(), (r + 1) * per) << "round " << r;
    }
  });
}

TEST_P(WaitGroups, ManyWaitersAllReleasedEachRound) {
  run([] {
    gort::WaitGroup wg;
    const int waiters = 10, rounds = gort_test::kScale > 1 ? 3 : 20;
    for (int r = 0; r < rounds; ++r) {
      std::atomic<int> work{0}, woke_early{0}, woke{0};
      auto gate = gort::make_chan<int>();
      wg.add(1);  // held by main until every waiter is parked
      for (int i = 0; i < 5; ++i) {
        wg.go([&] {
          gate.recv();
          work.fetch_add(1);
        });
      }
      gort::WaitGroup waiting;
      for (int i = 0; i < waiters; ++i) {
        waiting.go([&] {
          wg.wait();
          if (work.load() != 5) woke_early.fetch_add(1);
          woke.fetch_add(1);
        });
      }
      ASSERT_TRUE(wait_parked("sync.WaitGroup.Wait", waiters));
      EXPECT_EQ(woke.load(), 0);
      gate.close();
      wg.done();
      waiting.wait();  // every waiter returns before the next round reuses wg
      EXPECT_EQ(woke.load(), waiters);
      EXPECT_EQ(woke_early.load(), 0);
    }
  });
}

// A WaitGroup may be destroyed, its memory reused, as soon as wait() returns — Go's
// idiom. The done() that released it may still be inside the semaphore then: it must not
// touch the WaitGroup past the point where the waiter can return. The memory is rewritten
// right after each wait, so under TSan a late touch is a reported race and under ASan
// (the storage freed each round) a heap-use-after-free.
TEST_P(WaitGroups, StorageReusedAsSoonAsWaitReturns) {
  run([] {
    auto to_release = gort::make_chan<gort::WaitGroup*>();
    gort::WaitGroup releaser;
    releaser.go([to_release] {
      for (gort::WaitGroup* wg : to_release) wg->done();
    });
    for (int round = 0; round < scaled(20'000); ++round) {
      auto* storage = new unsigned char[sizeof(gort::WaitGroup)];
      auto* wg = new (storage) gort::WaitGroup;
      wg->add(1);
      to_release.send(wg);
      wg->wait();
      wg->~WaitGroup();
      std::memset(storage, 0xA5, sizeof(gort::WaitGroup));
      delete[] storage;
    }
    to_release.close();
    releaser.wait();
  });
}

TEST_P(WaitGroups, NegativeCounterThrowsPanicError) {
  run([] {
    {
      gort::WaitGroup wg;
      const std::string msg = panic_message([&] { wg.add(-1); });
      EXPECT_NE(msg.find("negative"), std::string::npos) << msg;
    }
    {
      gort::WaitGroup wg;
      wg.add(2);
      const std::string msg = panic_message([&] { wg.add(-3); });
      EXPECT_NE(msg.find("negative"), std::string::npos) << msg;
    }
    {
      gort::WaitGroup wg;
      EXPECT_THROW(wg.done(), gort::panic_error);
    }
  });
}

// ---- Once --------------------------------------------------------------------------------

TEST_P(Onces, RunsExactlyOnceAndCallersWaitForIt) {
  run([] {
    gort::Once once;
    std::atomic<int> runs{0}, saw_unset{0};
    int value = 0;  // plain: set by f, read by every caller after call() returns
    gort::WaitGroup wg;
    for (int i = 0; i < 100; ++i) {
      wg.go([&] {
        once.call([&] {
          runs.fetch_add(1);
          for (int k = 0; k < 10; ++k) gort::yield();  // others pile up meanwhile
          value = 42;
        });
        if (value != 42) saw_unset.fetch_add(1);
      });
    }
    wg.wait();
    EXPECT_EQ(runs.load(), 1);
    EXPECT_EQ(saw_unset.load(), 0);
    EXPECT_TRUE(once.done());
    once.call([&] { runs.fetch_add(1); });
    EXPECT_EQ(runs.load(), 1);
  });
}

TEST_P(Onces, ThrowingFunctionReachesItsCallerAndCountsAsDone) {
  run([] {
    {
      gort::Once once;
      EXPECT_FALSE(once.done());
      EXPECT_THROW(once.call([] { throw std::runtime_error("init failed"); }), std::runtime_error);
      EXPECT_TRUE(once.done());
      bool ran = false;
      once.call([&] { ran = true; });
      EXPECT_FALSE(ran);
    }
    // With callers waiting while f runs: only f's caller sees the exception.
    gort::Once once;
    auto gate = gort::make_chan<int>();
    std::atomic<int> runs{0}, threw{0}, returned{0};
    gort::WaitGroup wg;
    wg.go([&] {
      try {
        once.call([&] {
          runs.fetch_add(1);
          gate.recv();
          throw std::runtime_error("init failed");
        });
      } catch (const std::runtime_error&) {
        threw.fetch_add(1);
      }
    });
    ASSERT_TRUE(wait_parked("chan receive", 1));  // f is running
    const int others = 5;
    for (int i = 0; i < others; ++i) {
      wg.go([&] {
        try {
          once.call([&] { runs.fetch_add(1); });
          returned.fetch_add(1);
        } catch (...) {
          threw.fetch_add(1);
        }
      });
    }
    ASSERT_TRUE(wait_parked("sync.Mutex.Lock", others));  // they wait for f
    EXPECT_EQ(returned.load(), 0);
    gate.close();
    wg.wait();
    EXPECT_EQ(runs.load(), 1);
    EXPECT_EQ(threw.load(), 1);
    EXPECT_EQ(returned.load(), others);
    EXPECT_TRUE(once.done());
  });
}

// ---- Cond --------------------------------------------------------------------------------

TEST_P(Conds, SignalWakesOneAndBroadcastWakesAll) {
  run([] {
    gort::Mutex mu;
    gort::Cond cond(mu);
    EXPECT_EQ(&cond.mutex(), &mu);
    int tokens = 0;  // guarded by mu
    std::atomic<int> wakeups{0}, consumed{0};
    const int n = 6;
    gort::WaitGroup wg;
    for (int i = 0; i < n; ++i) {
      wg.go([&] {
        mu.lock();
        while (tokens == 0) {
          cond.wait();
          wakeups.fetch_add(1);
        }
        --tokens;
        consumed.fetch_add(1);
        mu.unlock();
      });
    }
    ASSERT_TRUE(wait_parked("sync.Cond.Wait", n));
    mu.lock();
    tokens = 1;
    mu.unlock();
    cond.signal();
    ASSERT_TRUE(yield_until([&] { return consumed.load() == 1; }, "one consumer"));
    // A second woken waiter would either be runnable (not parked) or have counted a wakeup
    // before parking again: once n-1 are parked, wakeups tells how many signal woke.
    ASSERT_TRUE(yield_until([&] { return count_parked("sync.Cond.Wait") == n - 1; }, "n-1 parked"));
    EXPECT_EQ(wakeups.load(), 1);
    mu.lock();
    tokens = n - 1;
    mu.unlock();
    cond.broadcast();
    wg.wait();
    EXPECT_EQ(consumed.load(), n);
    EXPECT_EQ(wakeups.load(), n);
  });
}

TEST_P(Conds, SignalWithNoWaiterIsNotRemembered) {
  run([] {
    gort::Mutex mu;
    gort::Cond cond(mu);
    cond.signal();
    cond.broadcast();
    std::atomic<bool> returned{false};
    gort::WaitGroup wg;
    wg.go([&] {
      mu.lock();
      cond.wait();  // deliberately not in a loop: it must not consume the earlier signals
      returned = true;
      mu.unlock();
    });
    ASSERT_TRUE(yield_until([&] { return returned.load() || count_parked("sync.Cond.Wait") == 1; }, "waiter"));
    EXPECT_FALSE(returned.load());
    cond.signal();
    wg.wait();
    EXPECT_TRUE(returned.load());
  });
}

// A bounded queue on two Conds, signal only: a lost wakeup hangs it (the watchdog-free way
// to fail here is wg.wait() never returning, which ctest's timeout reports).
TEST_P(Conds, BoundedQueueLosesNoWakeups) {
  run([] {
    gort::Mutex mu;
    gort::Cond not_empty(mu), not_full(mu);
    std::deque<long> q;  // guarded by mu
    bool closed = false;
    const std::size_t cap = 4;
    const int producers = 4, consumers = 4, each = scaled(50000);
    std::atomic<long> sum{0}, count{0};
    gort::WaitGroup prod, cons;
    for (int p = 0; p < producers; ++p) {
      prod.go([&, p] {
        for (int i = 0; i < each; ++i) {
          mu.lock();
          while (q.size() == cap) not_full.wait();
          q.push_back(long(p) * each + i + 1);
          if (i % 2) {
            not_empty.signal();  // signal while holding the lock...
            mu.unlock();
          } else {
            mu.unlock();
            not_empty.signal();  // ...and after releasing it
          }
        }
      });
    }
    for (int c = 0; c < consumers; ++c) {
      cons.go([&] {
        for (;;) {
          mu.lock();
          while (q.empty() && !closed) not_empty.wait();
          if (q.empty()) {
            mu.unlock();
            return;
          }
          const long v = q.front();
          q.pop_front();
          mu.unlock();
          not_full.signal();
          sum.fetch_add(v);
          count.fetch_add(1);
        }
      });
    }
    prod.wait();
    mu.lock();
    closed = true;
    mu.unlock();
    not_empty.broadcast();
    cons.wait();
    const long n = long(producers) * each;
    EXPECT_EQ(count.load(), n);
    EXPECT_EQ(sum.load(), n * (n + 1) / 2);
  });
}

// ---- Semaphore ---------------------------------------------------------------------------

TEST_P(Semaphores, WeightedAcquireNeverExceedsTheSize) {
  run([] {
    const std::int64_t size = 10;
    gort::Semaphore sem(size);
    std::atomic<std::int64_t> in_use{0}, max_seen{0};
    std::atomic<int> over{0}, try_failed{0};
    const int gs = 16, each = scaled(10000);
    gort::WaitGroup wg;
    for (int g = 0; g < gs; ++g) {
      wg.go([&, g] {
        const gort::Context bg = gort::background();
        for (int i = 0; i < each; ++i) {
          const std::int64_t w = 1 + (g * 7 + i) % size;
          switch (i % 3) {
            case 0:
              sem.acquire(w);
              break;
            case 1:
              if (!sem.acquire(bg, w)) ADD_FAILURE() << "acquire(background) failed";
              break;
            default:
              while (!sem.try_acquire(w)) {
                try_failed.fetch_add(1, std::memory_order_relaxed);
                gort::yield();
              }
          }
          const std::int64_t now = in_use.fetch_add(w) + w;
          if (now > size) over.fetch_add(1);
          std::int64_t m = max_seen.load();
          while (now > m && !max_seen.compare_exchange_weak(m, now)) {
          }
          if (i % 4 == 0) gort::yield();
          in_use.fetch_sub(w);
          sem.release(w);
        }
      });
    }
    wg.wait();
    EXPECT_EQ(over.load(), 0);
    EXPECT_LE(max_seen.load(), size);
    EXPECT_GT(max_seen.load(), 0);
    // Exact accounting: every unit came back.
    EXPECT_TRUE(sem.try_acquire(size));
    EXPECT_FALSE(sem.try_acquire(1));
    sem.release(size);
  });
}

// FIFO: a request for the whole size at the head of the queue keeps smaller requests (that
// would fit) out until it has been served.
TEST_P(Semaphores, LargeRequestAtTheHeadIsNotStarvedBySmallOnes) {
  run([] {
    gort::Semaphore sem(10);
    sem.acquire(5);  // 5 units stay free
    std::atomic<int> step{0};
    int big_at = -1;
    std::vector<int> small_at(3, -1);
    gort::WaitGroup wg;
    wg.go([&] {
      sem.acquire(10);
      big_at = step.fetch_add(1);
      sem.release(10);
    });
    ASSERT_TRUE(wait_parked("semaphore.Acquire", 1));
    const bool jumped = sem.try_acquire(1);
    EXPECT_FALSE(jumped) << "a small request got in ahead of the queued large one";
    if (jumped) sem.release(1);
    for (int i = 0; i < 3; ++i) {
      wg.go([&, i] {
        sem.acquire(1);
        small_at[std::size_t(i)] = step.fetch_add(1);
        sem.release(1);
      });
    }
    ASSERT_TRUE(wait_parked("semaphore.Acquire", 4));
    EXPECT_EQ(step.load(), 0);
    sem.release(5);
    wg.wait();
    EXPECT_EQ(big_at, 0);
    std::sort(small_at.begin(), small_at.end());
    EXPECT_EQ(small_at, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(sem.try_acquire(10));
    sem.release(10);
  });
}

TEST_P(Semaphores, ReleaseWakesEveryWaiterThatFits) {
  run([] {
    gort::Semaphore sem(4);
    sem.acquire(4);
    std::atomic<int> got{0};
    gort::WaitGroup wg;
    for (int i = 0; i < 4; ++i) {
      wg.go([&] {
        sem.acquire(1);
        got.fetch_add(1);
      });
    }
    ASSERT_TRUE(wait_parked("semaphore.Acquire", 4));
    sem.release(2);  // two fit: exactly two leave the queue
    EXPECT_EQ(count_parked("semaphore.Acquire"), 2);
    sem.release(2);
    wg.wait();
    EXPECT_EQ(got.load(), 4);
    EXPECT_FALSE(sem.try_acquire(1));  // the four goroutines still hold their units
    sem.release(4);
    EXPECT_TRUE(sem.try_acquire(4));
    sem.release(4);
  });
}

TEST_P(Semaphores, TryAcquire) {
  run([] {
    gort::Semaphore sem(3);
    EXPECT_TRUE(sem.try_acquire(2));
    EXPECT_FALSE(sem.try_acquire(2));
    EXPECT_TRUE(sem.try_acquire(1));
    EXPECT_FALSE(sem.try_acquire(1));
    EXPECT_TRUE(sem.try_acquire(0));
    sem.release(3);
    EXPECT_FALSE(sem.try_acquire(4));  // more than the size never fits
    EXPECT_TRUE(sem.try_acquire(3));
    sem.release(1);
    sem.release(2);
    EXPECT_TRUE(sem.try_acquire());
    sem.release();
  });
}

TEST_P(Semaphores, ReleasingMoreThanHeldThrows) {
  run([] {
    gort::Semaphore sem(2);
    EXPECT_THROW(sem.release(1), gort::panic_error);
    sem.acquire(1);
    const std::string msg = panic_message([&] { sem.release(2); });
    EXPECT_NE(msg, "<no panic_error>");
    // The failed release changed nothing: one unit is still held.
    EXPECT_FALSE(sem.try_acquire(2));
    sem.release(1);
    EXPECT_TRUE(sem.try_acquire(2));
    sem.release(2);
  });
}

TEST_P(Semaphores, ContextCanceledWhileWaitingReturnsFalse) {
  run([] {
    gort::Semaphore sem(3);
    sem.acquire(3);
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    std::atomic<int> result{-1};
    gort::WaitGroup wg;
    wg.go([&, c = ctx] { result = sem.acquire(c, 2) ? 1 : 0; });
    ASSERT_TRUE(wait_parked("select", 1));
    EXPECT_EQ(result.load(), -1);
    wg.go([cancel = cancel] { cancel(); });
    wg.wait();
    EXPECT_EQ(result.load(), 0);
    EXPECT_EQ(ctx.err(), gort::errc::canceled);
    sem.release(3);
    EXPECT_TRUE(sem.try_acquire(3)) << "the canceled acquire kept units";
    sem.release(3);
    // An already-done context fails even when units are free, and takes nothing.
    EXPECT_FALSE(sem.acquire(ctx, 1));
    EXPECT_TRUE(sem.try_acquire(3));
    sem.release(3);
  });
}

TEST_P(Semaphores, ContextTimeoutExpiresWhileWaiting) {
  run([] {
    gort::Semaphore sem(1);
    sem.acquire(1);
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 20ms);
    EXPECT_FALSE(sem.acquire(ctx, 1));
    EXPECT_EQ(ctx.err(), gort::errc::deadline_exceeded);
    cancel();
    sem.release(1);
    EXPECT_TRUE(sem.try_acquire(1));
    sem.release(1);
    // A timeout that does not expire: units are free, acquire succeeds.
    auto [long_ctx, long_cancel] = gort::with_timeout(gort::background(), 1min);
    EXPECT_TRUE(sem.acquire(long_ctx, 1));
    EXPECT_FALSE(sem.try_acquire(1));
    sem.release(1);
    long_cancel();
  });
}

TEST_P(Semaphores, ContextAcquireSucceedsWhenUnitsBecomeFree) {
  run([] {
    gort::Semaphore sem(2);
    sem.acquire(2);
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    std::atomic<int> result{-1};
    gort::WaitGroup wg;
    wg.go([&, c = ctx] { result = sem.acquire(c, 2) ? 1 : 0; });
    ASSERT_TRUE(wait_parked("select", 1));
    sem.release(2);
    wg.wait();
    EXPECT_EQ(result.load(), 1);
    EXPECT_FALSE(sem.try_acquire(1));  // the waiter holds both units now
    cancel();                          // canceling afterwards takes nothing back
    EXPECT_FALSE(sem.try_acquire(1));
    sem.release(2);
    EXPECT_TRUE(sem.try_acquire(2));
    sem.release(2);
  });
}

// A canceled waiter at the head must let the (fitting) waiters behind it in.
TEST_P(Semaphores, CanceledHeadWaiterUnblocksTheQueue) {
  run([] {
    gort::Semaphore sem(3);
    sem.acquire(3);
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    std::atomic<int> head_result{-1};
    std::atomic<bool> small_got{false};
    gort::WaitGroup wg;
    wg.go([&, c = ctx] { head_result = sem.acquire(c, 3) ? 1 : 0; });
    ASSERT_TRUE(wait_parked("select", 1));
    wg.go([&] {
      sem.acquire(1);
      small_got = true;
    });
    ASSERT_TRUE(wait_parked("semaphore.Acquire", 1));
    sem.release(1);  // one free, but the head wants 3: FIFO keeps the small one waiting
    EXPECT_EQ(count_parked("semaphore.Acquire"), 1);
    EXPECT_FALSE(small_got.load());
    cancel();
    wg.wait();
    EXPECT_EQ(head_result.load(), 0);
    EXPECT_TRUE(small_got.load());
    sem.release(1);  // the small one's unit
    sem.release(2);  // main's remaining units
    EXPECT_TRUE(sem.try_acquire(3));
    sem.release(3);
  });
}

// Cancel and release race: whichever wins, no unit is lost or duplicated.
TEST_P(Semaphores, CancelRacingWithReleaseKeepsTheCount) {
  run([] {
    gort::Semaphore sem(1);
    const int rounds = spawn_scaled(5000);
    int granted = 0;
    for (int r = 0; r < rounds; ++r) {
      sem.acquire(1);
      auto [ctx, cancel] = gort::with_cancel(gort::background());
      std::atomic<int> result{-1};
      gort::WaitGroup wg;
      wg.go([&, c = ctx] {
        result = sem.acquire(c, 1) ? 1 : 0;
        if (result == 1) sem.release(1);
      });
      if (r % 2) gort::yield();
      wg.go([cancel = cancel] { cancel(); });
      sem.release(1);
      wg.wait();
      granted += result.load();
      ASSERT_TRUE(sem.try_acquire(1)) << "round " << r << ": a unit was lost";
      ASSERT_FALSE(sem.try_acquire(1)) << "round " << r << ": a unit was duplicated";
      sem.release(1);
    }
    RecordProperty("granted", granted);
  });
}

// ---- plain OS threads --------------------------------------------------------------------

TEST_P(ForeignThreads, MutexSharedWithGoroutines) {
  run([] {
    const int threads = 4, gs = 8, each = scaled(50000);
    gort::Mutex mu;
    long counter = 0;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < each; ++i) {
          std::lock_guard l(mu);
          ++counter;
        }
      });
    }
    gort::WaitGroup wg;
    for (int g = 0; g < gs; ++g) {
      wg.go([&] {
        for (int i = 0; i < each; ++i) {
          std::lock_guard l(mu);
          ++counter;
          if (i % 64 == 0) gort::yield();
        }
      });
    }
    wg.wait();
    join_all(ts);
    EXPECT_EQ(counter, long(threads + gs) * each);
  });
}

TEST_P(ForeignThreads, RWMutexSharedWithGoroutines) {
  run([] {
    gort::RWMutex rw;
    long a = 0, b = 0;
    std::atomic<int> violations{0};
    const int each = scaled(5000);
    auto writer = [&] {
      for (int i = 0; i < each; ++i) {
        std::unique_lock l(rw);
        ++a;
        ++b;
      }
    };
    auto reader = [&] {
      for (int i = 0; i < each; ++i) {
        std::shared_lock l(rw);
        if (a != b) violations.fetch_add(1);
      }
    };
    std::vector<std::thread> ts;
    ts.emplace_back(writer);
    ts.emplace_back(reader);
    ts.emplace_back(reader);
    gort::WaitGroup wg;
    wg.go(writer);
    wg.go(writer);
    wg.go(reader);
    wg.go(reader);
    wg.wait();
    join_all(ts);
    EXPECT_EQ(violations.load(), 0);
    EXPECT_EQ(a, 3L * each);
    EXPECT_EQ(b, a);
  });
}

TEST_P(ForeignThreads, WaitGroupAcrossThreadsAndGoroutines) {
  run([] {
    const int threads = 4, gs = 16;
    std::atomic<int> finished{0}, thread_saw{-1};
    gort::WaitGroup wg;
    wg.add(threads + gs);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        finished.fetch_add(1);
        wg.done();
      });
    }
    // A plain thread waits too.
    ts.emplace_back([&] {
      wg.wait();
      thread_saw = finished.load();
    });
    for (int g = 0; g < gs; ++g) {
      gort::go([&] {
        gort::yield();
        finished.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(finished.load(), threads + gs);
    join_all(ts);
    EXPECT_EQ(thread_saw.load(), threads + gs);
  });
}

TEST_P(ForeignThreads, SemaphoreSharedWithGoroutines) {
  run([] {
    const std::int64_t size = 4;
    gort::Semaphore sem(size);
    std::atomic<std::int64_t> in_use{0};
    std::atomic<int> over{0};
    std::atomic<long> acquisitions{0};
    const int threads = 3, gs = 8, each = scaled(4000);
    auto body = [&](int id) {
      for (int i = 0; i < each; ++i) {
        const std::int64_t w = 1 + (id + i) % size;
        sem.acquire(w);
        if (in_use.fetch_add(w) + w > size) over.fetch_add(1);
        in_use.fetch_sub(w);
        sem.release(w);
        acquisitions.fetch_add(1);
      }
    };
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) ts.emplace_back(body, t);
    gort::WaitGroup wg;
    for (int g = 0; g < gs; ++g) wg.go([&, g] { body(threads + g); });
    wg.wait();
    join_all(ts);
    EXPECT_EQ(over.load(), 0);
    EXPECT_EQ(acquisitions.load(), long(threads + gs) * each);
    EXPECT_TRUE(sem.try_acquire(size));
    sem.release(size);
  });
}

TEST_P(ForeignThreads, SemaphoreContextAcquireFromAThread) {
  run([] {
    gort::Semaphore sem(2);
    sem.acquire(2);
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    std::atomic<int> canceled_result{-1}, granted_result{-1};
    std::thread t([&, c = ctx] {
      canceled_result = sem.acquire(c, 1) ? 1 : 0;  // never fits before the cancel
    });
    gort::WaitGroup wg;
    wg.go([cancel = cancel] { cancel(); });
    gort::blocking([&] { t.join(); });
    wg.wait();
    EXPECT_EQ(canceled_result.load(), 0);
    // A thread whose acquire is satisfied by a goroutine's release.
    std::thread t2([&] { granted_result = sem.acquire(gort::background(), 2) ? 1 : 0; });
    wg.go([&] { sem.release(2); });
    wg.wait();
    gort::blocking([&] { t2.join(); });
    EXPECT_EQ(granted_result.load(), 1);
    sem.release(2);
    EXPECT_TRUE(sem.try_acquire(2));
    sem.release(2);
  });
}

TEST_P(ForeignThreads, CondAndOnceAcrossThreadsAndGoroutines) {
  run([] {
    gort::Mutex mu;
    gort::Cond cond(mu);
    std::deque<int> q;  // guarded by mu
    bool closed = false;
    const int per_producer = scaled(5000);
    std::atomic<long> sum{0}, count{0};
    gort::Once once;
    std::atomic<int> once_runs{0};
    auto consumer = [&] {
      once.call([&] { once_runs.fetch_add(1); });
      for (;;) {
        std::unique_lock l(mu);
        while (q.empty() && !closed) cond.wait();
        if (q.empty()) return;
        const int v = q.front();
        q.pop_front();
        l.unlock();
        sum.fetch_add(v);
        count.fetch_add(1);
      }
    };
    auto producer = [&] {
      once.call([&] { once_runs.fetch_add(1); });
      for (int i = 1; i <= per_producer; ++i) {
        {
          std::lock_guard l(mu);
          q.push_back(i);
        }
        cond.signal();
      }
    };
    std::vector<std::thread> consumer_threads, producer_threads;
    for (int i = 0; i < 2; ++i) consumer_threads.emplace_back(consumer);
    gort::WaitGroup consumers, producers;
    for (int i = 0; i < 2; ++i) consumers.go(consumer);
    for (int i = 0; i < 2; ++i) producer_threads.emplace_back(producer);
    for (int i = 0; i < 2; ++i) producers.go(producer);
    producers.wait();
    join_all(producer_threads);
    {
      std::lock_guard l(mu);
      closed = true;
    }
    cond.broadcast();
    consumers.wait();
    join_all(consumer_threads);
    EXPECT_EQ(once_runs.load(), 1);
    EXPECT_EQ(count.load(), 4L * per_producer);
    EXPECT_EQ(sum.load(), 4L * per_producer * (per_producer + 1) / 2);
  });
}

}  // namespace
