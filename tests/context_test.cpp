// Context trees (cancel, deadlines, values) and Group (errgroup).
#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using gort_test::scaled;

namespace {

class Ctx : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Ctx);
class Errgroup : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Errgroup);

bool is_closed(const gort::chan<std::monostate>& c) {
  return gort::select(gort::recv_case(c), gort::default_case()) == 0;
}

TEST(ContextErrors, MessagesAndStdEquivalents) {
  std::error_code canceled = gort::errc::canceled;
  std::error_code exceeded = gort::errc::deadline_exceeded;
  EXPECT_EQ(canceled.message(), "context canceled");
  EXPECT_EQ(exceeded.message(), "context deadline exceeded");
  EXPECT_EQ(exceeded, std::errc::timed_out);
  EXPECT_EQ(canceled, std::errc::operation_canceled);
  EXPECT_NE(canceled, std::errc::timed_out);
  EXPECT_NE(canceled, exceeded);
}

TEST(ContextBackground, NeverDoneNoDeadlineNoValue) {
  gort::Context bg = gort::background();
  EXPECT_FALSE(bg.done());  // the nil channel
  EXPECT_FALSE(bg.err());
  EXPECT_FALSE(bg.deadline().has_value());
  static const gort::ContextKey<int> key;
  EXPECT_EQ(bg.value(key), nullptr);
}

TEST_P(Ctx, CancelClosesDoneAndSetsErr) {
  run([] {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    ASSERT_TRUE(ctx.done());
    EXPECT_FALSE(is_closed(ctx.done()));
    EXPECT_FALSE(ctx.err());
    cancel();
    EXPECT_TRUE(is_closed(ctx.done()));
    EXPECT_EQ(ctx.err(), gort::errc::canceled);
    cancel();  // idempotent
    EXPECT_EQ(ctx.err(), gort::errc::canceled);
  });
}

TEST_P(Ctx, CancelWakesEveryWaiter) {
  run([] {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    gort::WaitGroup wg;
    std::atomic<int> woke{0};
    auto started = gort::make_chan<int>(64);
    for (int i = 0; i < 64; ++i) {
      wg.go([&, ctx = ctx] {
        started.send(1);
        ctx.done().recv();
        woke.fetch_add(1);
      });
    }
    for (int i = 0; i < 64; ++i) started.recv();
    cancel();
    wg.wait();
    EXPECT_EQ(woke.load(), 64);
  });
}

TEST_P(Ctx, CancelingAParentCancelsEveryDescendant) {
  run([] {
    auto [root, cancel_root] = gort::with_cancel(gort::background());
    std::vector<gort::Context> all;
    std::vector<gort::CancelFunc> cancels;
    all.push_back(root);
    // A tree three levels deep, with value nodes in between.
    static const gort::ContextKey<int> key;
    for (int i = 0; i < 4; ++i) {
      auto [a, ca] = gort::with_cancel(gort::with_value(root, key, i));
      all.push_back(a);
      cancels.push_back(ca);
      for (int j = 0; j < 3; ++j) {
        auto [b, cb] = gort::with_timeout(a, 1h);
        all.push_back(b);
        cancels.push_back(cb);
        auto [c, cc] = gort::with_cancel(b);
        all.push_back(c);
        cancels.push_back(cc);
      }
    }
    for (auto& c : all) EXPECT_FALSE(c.err());
    cancel_root();
    for (auto& c : all) {
      EXPECT_TRUE(is_closed(c.done()));
      EXPECT_EQ(c.err(), gort::errc::canceled);
    }
  });
}

TEST_P(Ctx, CancelingAChildLeavesTheParentLive) {
  run([] {
    auto [parent, cancel_parent] = gort::with_cancel(gort::background());
    auto [child, cancel_child] = gort::with_cancel(parent);
    auto [sibling, cancel_sibling] = gort::with_cancel(parent);
    cancel_child();
    EXPECT_EQ(child.err(), gort::errc::canceled);
    EXPECT_FALSE(parent.err());
    EXPECT_FALSE(sibling.err());
    cancel_parent();
    EXPECT_EQ(sibling.err(), gort::errc::canceled);
    cancel_sibling();
  });
}

TEST_P(Ctx, ChildOfACanceledParentIsBornCanceled) {
  run([] {
    auto [parent, cancel] = gort::with_cancel(gort::background());
    cancel();
    auto [child, cancel_child] = gort::with_cancel(parent);
    EXPECT_EQ(child.err(), gort::errc::canceled);
    EXPECT_TRUE(is_closed(child.done()));
    auto [timed, cancel_timed] = gort::with_timeout(parent, 1h);
    EXPECT_EQ(timed.err(), gort::errc::canceled);
    cancel_child();
    cancel_timed();
  });
}

TEST_P(Ctx, TimeoutExpiresWithDeadlineExceeded) {
  run([] {
    const auto start = std::chrono::steady_clock::now();
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 20ms);
    ASSERT_TRUE(ctx.deadline().has_value());
    EXPECT_GE(*ctx.deadline(), start + 20ms);
    ctx.done().recv();
    EXPECT_GE(std::chrono::steady_clock::now(), start + 20ms);  // never early
    EXPECT_EQ(ctx.err(), gort::errc::deadline_exceeded);
    EXPECT_EQ(ctx.err(), std::errc::timed_out);
    cancel();  // after expiry: err stays deadline_exceeded
    EXPECT_EQ(ctx.err(), gort::errc::deadline_exceeded);
  });
}

TEST_P(Ctx, DeadlineInThePastIsAlreadyExceeded) {
  run([] {
    auto [ctx, cancel] = gort::with_deadline(gort::background(), std::chrono::steady_clock::now() - 1s);
    EXPECT_EQ(ctx.err(), gort::errc::deadline_exceeded);
    EXPECT_TRUE(is_closed(ctx.done()));
    cancel();
  });
}

TEST_P(Ctx, ChildKeepsTheEarlierParentDeadline) {
  run([] {
    auto [parent, cp] = gort::with_timeout(gort::background(), 20ms);
    auto [child, cc] = gort::with_timeout(parent, 1h);
    EXPECT_EQ(child.deadline(), parent.deadline());
    child.done().recv();
    EXPECT_EQ(child.err(), gort::errc::deadline_exceeded);  // inherited from the parent
    auto [sooner, cs] = gort::with_timeout(gort::background(), 1h);
    auto [inner, ci] = gort::with_timeout(sooner, 1ms);
    EXPECT_LT(*inner.deadline(), *sooner.deadline());
    inner.done().recv();
    EXPECT_EQ(inner.err(), gort::errc::deadline_exceeded);
    EXPECT_FALSE(sooner.err());
    cp();
    cc();
    cs();
    ci();
  });
}

TEST_P(Ctx, DoneWorksInSelectAsATimeout) {
  run([] {
    auto never = gort::make_chan<int>();
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 5ms);
    std::size_t i = gort::select(gort::recv_case(never), gort::recv_case(ctx.done()));
    EXPECT_EQ(i, 1u);
    cancel();
  });
}

TEST_P(Ctx, ValuesAreTypedAndFoundThroughAncestors) {
  run([] {
    static const gort::ContextKey<std::string> name;
    static const gort::ContextKey<int> id;
    static const gort::ContextKey<int> other_id;  // same type, different key
    auto a = gort::with_value(gort::background(), name, std::string("alice"));
    auto [b, cancel] = gort::with_cancel(a);
    auto c = gort::with_value(b, id, 42);
    auto d = gort::with_value(c, name, std::string("bob"));  // shadows
    ASSERT_NE(c.value(name), nullptr);
    EXPECT_EQ(*c.value(name), "alice");
    EXPECT_EQ(*d.value(name), "bob");
    EXPECT_EQ(*d.value(id), 42);
    EXPECT_EQ(d.value(other_id), nullptr);
    EXPECT_EQ(a.value(id), nullptr);
    cancel();
    EXPECT_EQ(d.err(), gort::errc::canceled);  // value nodes report their canceler's state
    EXPECT_TRUE(is_closed(d.done()));
  });
}

TEST_P(Ctx, DroppedChildrenAreFreedWithoutCancel) {
  run([] {
    auto [parent, cancel] = gort::with_cancel(gort::background());
    std::weak_ptr<gort::detail::ContextNode> weak;
    {
      auto [child, cancel_child] = gort::with_timeout(parent, 1h);
      weak = child.node();
      EXPECT_FALSE(weak.expired());
    }
    EXPECT_TRUE(weak.expired());  // the parent does not keep it alive (nor does its timer)
    cancel();                     // and canceling the parent afterwards is safe
  });
}

TEST_P(Ctx, ConcurrentCancelAndDeriveStress) {
  run([] {
    for (int round = 0; round < scaled(200); ++round) {
      auto [root, cancel] = gort::with_cancel(gort::background());
      gort::WaitGroup wg;
      std::atomic<int> observed{0};
      for (int i = 0; i < 8; ++i) {
        wg.go([&, root = root] {
          auto [c, cc] = gort::with_cancel(root);
          auto [t, ct] = gort::with_timeout(c, 1h);
          t.done().recv();
          if (t.err() == gort::errc::canceled) observed.fetch_add(1);
          ct();
          cc();
        });
      }
      wg.go([&] { cancel(); });
      wg.go([&] { cancel(); });
      wg.wait();
      EXPECT_EQ(observed.load(), 8);
    }
  });
}

TEST(CtxForeignThread, CancelFromAPlainThreadWakesGoroutines) {
  gort::run([] {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    std::thread t([cancel = cancel] { cancel(); });
    ctx.done().recv();
    EXPECT_EQ(ctx.err(), gort::errc::canceled);
    gort::blocking([&] { t.join(); });
  });
}

TEST_P(Ctx, SemaphoreAcquireGivesUpWhenTheContextEnds) {
  run([] {
    gort::Semaphore sem(2);
    ASSERT_TRUE(sem.try_acquire(2));
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    auto result = gort::make_chan<bool>(1);
    gort::go([&sem, result, ctx = ctx] { result.send(sem.acquire(ctx, 1)); });
    cancel();
    EXPECT_FALSE(*result.recv());
    auto [timed, ct] = gort::with_timeout(gort::background(), 5ms);
    EXPECT_FALSE(sem.acquire(timed, 1));
    // Nothing was taken by the failed acquires: releasing ours makes the whole size free.
    sem.release(2);
    EXPECT_TRUE(sem.try_acquire(2));
    sem.release(2);
    // A live context acquires once units come back.
    ASSERT_TRUE(sem.try_acquire(2));
    auto [live, cl] = gort::with_cancel(gort::background());
    gort::go([&sem, result, live = live] { result.send(sem.acquire(live, 2)); });
    sem.release(2);
    EXPECT_TRUE(*result.recv());
    sem.release(2);
    ct();
    cl();
  });
}

// ---- Group ------------------------------------------------------------------------------

TEST_P(Errgroup, WaitReturnsEmptyWhenAllSucceed) {
  run([] {
    gort::Group g;
    std::atomic<int> n{0};
    for (int i = 0; i < 100; ++i) g.go([&] { n.fetch_add(1); });
    for (int i = 0; i < 100; ++i) g.go([&]() -> std::error_code { n.fetch_add(1); return {}; });
    EXPECT_FALSE(g.wait());
    EXPECT_EQ(n.load(), 200);
    EXPECT_EQ(g.context().err(), gort::errc::canceled);  // canceled when wait returns
  });
}

TEST_P(Errgroup, FirstErrorIsReturnedAndCancelsTheOthers) {
  run([] {
    auto [parent, cancel_parent] = gort::with_cancel(gort::background());
    gort::Group g(parent);
    std::atomic<int> saw_cancel{0};
    for (int i = 0; i < 8; ++i) {
      g.go([&]() -> std::error_code {
        g.context().done().recv();
        saw_cancel.fetch_add(1);
        return gort::errc::canceled;  // a later error: must not replace the first
      });
    }
    g.go([]() -> std::error_code { return std::make_error_code(std::errc::io_error); });
    EXPECT_EQ(g.wait(), std::errc::io_error);
    EXPECT_EQ(saw_cancel.load(), 8);
    EXPECT_FALSE(parent.err());  // the group cancels its own context only
    cancel_parent();
  });
}

TEST_P(Errgroup, ParentCancellationReachesTheGroup) {
  run([] {
    auto [parent, cancel_parent] = gort::with_cancel(gort::background());
    gort::Group g(parent);
    g.go([&]() -> std::error_code {
      g.context().done().recv();
      return g.context().err();
    });
    cancel_parent();
    EXPECT_EQ(g.wait(), gort::errc::canceled);
  });
}

TEST_P(Errgroup, ExceptionIsRethrownByWait) {
  run([] {
    gort::Group g;
    g.go([] { throw std::runtime_error("worker failed"); });
    g.go([&] { g.context().done().recv(); });
    try {
      g.wait();
      ADD_FAILURE() << "wait() did not rethrow";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "worker failed");
    }
  });
}

TEST_P(Errgroup, SetLimitBoundsActiveGoroutines) {
  run([] {
    gort::Group g;
    g.set_limit(3);
    std::atomic<int> active{0}, peak{0}, total{0};
    for (int i = 0; i < 60; ++i) {
      g.go([&] {
        int now = active.fetch_add(1) + 1;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {}
        for (int k = 0; k < 5; ++k) gort::yield();
        active.fetch_sub(1);
        total.fetch_add(1);
      });
    }
    EXPECT_FALSE(g.wait());
    EXPECT_EQ(total.load(), 60);
    EXPECT_LE(peak.load(), 3);
    EXPECT_GE(peak.load(), 1);
  });
}

TEST_P(Errgroup, TryGoRefusesAtTheLimit) {
  run([] {
    gort::Group g;
    g.set_limit(1);
    auto release = gort::make_chan<int>();
    EXPECT_TRUE(g.try_go([release] { release.recv(); }));
    EXPECT_FALSE(g.try_go([] {}));
    EXPECT_THROW(g.set_limit(2), gort::panic_error);  // goroutines still active
    release.send(1);
    EXPECT_FALSE(g.wait());
    EXPECT_TRUE(g.try_go([] {}));
    EXPECT_FALSE(g.wait());
  });
}

}  // namespace
