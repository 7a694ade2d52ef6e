// The local run queue, white-box: the order the owner runs things in (runnext, the soon
// slots, the ring), and that thieves racing the owner take every G exactly once.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sched/runq.hpp"

namespace {

using gort::sched::G;
using gort::sched::GQueue;
using gort::sched::RunQueue;

std::vector<std::unique_ptr<G>> make_gs(int n) {
  std::vector<std::unique_ptr<G>> gs;
  for (int i = 0; i < n; ++i) {
    gs.push_back(std::make_unique<G>());
    gs.back()->id = i;
  }
  return gs;
}

TEST(RunQueue, WhatATimerDisplacesRunsBeforeTheRing) {
  auto gs = make_gs(4);
  RunQueue q;
  GQueue overflow;
  ASSERT_TRUE(q.push(gs[0].get(), overflow));           // queued earlier, in the ring
  ASSERT_TRUE(q.put_next_soon(gs[1].get(), overflow));  // runnext
  ASSERT_TRUE(q.put_next_soon(gs[2].get(), overflow));  // 1 to a soon slot
  ASSERT_TRUE(q.put_next_soon(gs[3].get(), overflow));  // 2 to a soon slot
  EXPECT_EQ(q.approx_size(), 4u);
  EXPECT_FALSE(q.only_runnext());
  EXPECT_EQ(q.pop(), gs[3].get());
  EXPECT_EQ(q.pop(), gs[1].get());
  EXPECT_FALSE(q.owner_empty());  // 2 in a soon slot, 0 in the ring
  EXPECT_EQ(q.pop(), gs[2].get());
  EXPECT_FALSE(q.owner_empty());  // 0 in the ring
  EXPECT_EQ(q.pop(), gs[0].get());
  EXPECT_TRUE(q.owner_empty());
  EXPECT_EQ(q.pop(), nullptr);
  EXPECT_TRUE(overflow.empty());
}

TEST(RunQueue, PutNextStillSendsTheDisplacedToTheTail) {
  auto gs = make_gs(3);
  RunQueue q;
  GQueue overflow;
  ASSERT_TRUE(q.push(gs[0].get(), overflow));
  ASSERT_TRUE(q.put_next(gs[1].get(), overflow));
  ASSERT_TRUE(q.put_next(gs[2].get(), overflow));
  EXPECT_EQ(q.pop(), gs[2].get());
  EXPECT_EQ(q.pop(), gs[0].get());
  EXPECT_EQ(q.pop(), gs[1].get());
  EXPECT_EQ(q.pop(), nullptr);
}

TEST(RunQueue, FullSoonSlotsSpillToTheTail) {
  auto gs = make_gs(11);
  RunQueue q;
  GQueue overflow;
  ASSERT_TRUE(q.push(gs[0].get(), overflow));
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(q.put_next_soon(gs[i].get(), overflow));
  // runnext 10; soon slots 1..8; 9 went to the ring behind 0.
  EXPECT_EQ(q.approx_size(), 11u);
  EXPECT_EQ(q.pop(), gs[10].get());
  for (int i = 1; i <= 8; ++i) EXPECT_EQ(q.pop(), gs[i].get()) << i;
  EXPECT_EQ(q.pop(), gs[0].get());
  EXPECT_EQ(q.pop(), gs[9].get());
  EXPECT_EQ(q.pop(), nullptr);
  EXPECT_TRUE(q.empty());
}

TEST(RunQueue, ThievesTakeSoonSlotsOnceTheRingIsEmpty) {
  auto gs = make_gs(3);
  RunQueue victim, thief;
  GQueue overflow;
  ASSERT_TRUE(victim.put_next_soon(gs[0].get(), overflow));
  ASSERT_TRUE(victim.put_next_soon(gs[1].get(), overflow));  // 0 to a soon slot
  ASSERT_TRUE(victim.push(gs[2].get(), overflow));
  EXPECT_EQ(thief.steal_from(victim, false), gs[2].get());  // the ring first
  EXPECT_EQ(thief.steal_from(victim, false), gs[0].get());  // then a soon slot
  EXPECT_TRUE(victim.only_runnext());
  EXPECT_EQ(thief.steal_from(victim, false), nullptr);       // runnext only when asked
  EXPECT_EQ(thief.steal_from(victim, true), gs[1].get());
  EXPECT_TRUE(victim.empty());
  EXPECT_FALSE(victim.owner_empty());  // the emptied slot counts until the owner skips it
  EXPECT_EQ(victim.pop(), nullptr);    // the owner skips the slot a thief emptied
  EXPECT_TRUE(victim.owner_empty());
}

// One owner feeding runnext, the soon slots and the ring and running from them; two
// thieves stealing. Every G must come out exactly once (a slot taken twice, or lost,
// shows as a count other than 1).
TEST(RunQueueStress, OwnerAndThievesTakeEachGOnce) {
  constexpr int kGs = 20000;
  auto gs = make_gs(kGs);
  std::vector<std::atomic<int>> taken(kGs);
  RunQueue victim;
  std::atomic<bool> done{false};
  auto take = [&](G* g) { taken[std::size_t(g->id)].fetch_add(1, std::memory_order_relaxed); };
  auto thief = [&] {
    RunQueue own;
    for (;;) {
      const bool last = done.load(std::memory_order_acquire);
      while (G* g = own.pop()) take(g);
      G* g = own.steal_from(victim, true);
      if (g) {
        take(g);
      } else if (last) {
        return;
      }
    }
  };
  std::thread t1(thief), t2(thief);
  GQueue overflow;
  for (int i = 0; i < kGs; ++i) {
    G* g = gs[std::size_t(i)].get();
    const bool ok = i % 3 == 0 ? victim.push(g, overflow) : victim.put_next_soon(g, overflow);
    if (!ok) {
      while (G* o = overflow.pop_front()) take(o);  // the global queue's share
    }
    if (i % 5 == 0) {
      if (G* p = victim.pop()) take(p);
    }
  }
  while (G* g = victim.pop()) take(g);
  done.store(true, std::memory_order_release);
  t1.join();
  t2.join();
  while (G* g = victim.pop()) take(g);
  EXPECT_TRUE(victim.owner_empty());
  for (int i = 0; i < kGs; ++i) ASSERT_EQ(taken[std::size_t(i)].load(), 1) << "G " << i;
}

}  // namespace
