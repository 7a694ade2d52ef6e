// gort/group.hpp — errgroup (golang.org/x/sync/errgroup): run a group of goroutines, wait
// for all, get the first failure, and cancel the rest through the group's context.
//
// A failure is a returned non-empty std::error_code or an escaping exception. The first
// failure is kept and cancels context(); wait() returns that error code, or rethrows that
// exception. context() is also canceled when wait() returns. Not copyable or movable
// (its goroutines refer to it).
#pragma once
#include <exception>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include <gort/chan.hpp>
#include <gort/context.hpp>
#include <gort/select.hpp>
#include <gort/sync.hpp>

namespace gort {

class Group {
 public:
  Group() : Group(background()) {}
  explicit Group(const Context& parent) {
    auto [ctx, cancel] = with_cancel(parent);
    ctx_ = std::move(ctx);
    cancel_ = std::move(cancel);
  }
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Canceled at the first failure, and when wait() returns.
  const Context& context() const noexcept { return ctx_; }

  // Runs f (returning void or std::error_code) in a new goroutine; with a limit set,
  // blocks until fewer than that many are active.
  template <class F>
  [[gnu::noinline]] void go(F&& f) {
    if (limit_) limit_.send(std::monostate{});
    start(std::forward<F>(f), __builtin_return_address(0));
  }

  // As go, but returns false instead of blocking when the limit is reached.
  template <class F>
  [[gnu::noinline]] bool try_go(F&& f) {
    if (limit_ && select(send_case(limit_, std::monostate{}), default_case()) != 0) return false;
    start(std::forward<F>(f), __builtin_return_address(0));
    return true;
  }

  // At most n goroutines active at once (n < 0: no limit). Throws panic_error while
  // goroutines of the group are active, as Go panics.
  void set_limit(int n) {
    if (limit_ && limit_.len() != 0)
      throw panic_error("errgroup: modify limit while " + std::to_string(limit_.len()) +
                        " goroutines in the group are still active");
    limit_ = n < 0 ? chan<std::monostate>() : make_chan<std::monostate>(std::size_t(n));
  }

  // Waits for every goroutine; returns the first error (empty if none), or rethrows the
  // first failure if it was an exception.
  std::error_code wait() {
    wg_.wait();
    cancel_();
    if (first_exception_) std::rethrow_exception(first_exception_);
    return first_error_;
  }

 private:
  template <class F>
  void start(F&& f, void* caller_pc) {
    wg_.add(1);
    auto task = [this, fn = std::forward<F>(f)]() mutable {
      struct Done {
        Group* g;
        ~Done() {
          if (g->limit_) g->limit_.recv();
          g->wg_.done();
        }
      } done{this};
      try {
        if constexpr (std::is_same_v<std::invoke_result_t<decltype(fn)&>, void>) {
          fn();
        } else {
          std::error_code ec = fn();
          if (ec) fail(ec, nullptr);
        }
      } catch (...) {
        fail({}, std::current_exception());
      }
    };
    try {
      detail::spawn_task(Spawn{}, std::move(task), caller_pc);
    } catch (...) {
      if (limit_) limit_.recv();
      wg_.done();
      throw;
    }
  }

  void fail(std::error_code ec, std::exception_ptr ex) {
    once_.call([&] {
      first_error_ = ec;
      first_exception_ = std::move(ex);
      cancel_();
    });
  }

  WaitGroup wg_;
  Context ctx_;
  CancelFunc cancel_;
  Once once_;
  std::error_code first_error_;
  std::exception_ptr first_exception_;
  chan<std::monostate> limit_;  // a token per active goroutine, when limited (Go's sem)
};

}  // namespace gort
