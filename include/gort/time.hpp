// gort/time.hpp — Go's time package, the parts goroutines wait with: sleep, after, Timer,
// Ticker and after_func. Timers live in per-P 4-ary heaps run by the scheduler; a sleeping
// goroutine holds no thread. Durations are std::chrono durations; instants are
// std::chrono::steady_clock time points.
//
// sleep works anywhere (on a plain thread it sleeps the thread). after, Timer, Ticker and
// after_func need an active run() (they throw std::logic_error otherwise), and may be used
// from plain threads while it is.
#pragma once
#include <chrono>
#include <cstdint>
#include <utility>

#include <gort/chan.hpp>
#include <gort/runtime.hpp>

namespace gort {

using time_point = std::chrono::steady_clock::time_point;

namespace detail {

struct TimerCore;  // src/time/time.cpp

struct TimerFunc {
  void* fn;
  void (*spawn)(void* fn);    // starts a goroutine running a copy of *fn
  void (*destroy)(void* fn) noexcept;
};

// A timer sending the time on `ch` (one-shot, or every `period_ns` if > 0), or spawning
// `func` when it fires. Returns the owner's reference.
TimerCore* timer_start(ChanCore* ch, std::int64_t delay_ns, std::int64_t period_ns, TimerFunc func);
bool timer_stop(TimerCore* t) noexcept;
bool timer_reset(TimerCore* t, std::int64_t delay_ns, std::int64_t period_ns);
void timer_retain(TimerCore* t) noexcept;
void timer_release(TimerCore* t) noexcept;
void sleep_ns(std::int64_t ns);

inline std::int64_t to_ns(std::chrono::nanoseconds d) noexcept { return d.count(); }

}  // namespace detail

// Pauses the calling goroutine for at least d (no thread is held). d <= 0 returns at once.
inline void sleep(std::chrono::nanoseconds d) { detail::sleep_ns(d.count()); }

// A single event: after d, the time is sent on `c` (capacity 1). Copies share the timer,
// as Go's *Timer. Dropping every copy does not stop it (it still fires, as in Go).
class Timer {
 public:
  explicit Timer(std::chrono::nanoseconds d)
      : c(make_chan<time_point>(1)), core_(detail::timer_start(c.core(), d.count(), 0, {})) {}
  Timer(const Timer& o) noexcept : c(o.c), core_(o.core_) { detail::timer_retain(core_); }
  Timer(Timer&& o) noexcept : c(o.c), core_(std::exchange(o.core_, nullptr)) {}
  Timer& operator=(Timer o) noexcept {
    c = o.c;
    std::swap(core_, o.core_);
    return *this;
  }
  ~Timer() {
    if (core_) detail::timer_release(core_);
  }

  // Prevents the timer from firing: true if that stopped it, false if it had already
  // fired or been stopped. As in Go 1.23, no stale value is received from c afterwards.
  bool stop() noexcept { return detail::timer_stop(core_); }
  // Re-arms the timer to fire after d: true if it was still pending.
  bool reset(std::chrono::nanoseconds d) { return detail::timer_reset(core_, d.count(), 0); }

  chan<time_point> c;  // the nil channel for after_func timers

 private:
  template <class F> friend Timer after_func(std::chrono::nanoseconds, F);
  struct FuncTag {};
  Timer(FuncTag, std::chrono::nanoseconds d, detail::TimerFunc f) : core_(detail::timer_start(nullptr, d.count(), 0, f)) {}
  detail::TimerCore* core_;
};

// Ticks every d on `c` (capacity 1; ticks a slow reader misses are dropped, as in Go).
// Stopped when destroyed.
class Ticker {
 public:
  explicit Ticker(std::chrono::nanoseconds d)
      : c(make_chan<time_point>(1)), core_(detail::timer_start(c.core(), check(d), check(d), {})) {}
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;
  Ticker(Ticker&& o) noexcept : c(o.c), core_(std::exchange(o.core_, nullptr)) {}
  ~Ticker() {
    if (core_) {
      detail::timer_stop(core_);
      detail::timer_release(core_);
    }
  }
  void stop() noexcept { detail::timer_stop(core_); }
  // Stops the ticker and restarts it with period d.
  void reset(std::chrono::nanoseconds d) { detail::timer_reset(core_, check(d), check(d)); }

  chan<time_point> c;

 private:
  static std::int64_t check(std::chrono::nanoseconds d) {
    if (d.count() <= 0) throw panic_error("non-positive interval for NewTicker");
    return d.count();
  }
  detail::TimerCore* core_;
};

// A channel that receives the time once d has passed (Go's time.After).
inline chan<time_point> after(std::chrono::nanoseconds d) { return Timer(d).c; }

// Runs f in its own goroutine once d has passed; the returned Timer can stop it (its c is
// the nil channel). Each firing (after reset) runs a copy of f.
template <class F>
Timer after_func(std::chrono::nanoseconds d, F f) {
  using Fn = std::decay_t<F>;
  detail::TimerFunc tf{
      new Fn(std::move(f)),
      [](void* p) { gort::go(*static_cast<Fn*>(p)); },
      [](void* p) noexcept { delete static_cast<Fn*>(p); }};
  try {
    return Timer(Timer::FuncTag{}, d, tf);
  } catch (...) {
    tf.destroy(tf.fn);
    throw;
  }
}

}  // namespace gort
