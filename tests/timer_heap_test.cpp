// The per-P timer heap, white-box: entries stay a 4-ary min-heap on `when` through pushes,
// pops and removals from the middle; removable timers always know their position, and
// timers that are not removable (sleeps) are only ever taken from the top.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "time/heap.hpp"

namespace {

using gort::time_impl::Timer;
using gort::time_impl::TimerHeap;

// Checks every invariant of time/heap.hpp that holds under the lock.
void expect_consistent(const TimerHeap& h) {
  ASSERT_EQ(h.timer0_when.load(), h.items.empty() ? 0 : h.items[0].when);
  for (std::size_t i = 0; i < h.items.size(); ++i) {
    const TimerHeap::Entry& e = h.items[i];
    Timer* t = e.timer();
    ASSERT_EQ(e.when, t->when) << "entry " << i;
    ASSERT_EQ(t->heap.load(), &h) << "entry " << i;
    ASSERT_EQ(e.removable(), t->removable) << "entry " << i;
    if (t->removable) ASSERT_EQ(t->index, i) << "a removable timer lost its position";
    if (i > 0) ASSERT_LE(h.items[(i - 1) / 4].when, e.when) << "entry " << i << " is above its parent";
  }
}

TEST(TimerHeap, StaysOrderedThroughPushesPopsAndRemovalsFromTheMiddle) {
  constexpr int kTimers = 2000;
  std::mt19937_64 rng(7);
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<Timer>());
    timers.back()->removable = i % 3 != 0;  // a third are sleeps
  }
  TimerHeap h;
  std::lock_guard<gort::sched::RuntimeLock> l(h.lock);
  std::vector<Timer*> pending;
  std::int64_t last_popped = 0;
  for (int step = 0; step < 20000; ++step) {
    const int op = int(rng() % 3);
    if (op == 0 || pending.empty()) {  // push one not pending
      Timer* t = timers[rng() % kTimers].get();
      if (t->heap.load()) continue;
      t->when = last_popped + 1 + std::int64_t(rng() % 1000);  // duplicates included
      h.push(t);
      pending.push_back(t);
    } else if (op == 1) {  // pop the earliest
      Timer* t = h.top();
      ASSERT_NE(t, nullptr);
      for (Timer* p : pending) ASSERT_LE(t->when, p->when) << "top is not the earliest";
      ASSERT_GE(t->when, last_popped);
      last_popped = t->when;
      h.remove(t);
      EXPECT_EQ(t->heap.load(), nullptr);
      pending.erase(std::find(pending.begin(), pending.end(), t));
    } else {  // remove a removable one from wherever it is
      Timer* t = pending[rng() % pending.size()];
      if (!t->removable) continue;
      h.remove(t);
      EXPECT_EQ(t->heap.load(), nullptr);
      pending.erase(std::find(pending.begin(), pending.end(), t));
    }
    if (step % 97 == 0) expect_consistent(h);
  }
  expect_consistent(h);
  // Drain: pops come out in order, and each pending timer exactly once.
  std::vector<Timer*> popped;
  std::int64_t prev = 0;
  while (Timer* t = h.top()) {
    ASSERT_GE(t->when, prev);
    prev = t->when;
    h.remove(t);
    popped.push_back(t);
  }
  std::sort(popped.begin(), popped.end());
  std::sort(pending.begin(), pending.end());
  EXPECT_EQ(popped, pending);
  EXPECT_EQ(h.timer0_when.load(), 0);
}

TEST(TimerHeap, ASleepAtTheTopLeavesAndTheRestMoveUp) {
  Timer sleep, other;
  sleep.removable = false;
  sleep.when = 10;
  other.when = 20;
  TimerHeap h;
  std::lock_guard<gort::sched::RuntimeLock> l(h.lock);
  h.push(&other);
  h.push(&sleep);
  ASSERT_EQ(h.top(), &sleep);
  h.remove(&sleep);
  EXPECT_EQ(h.top(), &other);
  EXPECT_EQ(other.index, 0u);
  EXPECT_EQ(h.timer0_when.load(), 20);
}

void remove_a_sleep_from_the_middle() {
  Timer first;
  Timer sleep;
  sleep.removable = false;
  first.when = 1;
  sleep.when = 2;
  TimerHeap h;
  h.lock.lock();
  h.push(&first);
  h.push(&sleep);
  h.remove(&sleep);
}

TEST(TimerHeapDeathTest, RemovingASleepFromTheMiddleIsFatal) {
  // A timer that keeps no position can only leave from the top: anything else is a
  // runtime bug, reported rather than guessed at.
  EXPECT_EXIT(remove_a_sleep_from_the_middle(), testing::ExitedWithCode(2),
              "fatal error: timer removed from the middle of its heap");
}

}  // namespace
