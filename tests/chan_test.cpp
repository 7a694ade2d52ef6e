// Channels and select: the semantics of Go's own channel tests (runtime/chan_test.go,
// test/chan/*.go), over maxprocs 1, 2 and 8.
#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gort/chan.hpp>
#include <gort/debug.hpp>
#include <gort/select.hpp>

#include "test_util.hpp"

using namespace std::chrono_literals;
using gort_test::panic_message;
using gort_test::wait_parked;
using gort_test::scaled;

namespace {

class Chan : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Chan);
class Select : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Select);
class ChanStress : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(ChanStress);

using gort_test::count_parked;

// Counts live instances, to prove a channel destroys what it holds.
struct Counted {
  static inline std::atomic<int> live{0};
  std::string s;
  explicit Counted(std::string v) : s(std::move(v)) { live.fetch_add(1); }
  Counted(Counted&& o) noexcept : s(std::move(o.s)) { live.fetch_add(1); }
  Counted(const Counted& o) : s(o.s) { live.fetch_add(1); }
  Counted& operator=(const Counted&) = delete;
  ~Counted() { live.fetch_sub(1); }
};

// ---- basics ------------------------------------------------------------------------------

TEST_P(Chan, UnbufferedSendRecvIsFifo) {
  run([] {
    auto c = gort::make_chan<int>();
    EXPECT_TRUE(bool(c));
    EXPECT_EQ(c.cap(), 0u);
    EXPECT_EQ(c.len(), 0u);
    const int n = scaled(20000);
    gort::WaitGroup wg;
    wg.go([c, n] {
      for (int i = 0; i < n; ++i) c.send(i);
    });
    for (int i = 0; i < n; ++i) {
      std::optional<int> v = c.recv();
      ASSERT_TRUE(v.has_value());
      ASSERT_EQ(*v, i);
    }
    wg.wait();
    EXPECT_EQ(c.len(), 0u);
  });
}

TEST_P(Chan, BufferedSendRecvLenCap) {
  run([] {
    auto c = gort::make_chan<int>(3);
    EXPECT_EQ(c.cap(), 3u);
    EXPECT_EQ(c.len(), 0u);
    c.send(10);  // none of these block: there is room
    EXPECT_EQ(c.len(), 1u);
    c.send(11);
    c.send(12);
    EXPECT_EQ(c.len(), 3u);
    EXPECT_EQ(c.cap(), 3u);
    EXPECT_EQ(c.recv(), std::optional<int>(10));
    EXPECT_EQ(c.len(), 2u);
    c.send(13);  // wraps around the ring
    EXPECT_EQ(c.recv(), std::optional<int>(11));
    EXPECT_EQ(c.recv(), std::optional<int>(12));
    EXPECT_EQ(c.recv(), std::optional<int>(13));
    EXPECT_EQ(c.len(), 0u);
  });
}

TEST_P(Chan, BufferedFifoWithOneSender) {
  run([] {
    for (std::size_t cap : {1u, 16u, 1000u}) {
      auto c = gort::make_chan<int>(cap);
      const int n = scaled(50000);
      gort::WaitGroup wg;
      wg.go([c, n] {
        for (int i = 0; i < n; ++i) c.send(i);
        c.close();
      });
      int expect = 0;
      for (int v : c) {
        ASSERT_EQ(v, expect) << "cap " << cap;
        ++expect;
      }
      EXPECT_EQ(expect, n);
      wg.wait();
    }
  });
}

TEST_P(Chan, SendBlocksUntilReceived) {
  run([] {
    auto c = gort::make_chan<int>();
    std::atomic<bool> sent{false};
    gort::WaitGroup wg;
    wg.go([&] {
      c.send(1);
      sent = true;
    });
    wait_parked("chan send", 1);
    EXPECT_FALSE(sent.load());  // nobody received yet
    EXPECT_EQ(c.recv(), std::optional<int>(1));
    wg.wait();
    EXPECT_TRUE(sent.load());
  });
}

TEST_P(Chan, NilChannel) {
  run([] {
    gort::chan<int> c;
    EXPECT_FALSE(bool(c));
    EXPECT_EQ(c.cap(), 0u);
    EXPECT_EQ(c.len(), 0u);
    EXPECT_EQ(c, gort::chan<int>());
    EXPECT_FALSE(c == gort::make_chan<int>());
    gort::send_chan<int> s;
    gort::recv_chan<int> r;
    EXPECT_FALSE(bool(s));
    EXPECT_FALSE(bool(r));
    EXPECT_EQ(s.cap(), 0u);
    EXPECT_EQ(r.cap(), 0u);
    EXPECT_EQ(panic_message([&] { c.close(); }), "close of nil channel");
    EXPECT_EQ(panic_message([&] { s.close(); }), "close of nil channel");
  });
}

TEST_P(Chan, ManySendersManyReceiversDeliverEachValueOnce) {
  run([] {
    constexpr int kSenders = 8, kReceivers = 8;
    const int per = scaled(5000);
    const int total = kSenders * per;
    for (std::size_t cap : {0u, 1u, 16u}) {
      auto c = gort::make_chan<int>(cap);
      std::vector<std::atomic<int>> tally(static_cast<std::size_t>(total));
      std::atomic<int> order_errors{0};
      gort::WaitGroup senders, receivers;
      for (int s = 0; s < kSenders; ++s) {
        senders.go([c, s, per] {
          for (int i = 0; i < per; ++i) c.send(s * per + i);
        });
      }
      for (int r = 0; r < kReceivers; ++r) {
        receivers.go([&, c] {
          // Channel order is FIFO, so one receiver sees each sender's values ascending.
          std::array<int, kSenders> last;
          last.fill(-1);
          for (int v : c) {
            tally[std::size_t(v)].fetch_add(1, std::memory_order_relaxed);
            int s = v / per;
            if (v <= last[std::size_t(s)]) order_errors.fetch_add(1);
            last[std::size_t(s)] = v;
          }
        });
      }
      senders.wait();
      c.close();
      receivers.wait();
      int delivered = 0, wrong = 0;
      for (auto& t : tally) {
        delivered += t.load();
        if (t.load() != 1) ++wrong;
      }
      EXPECT_EQ(delivered, total) << "cap " << cap;
      EXPECT_EQ(wrong, 0) << "values not delivered exactly once, cap " << cap;
      EXPECT_EQ(order_errors.load(), 0) << "cap " << cap;
      EXPECT_EQ(c.len(), 0u);
    }
  });
}

// ---- close -------------------------------------------------------------------------------

TEST_P(Chan, RecvDrainsBufferThenReportsClosed) {
  run([] {
    auto c = gort::make_chan<int>(5);
    c.send(1);
    c.send(2);
    c.send(3);
    c.close();
    EXPECT_EQ(c.len(), 3u);
    EXPECT_EQ(c.recv(), std::optional<int>(1));
    EXPECT_EQ(c.recv(), std::optional<int>(2));
    EXPECT_EQ(c.recv(), std::optional<int>(3));
    EXPECT_EQ(c.recv(), std::nullopt);
    EXPECT_EQ(c.recv(), std::nullopt);  // stays closed
    EXPECT_EQ(c.len(), 0u);
    EXPECT_EQ(c.cap(), 5u);
  });
}

TEST_P(Chan, RangeEndsAtClose) {
  run([] {
    for (std::size_t cap : {0u, 7u}) {
      auto c = gort::make_chan<int>(cap);
      gort::WaitGroup wg;
      wg.go([c] {
        for (int i = 0; i < 100; ++i) c.send(i * i);
        c.close();
      });
      std::vector<int> got;
      for (int v : c) got.push_back(v);
      wg.wait();
      ASSERT_EQ(got.size(), 100u);
      for (int i = 0; i < 100; ++i) EXPECT_EQ(got[std::size_t(i)], i * i);
    }
  });
}

TEST_P(Chan, CloseWakesEveryBlockedReceiver) {
  run([] {
    constexpr int n = 50;
    auto c = gort::make_chan<int>();
    auto results = gort::make_chan<bool>(n);  // true: got nullopt
    for (int i = 0; i < n; ++i) {
      gort::go([c, results] { results.send(!c.recv().has_value()); });
    }
    wait_parked("chan receive", n);
    c.close();
    int closed_seen = 0;
    for (int i = 0; i < n; ++i) closed_seen += *results.recv() ? 1 : 0;
    EXPECT_EQ(closed_seen, n);
  });
}

TEST_P(Chan, CloseMakesEveryBlockedSenderPanic) {
  run([] {
    constexpr int n = 50;
    for (std::size_t cap : {0u, 3u}) {
      auto c = gort::make_chan<int>(cap);
      for (std::size_t i = 0; i < cap; ++i) c.send(-1);  // fill the buffer: sends block
      auto results = gort::make_chan<std::string>(n);
      for (int i = 0; i < n; ++i) {
        gort::go([c, results, i] { results.send(panic_message([&] { c.send(i); })); });
      }
      wait_parked("chan send", n);
      c.close();
      for (int i = 0; i < n; ++i) EXPECT_EQ(*results.recv(), "send on closed channel") << "cap " << cap;
      // The values buffered before close are still received, then the close.
      for (std::size_t i = 0; i < cap; ++i) EXPECT_EQ(c.recv(), std::optional<int>(-1));
      EXPECT_EQ(c.recv(), std::nullopt);
    }
  });
}

TEST_P(Chan, ClosePanics) {
  run([] {
    auto c = gort::make_chan<int>(1);
    c.close();
    EXPECT_EQ(panic_message([&] { c.close(); }), "close of closed channel");
    EXPECT_EQ(panic_message([&] { c.send(1); }), "send on closed channel");
    EXPECT_THROW(c.send(2), gort::panic_error);
    gort::chan<int> nil;
    EXPECT_EQ(panic_message([&] { nil.close(); }), "close of nil channel");
    // panic_error is a std::logic_error.
    try {
      c.close();
      FAIL() << "close of closed channel did not throw";
    } catch (const std::logic_error& e) {
      EXPECT_STREQ(e.what(), "close of closed channel");
    }
    // A send panic leaves the channel usable for receivers.
    EXPECT_EQ(c.recv(), std::nullopt);
  });
}

// ---- element types -----------------------------------------------------------------------

TEST_P(Chan, MoveOnlyElements) {
  run([] {
    for (std::size_t cap : {0u, 4u}) {
      auto c = gort::make_chan<std::unique_ptr<int>>(cap);
      gort::WaitGroup wg;
      wg.go([c] {
        for (int i = 0; i < 100; ++i) c.send(std::make_unique<int>(i));
        auto p = std::make_unique<int>(100);
        gort::select(gort::send_case(c, std::move(p)));
        c.close();
      });
      int expect = 0;
      for (std::unique_ptr<int> p : c) {  // `for (T v : ch)` moves each value out
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(*p, expect);
        ++expect;
      }
      EXPECT_EQ(expect, 101);
      wg.wait();
    }
    // A select receive hands the unique_ptr to the handler.
    auto c = gort::make_chan<std::unique_ptr<int>>(1);
    c.send(std::make_unique<int>(7));
    int got = 0;
    gort::select(gort::recv_case(c, [&](std::optional<std::unique_ptr<int>> v) { got = **v; }));
    EXPECT_EQ(got, 7);
  });
}

TEST_P(Chan, MonostateChannelSignals) {
  run([] {
    auto done = gort::make_chan<std::monostate>();
    std::atomic<int> work{0};
    constexpr int n = 20;
    for (int i = 0; i < n; ++i) {
      gort::go([done, &work] {
        work.fetch_add(1);
        done.send({});
      });
    }
    for (int i = 0; i < n; ++i) EXPECT_TRUE(done.recv().has_value());
    EXPECT_EQ(work.load(), n);
    // Close as a broadcast: every waiter sees it.
    auto quit = gort::make_chan<std::monostate>();
    gort::WaitGroup wg;
    std::atomic<int> woke{0};
    for (int i = 0; i < n; ++i) {
      wg.go([&, quit] {
        if (!quit.recv()) woke.fetch_add(1);
      });
    }
    quit.close();
    wg.wait();
    EXPECT_EQ(woke.load(), n);
  });
}

TEST_P(Chan, NonTrivialValuesLeftInChannelAreDestroyed) {
  run([] {
    const int before = Counted::live.load();
    {
      auto c = gort::make_chan<Counted>(8);
      for (int i = 0; i < 6; ++i) c.send(Counted(std::string(100, char('a' + i))));  // heap strings
      EXPECT_EQ(Counted::live.load() - before, 6);
      auto v = c.recv();  // moves one out
      ASSERT_TRUE(v.has_value());
      EXPECT_EQ(v->s, std::string(100, 'a'));
      // Wrap the ring so the leftovers straddle its end.
      for (int i = 0; i < 3; ++i) c.send(Counted(std::string(100, 'z')));
      EXPECT_EQ(Counted::live.load() - before, 9);  // 8 buffered + v
    }
    EXPECT_EQ(Counted::live.load(), before);
    {
      // Also via std::string directly (ASan's leak check sees a missed destructor).
      auto c = gort::make_chan<std::string>(4);
      c.send(std::string(200, 'x'));
      c.send(std::string(300, 'y'));
      auto copy = c;  // the last reference going away destroys them, not the first
    }
    {
      // A send case that was not chosen destroys its value; one that was moves it.
      auto c = gort::make_chan<Counted>();
      std::size_t i = gort::select(gort::send_case(c, Counted("unsent")), gort::default_case());
      EXPECT_EQ(i, 1u);
      EXPECT_EQ(Counted::live.load(), before);
    }
    EXPECT_EQ(Counted::live.load(), before);
  });
}

// ---- direction views ---------------------------------------------------------------------

TEST_P(Chan, SendAndRecvViewsShareTheChannel) {
  run([] {
    auto c = gort::make_chan<int>(2);
    gort::send_chan<int> s = c;
    gort::recv_chan<int> r = c;
    EXPECT_TRUE(bool(s));
    EXPECT_TRUE(bool(r));
    EXPECT_EQ(s, gort::send_chan<int>(c));
    EXPECT_EQ(r, gort::recv_chan<int>(c));
    auto other = gort::make_chan<int>(2);
    EXPECT_FALSE(s == gort::send_chan<int>(other));
    EXPECT_FALSE(r == gort::recv_chan<int>(other));
    EXPECT_FALSE(s == gort::send_chan<int>());

    auto c2 = c;  // a copy is the same channel
    EXPECT_EQ(c2, c);
    EXPECT_FALSE(c == other);
    s.send(5);
    EXPECT_EQ(c.len(), 1u);
    EXPECT_EQ(r.len(), 1u);
    EXPECT_EQ(s.len(), 1u);
    EXPECT_EQ(r.cap(), 2u);
    EXPECT_EQ(s.cap(), 2u);
    EXPECT_EQ(c2.recv(), std::optional<int>(5));
    c.send(6);
    EXPECT_EQ(r.recv(), std::optional<int>(6));

    // Views as goroutine parameters: a producer sees only a send_chan, a consumer a recv_chan.
    gort::WaitGroup wg;
    wg.go([s] {
      for (int i = 0; i < 50; ++i) s.send(i);
      s.close();
    });
    int sum = 0, count = 0;
    for (int v : r) sum += v, ++count;
    wg.wait();
    EXPECT_EQ(count, 50);
    EXPECT_EQ(sum, 49 * 50 / 2);
    EXPECT_EQ(c.recv(), std::nullopt);  // closed through the view
    EXPECT_EQ(panic_message([&] { s.close(); }), "close of closed channel");

    // Views select like channels.
    auto d = gort::make_chan<int>(1);
    gort::send_chan<int> ds = d;
    gort::recv_chan<int> dr = d;
    EXPECT_EQ(gort::select(gort::send_case(ds, 9), gort::default_case()), 0u);
    std::optional<int> got;
    EXPECT_EQ(gort::select(gort::recv_case(dr, [&](std::optional<int> v) { got = v; }), gort::default_case()), 0u);
    EXPECT_EQ(got, std::optional<int>(9));
  });
}

// ---- select ------------------------------------------------------------------------------

TEST_P(Select, RunsOnlyTheChosenHandlerAndReturnsItsIndex) {
  run([] {
    auto a = gort::make_chan<int>(1);
    auto b = gort::make_chan<std::string>(1);
    int ran_a = 0, ran_b = 0, ran_default = 0;
    std::optional<int> got_a;
    auto sel = [&] {
      return gort::select(gort::recv_case(a, [&](std::optional<int> v) { ++ran_a, got_a = v; }),
                          gort::send_case(b, "hi", [&] { ++ran_b; }),
                          gort::default_case([&] { ++ran_default; }));
    };
    // b has room, a is empty: the send runs.
    EXPECT_EQ(sel(), 1u);
    EXPECT_EQ(ran_b, 1);
    EXPECT_EQ(ran_a + ran_default, 0);
    EXPECT_EQ(b.recv(), std::optional<std::string>("hi"));
    // Fill b and a: only the receive can run.
    b.send("full");
    a.send(42);
    EXPECT_EQ(sel(), 0u);
    EXPECT_EQ(ran_a, 1);
    EXPECT_EQ(got_a, std::optional<int>(42));
    EXPECT_EQ(ran_b, 1);
    EXPECT_EQ(ran_default, 0);
    // Nothing ready: default.
    EXPECT_EQ(sel(), 2u);
    EXPECT_EQ(ran_default, 1);
    EXPECT_EQ(ran_a, 1);
    EXPECT_EQ(ran_b, 1);
    EXPECT_EQ(b.recv(), std::optional<std::string>("full"));
  });
}

TEST_P(Select, HandlerlessCasesAndRecvHandlerTakingNothing) {
  run([] {
    auto a = gort::make_chan<int>(1);
    a.send(1);
    EXPECT_EQ(gort::select(gort::recv_case(a), gort::default_case()), 0u);
    EXPECT_EQ(a.len(), 0u);  // the value was consumed
    EXPECT_EQ(gort::select(gort::recv_case(a), gort::default_case()), 1u);
    EXPECT_EQ(gort::select(gort::send_case(a, 2), gort::default_case()), 0u);
    EXPECT_EQ(a.recv(), std::optional<int>(2));
    bool called = false;
    a.send(3);
    EXPECT_EQ(gort::select(gort::default_case(), gort::recv_case(a, [&] { called = true; })), 1u);
    EXPECT_TRUE(called);
    EXPECT_EQ(a.len(), 0u);
    // The default case may come first; an empty default handler is fine.
    EXPECT_EQ(gort::select(gort::default_case()), 0u);
  });
}

TEST_P(Select, DefaultOnlyWhenNothingIsReady) {
  run([] {
    auto a = gort::make_chan<int>(1);
    auto b = gort::make_chan<int>();
    const int n = scaled(10000);
    int defaults = 0, ready = 0;
    for (int i = 0; i < n; ++i) {
      if (i % 2 == 0) a.send(i);
      std::size_t k = gort::select(gort::recv_case(a), gort::recv_case(b), gort::default_case());
      if (i % 2 == 0) {
        if (k == 0) ++ready;
      } else {
        if (k == 2) ++defaults;
      }
    }
    EXPECT_EQ(ready, (n + 1) / 2);
    EXPECT_EQ(defaults, n / 2);
    // A closed channel is always ready: default never runs.
    b.close();
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(gort::select(gort::recv_case(b), gort::default_case()), 0u);
  });
}

TEST_P(Select, NilChannelCasesAreNeverChosen) {
  run([] {
    gort::chan<int> nil;
    for (int i = 0; i < 1000; ++i) {
      ASSERT_EQ(gort::select(gort::recv_case(nil), gort::send_case(nil, 1), gort::default_case()), 2u);
    }
    // Blocking, with a real case that a sender makes ready.
    auto c = gort::make_chan<int>();
    const int n = scaled(2000);
    gort::WaitGroup wg;
    wg.go([c, n] {
      for (int i = 0; i < n; ++i) c.send(i);
    });
    for (int i = 0; i < n; ++i) {
      std::optional<int> got;
      std::size_t k = gort::select(gort::recv_case(nil), gort::recv_case(c, [&](std::optional<int> v) { got = v; }),
                                   gort::send_case(nil, 5));
      ASSERT_EQ(k, 1u);
      ASSERT_EQ(got, std::optional<int>(i));
    }
    wg.wait();
    // Dropping a closed channel to nil, as Go code does, takes it out of the select.
    auto x = gort::make_chan<int>();
    x.close();
    gort::chan<int> y = x;
    EXPECT_EQ(gort::select(gort::recv_case(y), gort::default_case()), 0u);
    y = gort::chan<int>();
    EXPECT_EQ(gort::select(gort::recv_case(y), gort::default_case()), 1u);
  });
}

TEST_P(Select, SendCaseOnClosedChannelPanics) {
  run([] {
    auto c = gort::make_chan<int>(1);
    c.close();
    EXPECT_EQ(panic_message([&] { gort::select(gort::send_case(c, 1)); }), "send on closed channel");
    EXPECT_EQ(panic_message([&] { gort::select(gort::send_case(c, 1), gort::default_case()); }),
              "send on closed channel");
    // A select parked on a send that the channel's close interrupts panics too.
    auto d = gort::make_chan<int>();
    auto never = gort::make_chan<int>();
    auto result = gort::make_chan<std::string>(1);
    gort::go([=] {
      result.send(panic_message([&] { gort::select(gort::send_case(d, 1), gort::recv_case(never)); }));
    });
    wait_parked("select", 1);
    d.close();
    EXPECT_EQ(result.recv(), std::optional<std::string>("send on closed channel"));
  });
}

TEST_P(Select, RecvCaseOnClosedChannelIsReadyWithNullopt) {
  run([] {
    auto c = gort::make_chan<int>(2);
    c.send(1);
    c.close();
    std::vector<std::optional<int>> got;
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(gort::select(gort::recv_case(c, [&](std::optional<int> v) { got.push_back(v); }),
                             gort::default_case()),
                0u);
    }
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], std::optional<int>(1));
    EXPECT_EQ(got[1], std::nullopt);
    EXPECT_EQ(got[2], std::nullopt);
    // A parked select is woken by close with nullopt.
    auto d = gort::make_chan<int>();
    auto never = gort::make_chan<int>();
    auto result = gort::make_chan<int>(1);  // 1: nullopt at case 0
    gort::go([=] {
      int r = -1;
      std::size_t k = gort::select(gort::recv_case(never), gort::recv_case(d, [&](std::optional<int> v) {
                                     r = v.has_value() ? 0 : 1;
                                   }));
      result.send(k == 1 ? r : -1);
    });
    wait_parked("select", 1);
    d.close();
    EXPECT_EQ(result.recv(), std::optional<int>(1));
  });
}

TEST_P(Select, BlocksUntilALaterSenderArrives) {
  run([] {
    auto a = gort::make_chan<int>();
    auto b = gort::make_chan<int>();
    for (int round = 0; round < 20; ++round) {
      gort::chan<int> target = round % 2 ? a : b;
      gort::WaitGroup wg;
      wg.go([&, target] {
        wait_parked("select", 1);  // the main goroutine is parked in the select below
        target.send(round);
      });
      std::optional<int> got;
      std::size_t k = gort::select(gort::recv_case(a, [&](std::optional<int> v) { got = v; }),
                                   gort::recv_case(b, [&](std::optional<int> v) { got = v; }));
      EXPECT_EQ(k, round % 2 ? 0u : 1u);
      EXPECT_EQ(got, std::optional<int>(round));
      wg.wait();
    }
    // A parked select with a send case is completed by a later receiver.
    auto c = gort::make_chan<int>();
    gort::WaitGroup wg;
    std::optional<int> got;
    wg.go([&] {
      wait_parked("select", 1);
      got = c.recv();
    });
    EXPECT_EQ(gort::select(gort::recv_case(a), gort::send_case(c, 77)), 1u);
    wg.wait();
    EXPECT_EQ(got, std::optional<int>(77));
  });
}

TEST_P(Select, SameChannelTwiceInOneSelect) {
  run([] {
    auto c = gort::make_chan<int>(1);
    c.send(1);
    std::optional<int> got;
    std::size_t k = gort::select(gort::recv_case(c, [&](std::optional<int> v) { got = v; }),
                                 gort::recv_case(c, [&](std::optional<int> v) { got = v; }));
    EXPECT_LT(k, 2u);
    EXPECT_EQ(got, std::optional<int>(1));
    // Blocking with the same channel twice, completed by another goroutine.
    auto u = gort::make_chan<int>();
    gort::WaitGroup wg;
    wg.go([u] { u.send(5); });
    got.reset();
    k = gort::select(gort::recv_case(u, [&](std::optional<int> v) { got = v; }),
                     gort::recv_case(u, [&](std::optional<int> v) { got = v; }));
    EXPECT_LT(k, 2u);
    EXPECT_EQ(got, std::optional<int>(5));
    wg.wait();
  });
}

// Counts which of k always-ready cases 100,000 selects choose.
template <class Sel>
std::vector<int> pick_counts(int k, Sel sel) {
  std::vector<int> counts(std::size_t(k), 0);
  for (int i = 0; i < 100'000; ++i) {
    std::size_t j = sel();
    EXPECT_LT(j, std::size_t(k));
    if (j < std::size_t(k)) ++counts[j];
  }
  return counts;
}

// Within ±3% of uniform: about 9 standard deviations for k = 2, 5.5 for k = 4.
void expect_uniform(const std::vector<int>& counts, const char* what) {
  const double expect = 100'000.0 / double(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i) {
    EXPECT_GT(counts[i], expect * 0.97) << what << ": case " << i;
    EXPECT_LT(counts[i], expect * 1.03) << what << ": case " << i;
  }
}

TEST_P(Select, FairAmongReadyCases) {
  run([] {
    auto c0 = gort::make_chan<int>(), c1 = gort::make_chan<int>();
    auto c2 = gort::make_chan<int>(), c3 = gort::make_chan<int>();
    c0.close(), c1.close(), c2.close(), c3.close();
    expect_uniform(pick_counts(2, [&] { return gort::select(gort::recv_case(c0), gort::recv_case(c1)); }),
                   "two closed");
    expect_uniform(pick_counts(4, [&] {
                     return gort::select(gort::recv_case(c0), gort::recv_case(c1), gort::recv_case(c2),
                                         gort::recv_case(c3));
                   }),
                   "four closed");
    // With a default present (never taken: something is always ready).
    expect_uniform(pick_counts(2, [&] {
                     return gort::select(gort::recv_case(c0), gort::recv_case(c1), gort::default_case());
                   }),
                   "two closed with default");

    // Buffered channels kept full: each handler refills its channel.
    auto a = gort::make_chan<int>(1), b = gort::make_chan<int>(1);
    auto c = gort::make_chan<int>(1), d = gort::make_chan<int>(1);
    a.send(0), b.send(1), c.send(2), d.send(3);
    int wrong_values = 0;
    auto refill = [&](const gort::chan<int>& ch, int want) {
      return [&ch, want, &wrong_values](std::optional<int> v) {
        if (v != std::optional<int>(want)) ++wrong_values;
        ch.send(want);
      };
    };
    expect_uniform(pick_counts(2, [&] {
                     return gort::select(gort::recv_case(a, refill(a, 0)), gort::recv_case(b, refill(b, 1)));
                   }),
                   "two full");
    expect_uniform(pick_counts(4, [&] {
                     return gort::select(gort::recv_case(a, refill(a, 0)), gort::recv_case(b, refill(b, 1)),
                                         gort::recv_case(c, refill(c, 2)), gort::recv_case(d, refill(d, 3)));
                   }),
                   "four full");
    EXPECT_EQ(wrong_values, 0);

    // Send cases on channels that always have room.
    auto e = gort::make_chan<int>(1), f = gort::make_chan<int>(1);
    expect_uniform(pick_counts(2, [&] {
                     std::size_t k = gort::select(gort::send_case(e, 0), gort::send_case(f, 1));
                     (k == 0 ? e : f).recv();
                     return k;
                   }),
                   "two sends");
  });
}

// Go's TestSelfSelect: send and receive on the same channel in one select, from two
// goroutines, neither deadlocks nor (unbuffered) receives its own value.
TEST_P(Select, SelfSelect) {
  run([] {
    const int iters = scaled(20000);
    for (std::size_t cap : {0u, 10u}) {
      auto c = gort::make_chan<int>(cap);
      std::atomic<int> self_receives{0}, closed_receives{0};
      gort::WaitGroup wg;
      for (int p = 0; p < 2; ++p) {
        wg.go([&, c, p, cap] {
          auto on_recv = [&](std::optional<int> v) {
            if (!v) closed_receives.fetch_add(1);
            else if (cap == 0 && *v == p) self_receives.fetch_add(1);
          };
          for (int i = 0; i < iters; ++i) {
            if (p == 0 || i % 2 == 0) {
              gort::select(gort::send_case(c, p), gort::recv_case(c, on_recv));
            } else {
              gort::select(gort::recv_case(c, on_recv), gort::send_case(c, p));
            }
          }
        });
      }
      wg.wait();
      EXPECT_EQ(self_receives.load(), 0) << "cap " << cap;
      EXPECT_EQ(closed_receives.load(), 0) << "cap " << cap;
    }
  });
}

TEST_P(Select, ManySelectorsWithConcurrentSenders) {
  run([] {
    constexpr int kSenders = 4, kSelectors = 8;
    const int per = scaled(5000);
    auto a = gort::make_chan<int>();
    auto b = gort::make_chan<int>(4);
    std::vector<std::atomic<int>> tally(static_cast<std::size_t>(2 * kSenders * per));
    std::atomic<int> from_a{0}, from_b{0};
    gort::WaitGroup senders, selectors;
    for (int s = 0; s < kSenders; ++s) {
      senders.go([=] {
        for (int i = 0; i < per; ++i) a.send(s * per + i);
      });
      senders.go([=] {
        for (int i = 0; i < per; ++i) b.send(kSenders * per + s * per + i);
      });
    }
    for (int r = 0; r < kSelectors; ++r) {
      selectors.go([&, a, b]() mutable {
        // Receive from both until both are closed; a closed channel is set to nil (Go idiom).
        while (a || b) {
          gort::select(gort::recv_case(a, [&](std::optional<int> v) {
                         if (!v) return void(a = gort::chan<int>());
                         from_a.fetch_add(1);
                         tally[std::size_t(*v)].fetch_add(1);
                       }),
                       gort::recv_case(b, [&](std::optional<int> v) {
                         if (!v) return void(b = gort::chan<int>());
                         from_b.fetch_add(1);
                         tally[std::size_t(*v)].fetch_add(1);
                       }));
        }
      });
    }
    senders.wait();
    a.close();
    b.close();
    selectors.wait();
    EXPECT_EQ(from_a.load(), kSenders * per);
    EXPECT_EQ(from_b.load(), kSenders * per);
    int wrong = 0;
    for (auto& t : tally) wrong += t.load() != 1;
    EXPECT_EQ(wrong, 0);
  });
}

TEST_P(Select, SelectSendersAndSelectReceiversPair) {
  run([] {
    // Both sides select: senders over two channels, receivers over the same two.
    const int per = scaled(5000);
    constexpr int kSenders = 4, kReceivers = 4;
    auto a = gort::make_chan<int>(), b = gort::make_chan<int>();
    std::atomic<long long> sum{0};
    std::atomic<int> count{0};
    gort::WaitGroup senders, receivers;
    for (int s = 0; s < kSenders; ++s) {
      senders.go([=] {
        for (int i = 1; i <= per; ++i) gort::select(gort::send_case(a, i), gort::send_case(b, i));
      });
    }
    for (int r = 0; r < kReceivers; ++r) {
      receivers.go([&, a, b]() mutable {
        while (a || b) {
          auto take = [&](gort::chan<int>& ch) {
            return [&](std::optional<int> v) {
              if (!v) return void(ch = gort::chan<int>());
              sum.fetch_add(*v);
              count.fetch_add(1);
            };
          };
          gort::select(gort::recv_case(a, take(a)), gort::recv_case(b, take(b)));
        }
      });
    }
    senders.wait();
    a.close();
    b.close();
    receivers.wait();
    EXPECT_EQ(count.load(), kSenders * per);
    EXPECT_EQ(sum.load(), (long long)kSenders * per * (per + 1) / 2);
  });
}

// ---- dynamic select ----------------------------------------------------------------------

TEST_P(Select, DynamicSelectOverRuntimeSizedList) {
  run([] {
    constexpr int k = 20;  // more than the small-select fast path holds
    std::vector<gort::chan<int>> chans;
    for (int i = 0; i < k; ++i) chans.push_back(gort::make_chan<int>(1));
    std::mt19937 rng(12345);
    for (int round = 0; round < 500; ++round) {
      const int which = int(rng() % k);
      chans[std::size_t(which)].send(round);
      std::vector<gort::SelectCase> cases;
      int got = -1, got_from = -1;
      for (int i = 0; i < k; ++i) {
        cases.push_back(gort::recv_case(chans[std::size_t(i)], [&, i](std::optional<int> v) {
          got = v.value_or(-2);
          got_from = i;
        }));
      }
      cases.push_back(gort::default_case([&] { got_from = -3; }));
      EXPECT_EQ(cases.size(), std::size_t(k + 1));
      ASSERT_EQ(gort::select(std::span<gort::SelectCase>(cases)), std::size_t(which));
      EXPECT_EQ(got_from, which);
      EXPECT_EQ(got, round);
    }
    // Nothing ready: the default's index, wherever it is.
    {
      std::vector<gort::SelectCase> cases;
      cases.push_back(gort::recv_case(chans[0]));
      bool ran = false;
      cases.push_back(gort::default_case([&] { ran = true; }));
      for (int i = 1; i < k; ++i) cases.push_back(gort::recv_case(chans[std::size_t(i)]));
      EXPECT_EQ(gort::select(std::span<gort::SelectCase>(cases)), 1u);
      EXPECT_TRUE(ran);
      EXPECT_TRUE(cases[1].is_default());
      EXPECT_FALSE(cases[0].is_default());
      EXPECT_FALSE(cases[0].is_send());
    }
    // Send cases: every channel full but one.
    for (auto& c : chans) c.send(-1);
    {
      EXPECT_EQ(chans[13].recv(), std::optional<int>(-1));
      std::vector<gort::SelectCase> cases;
      bool sent = false;
      for (int i = 0; i < k; ++i) cases.push_back(gort::send_case(chans[std::size_t(i)], 1000 + i, [&] { sent = true; }));
      EXPECT_TRUE(cases[0].is_send());
      cases.push_back(gort::default_case());
      EXPECT_EQ(gort::select(std::span<gort::SelectCase>(cases)), 13u);
      EXPECT_TRUE(sent);
      EXPECT_EQ(chans[13].recv(), std::optional<int>(1013));
    }
    for (auto& c : chans) {
      if (c.len() > 0) EXPECT_EQ(c.recv(), std::optional<int>(-1));
    }
    // Blocking (no default) until another goroutine sends on one of them; mixed element
    // types and a nil case in the list.
    auto s = gort::make_chan<std::string>();
    gort::WaitGroup wg;
    for (int round = 0; round < 10; ++round) {
      const int which = (round * 7) % (k + 1);  // k: the string channel
      wg.go([&, which, round] {
        wait_parked("select", 1);
        if (which == k) s.send("str" + std::to_string(round));
        else chans[std::size_t(which)].send(round);
      });
      std::vector<gort::SelectCase> cases;
      std::string str;
      int got = -1;
      cases.push_back(gort::recv_case(gort::chan<int>()));  // nil: never chosen
      for (int i = 0; i < k; ++i) {
        cases.push_back(gort::recv_case(chans[std::size_t(i)], [&](std::optional<int> v) { got = *v; }));
      }
      cases.push_back(gort::recv_case(s, [&](std::optional<std::string> v) { str = *v; }));
      std::size_t idx = gort::select(std::span<gort::SelectCase>(cases));
      EXPECT_EQ(idx, std::size_t(which + 1));
      if (which == k) EXPECT_EQ(str, "str" + std::to_string(round));
      else EXPECT_EQ(got, round);
      wg.wait();
    }
    // A list may be kept and selected again (its recv cases receive again).
    std::vector<gort::SelectCase> keep;
    int total = 0;
    for (int i = 0; i < k; ++i) {
      keep.push_back(gort::recv_case(chans[std::size_t(i)], [&](std::optional<int> v) { total += *v; }));
    }
    for (int i = 0; i < k; ++i) chans[std::size_t(i)].send(i);
    for (int i = 0; i < k; ++i) gort::select(std::span<gort::SelectCase>(keep));
    EXPECT_EQ(total, k * (k - 1) / 2);
    // Two default cases are a panic (reflect.Select's rule).
    std::vector<gort::SelectCase> two;
    two.push_back(gort::default_case());
    two.push_back(gort::default_case());
    EXPECT_THROW(gort::select(std::span<gort::SelectCase>(two)), gort::panic_error);
  });
}

// ---- foreign threads ---------------------------------------------------------------------

TEST_P(Chan, ForeignThreadBridgesGoroutines) {
  run([] {
    const int n = scaled(20000);
    auto in = gort::make_chan<int>();      // thread -> goroutines
    auto out = gort::make_chan<int>(8);    // goroutines -> thread
    std::atomic<long long> thread_sum{0};
    std::atomic<int> thread_count{0};
    std::thread t([&] {
      EXPECT_EQ(gort::goroutine_id(), 0);
      for (int i = 0; i < n; ++i) in.send(i);
      in.close();
      long long sum = 0;
      int count = 0;
      for (int v : out) sum += v, ++count;
      thread_sum = sum;
      thread_count = count;
    });
    std::atomic<long long> sum{0};
    std::atomic<int> count{0};
    gort::WaitGroup receivers, senders;
    for (int r = 0; r < 4; ++r) {
      receivers.go([&] {
        for (int v : in) sum.fetch_add(v), count.fetch_add(1);
      });
    }
    for (int s = 0; s < 4; ++s) {
      senders.go([&, s] {
        for (int i = 0; i < n / 4; ++i) out.send(s * (n / 4) + i);
      });
    }
    receivers.wait();
    senders.wait();
    out.close();
    gort::blocking([&] { t.join(); });
    EXPECT_EQ(count.load(), n);
    EXPECT_EQ(sum.load(), (long long)n * (n - 1) / 2);
    const int m = 4 * (n / 4);
    EXPECT_EQ(thread_count.load(), m);
    EXPECT_EQ(thread_sum.load(), (long long)m * (m - 1) / 2);
  });
}

TEST_P(Chan, ForeignThreadSelect) {
  run([] {
    const int n = scaled(5000);
    auto a = gort::make_chan<int>(), b = gort::make_chan<int>();
    auto back = gort::make_chan<int>();
    std::atomic<int> defaults{0}, received{0}, sent_back{0};
    std::atomic<long long> sum{0};
    auto empty = gort::make_chan<int>();
    std::thread t([&] {
      // Nothing is ready: a plain-thread select takes its default.
      if (gort::select(gort::recv_case(empty), gort::default_case()) == 1) defaults.fetch_add(1);
      gort::chan<int> ra = a, rb = b;
      while (ra || rb) {  // blocking select on a plain thread
        gort::select(gort::recv_case(ra, [&](std::optional<int> v) {
                       if (!v) return void(ra = gort::chan<int>());
                       sum.fetch_add(*v), received.fetch_add(1);
                     }),
                     gort::recv_case(rb, [&](std::optional<int> v) {
                       if (!v) return void(rb = gort::chan<int>());
                       sum.fetch_add(*v), received.fetch_add(1);
                     }));
      }
      for (int i = 0; i < n; ++i) {
        gort::select(gort::send_case(back, i, [&] { sent_back.fetch_add(1); }));
      }
      back.close();
    });
    gort::WaitGroup wg;
    wg.go([&] {
      for (int i = 0; i < n; ++i) a.send(i);
    });
    wg.go([&] {
      for (int i = 0; i < n; ++i) b.send(i);
    });
    wg.wait();
    a.close();
    b.close();
    int got = 0;
    for (int v : back) {
      EXPECT_EQ(v, got);  // one sender: FIFO
      ++got;
    }
    gort::blocking([&] { t.join(); });
    EXPECT_EQ(defaults.load(), 1);
    EXPECT_EQ(received.load(), 2 * n);
    EXPECT_EQ(sum.load(), 2LL * n * (n - 1) / 2);
    EXPECT_EQ(got, n);
    EXPECT_EQ(sent_back.load(), n);
  });
}

// ---- stress ------------------------------------------------------------------------------

TEST_P(ChanStress, MixedSelectSendRecvClose) {
  run([] {
    const int rounds = scaled(60);
    std::mt19937 rng(unsigned(GetParam()) * 7919u);
    for (int round = 0; round < rounds; ++round) {
      constexpr int kChans = 4;
      std::vector<gort::chan<int>> chans;
      for (int i = 0; i < kChans; ++i) chans.push_back(gort::make_chan<int>(rng() % 4));
      const int producers = 4, per = 300;
      std::atomic<long long> sum{0};
      std::atomic<int> count{0};
      gort::WaitGroup prod, cons;
      // Producers: each value goes to whichever channel a select picks (or a plain send).
      for (int p = 0; p < producers; ++p) {
        prod.go([&, p] {
          for (int i = 1; i <= per; ++i) {
            if (i % 5 == 0) {
              chans[std::size_t((p + i) % kChans)].send(i);
            } else {
              gort::select(gort::send_case(chans[0], i), gort::send_case(chans[1], i),
                           gort::send_case(chans[2], i), gort::send_case(chans[3], i));
            }
          }
        });
      }
      // Consumers of three kinds: blocking select over all, polling select with default,
      // and range over a single channel.
      for (int r = 0; r < 3; ++r) {
        cons.go([&, chans]() mutable {
          int open = kChans;
          while (open > 0) {
            auto take = [&](gort::chan<int>& ch) {
              return [&](std::optional<int> v) {
                if (!v) {
                  ch = gort::chan<int>();
                  --open;
                  return;
                }
                sum.fetch_add(*v);
                count.fetch_add(1);
              };
            };
            gort::select(gort::recv_case(chans[0], take(chans[0])), gort::recv_case(chans[1], take(chans[1])),
                         gort::recv_case(chans[2], take(chans[2])), gort::recv_case(chans[3], take(chans[3])));
          }
        });
      }
      cons.go([&, chans]() mutable {
        int open = kChans;
        while (open > 0) {
          std::vector<gort::SelectCase> cases;
          for (auto& ch : chans) {
            cases.push_back(gort::recv_case(ch, [&](std::optional<int> v) {
              if (!v) {
                ch = gort::chan<int>();
                --open;
                return;
              }
              sum.fetch_add(*v);
              count.fetch_add(1);
            }));
          }
          cases.push_back(gort::default_case([] { gort::yield(); }));
          gort::select(std::span<gort::SelectCase>(cases));
        }
      });
      for (int i = 0; i < kChans; ++i) {
        cons.go([&, c = chans[std::size_t(i)]] {
          for (int v : c) sum.fetch_add(v), count.fetch_add(1);
        });
      }
      prod.wait();
      for (auto& c : chans) c.close();
      cons.wait();
      ASSERT_EQ(count.load(), producers * per) << "round " << round;
      ASSERT_EQ(sum.load(), (long long)producers * per * (per + 1) / 2) << "round " << round;

      // Close racing with senders: every send that returned is received; the rest panic.
      auto c = gort::make_chan<int>(rng() % 3);
      std::atomic<int> sent{0}, panicked{0}, received{0};
      gort::WaitGroup racers, drain;
      const int attempts = 200;
      for (int s = 0; s < 4; ++s) {
        racers.go([&] {
          for (int i = 0; i < attempts; ++i) {
            try {
              if (i % 2) {
                c.send(i);
              } else {
                gort::select(gort::send_case(c, i), gort::recv_case(gort::chan<int>()));
              }
              sent.fetch_add(1);
            } catch (const gort::panic_error& e) {
              EXPECT_STREQ(e.what(), "send on closed channel");
              panicked.fetch_add(1);
            }
          }
        });
      }
      // Main receives fewer values than the racers send, so its receives cannot block
      // forever; the drainers start just before the close and race with it.
      const int before_close = int(rng() % 300);
      for (int i = 0; i < before_close; ++i) {
        if (!c.recv()) break;
        received.fetch_add(1);
      }
      for (int r = 0; r < 2; ++r) {
        drain.go([&] {
          for (int v : c) {
            (void)v;
            received.fetch_add(1);
          }
        });
      }
      c.close();
      racers.wait();
      drain.wait();
      ASSERT_EQ(sent.load() + panicked.load(), 4 * attempts);
      ASSERT_EQ(received.load(), sent.load()) << "round " << round;
    }
  });
}

// A channel's lock unlocks with a plain store until a thread sleeps on it, which switches
// it to fenced unlocks behind a membarrier, and back after a quiet stretch (sched/futex.hpp,
// DekkerLock; tests/futex_test.cpp drives those cycles directly). Plain
// threads outnumber the CPUs and hammer a fresh channel each round with non-blocking
// operations, so lock holders are preempted and waiters sleep, many times across that
// switch; a lost wakeup would leave a thread asleep for good (the test would hang, and
// the deadline stops the others). Every value is received exactly once.
// Oversubscribed, every lock holder the host deschedules stalls the rest (a std::mutex
// version slows 8x beside two busy loops, this one 10x), and qemu adds its own: a round
// took ~20 ms under qemu alone and ~3 s beside the rest of CI's suite. So the deadline is
// per round (one budget for all 40 ran out on a slow CI host with no stall), and qemu
// sends a quarter of the values.
TEST_P(ChanStress, ContendedChannelLockLosesNoWakeup) {
  run([] {
    constexpr int kThreads = 6, kRounds = 40;
    const int per = std::max(scaled(1000) / (gort_test::kEmulated ? 4 : 1), 50);
    for (int round = 0; round < kRounds; ++round) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      auto ch = gort::make_chan<int>(2);
      std::atomic<long long> sum{0};
      std::atomic<int> received{0}, senders_left{kThreads / 2};
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          if (t % 2 == 0) {  // sender: values 1..per, each sent once, retrying on a full buffer
            for (int i = 1; i <= per;) {
              if (gort::select(gort::send_case(ch, i), gort::default_case()) == 0) ++i;
              if (std::chrono::steady_clock::now() > deadline) return;
            }
            senders_left.fetch_sub(1);
          } else {  // receiver: until every sender is done and the buffer is empty
            for (;;) {
              std::optional<int> v;
              const bool got = gort::select(gort::recv_case(ch, [&](std::optional<int> x) { v = x; }),
                                            gort::default_case()) == 0;
              if (got && v) {
                sum.fetch_add(*v);
                received.fetch_add(1);
              } else if (senders_left.load() == 0 && ch.len() == 0) {
                return;
              }
              if (std::chrono::steady_clock::now() > deadline) return;
            }
          }
        });
      }
      gort::blocking([&] {
        for (auto& th : threads) th.join();
      });
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "round " << round << ": a thread stalled";
      ASSERT_EQ(received.load(), (kThreads / 2) * per) << "round " << round;
      ASSERT_EQ(sum.load(), (long long)(kThreads / 2) * per * (per + 1) / 2) << "round " << round;
    }
  });
}

TEST_P(ChanStress, PingPongChains) {
  // A ring of goroutines passing a token through unbuffered channels (Go's chain benchmark).
  run([] {
    const int ring = 100, laps = scaled(200);
    std::vector<gort::chan<int>> links;
    for (int i = 0; i <= ring; ++i) links.push_back(gort::make_chan<int>());
    gort::WaitGroup wg;
    for (int i = 0; i < ring; ++i) {
      wg.go([in = links[std::size_t(i)], out = links[std::size_t(i + 1)]] {
        for (int v : in) out.send(v + 1);
        out.close();
      });
    }
    for (int lap = 0; lap < laps; ++lap) {
      links[0].send(lap);
      ASSERT_EQ(links[std::size_t(ring)].recv(), std::optional<int>(lap + ring));
    }
    links[0].close();
    EXPECT_EQ(links[std::size_t(ring)].recv(), std::nullopt);
    wg.wait();
  });
}

}  // namespace
