// gort/context.hpp — Go's context package: cancellation, deadlines and request-scoped
// values, carried down a tree of contexts.
//
// A Context is a copyable, thread-safe handle to a node; children keep their parent alive
// (values and deadlines are looked up through it), while a parent refers to its cancelable
// children weakly, so dropping a child's handles frees it (and stops its timer) without
// waiting for the parent. Canceling a node closes its done() channel and cancels every
// live descendant. Timeouts (with_timeout/with_deadline) need an active run().
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include <gort/chan.hpp>
#include <gort/time.hpp>

namespace gort {

// Why a context is done. deadline_exceeded compares equal to std::errc::timed_out and
// canceled to std::errc::operation_canceled.
enum class errc { canceled = 1, deadline_exceeded = 2 };
const std::error_category& context_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {int(e), context_category()}; }

}  // namespace gort

template <>
struct std::is_error_code_enum<gort::errc> : std::true_type {};

namespace gort {

// A typed key for with_value/value; keys are compared by identity (address), so declare
// them as long-lived objects (e.g. `inline const gort::ContextKey<User> user_key;`).
template <class V>
class ContextKey {
 public:
  constexpr ContextKey() noexcept = default;
  ContextKey(const ContextKey&) = delete;
  ContextKey& operator=(const ContextKey&) = delete;
};

namespace detail {
struct ContextNode;
using ValueHolder = std::shared_ptr<const void>;
}  // namespace detail

class Context {
 public:
  Context();  // background()

  // Closed once the context is canceled; the nil channel if it never can be.
  chan<std::monostate> done() const;
  // Empty while live; then errc::canceled or errc::deadline_exceeded.
  std::error_code err() const;
  std::optional<time_point> deadline() const;
  // The value stored under key by this context or an ancestor; nullptr if none.
  template <class V>
  const V* value(const ContextKey<V>& key) const {
    return static_cast<const V*>(find_value(&key));
  }

  explicit Context(std::shared_ptr<detail::ContextNode> n) noexcept : node_(std::move(n)) {}
  const std::shared_ptr<detail::ContextNode>& node() const noexcept { return node_; }

 private:
  const void* find_value(const void* key) const noexcept;
  std::shared_ptr<detail::ContextNode> node_;
};

// Cancels its context (and its descendants). Callable any number of times, from any
// thread; only the first call does anything.
class CancelFunc {
 public:
  CancelFunc() noexcept = default;
  explicit CancelFunc(std::shared_ptr<detail::ContextNode> n) noexcept : node_(std::move(n)) {}
  void operator()() const;

 private:
  std::shared_ptr<detail::ContextNode> node_;
};

// The root: never canceled, no values, no deadline.
Context background();
std::pair<Context, CancelFunc> with_cancel(Context parent);
std::pair<Context, CancelFunc> with_deadline(Context parent, time_point deadline);
std::pair<Context, CancelFunc> with_timeout(Context parent, std::chrono::nanoseconds timeout);

namespace detail {
Context with_value_holder(Context parent, const void* key, ValueHolder value);
}

template <class V>
Context with_value(Context parent, const ContextKey<V>& key, V value) {
  return detail::with_value_holder(std::move(parent), &key, std::make_shared<const V>(std::move(value)));
}

}  // namespace gort
