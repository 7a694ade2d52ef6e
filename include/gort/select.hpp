// gort/select.hpp — Go's select statement, over any mix of channel types.
//
//   std::size_t i = gort::select(gort::recv_case(a, [](std::optional<int> v) { ... }),
//                                gort::send_case(b, value, [] { ... }),
//                                gort::default_case([] { ... }));
//
// select returns the 0-based index of the case that ran, after running its handler. Among
// ready cases one is chosen uniformly at random; nil-channel cases are never ready; without
// a default case select blocks until a case can proceed (with no cases at all, forever).
// A send case on a closed channel throws panic_error, as Go panics.
//
// The typed cases refer to their channel without counting a reference: they live for the
// full expression of the select call, like the channels passed to it. The dynamic form
// (select over a std::span<SelectCase>, Go's reflect.Select) holds references.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include <gort/chan.hpp>

namespace gort {

namespace detail {

// One case as the runtime sees it.
struct SelectOp {
  ChanCore* c = nullptr;   // nullptr: a nil channel, never ready
  void* elem = nullptr;    // send: the value to move from; recv: storage to construct into
  bool is_send = false;
  bool received = false;   // recv, on return: a value arrived (false: the channel is closed)
};

// Runs Go's selectgo over ops[0..n): returns the index of the case that proceeded, or -1
// when `block` is false and none was ready. n == 0 with block parks forever.
int select_impl(SelectOp* ops, int n, bool block);

struct NoHandler {};

template <class T, class F>
void call_recv_handler(F& f, std::optional<T>&& v) {
  if constexpr (std::is_same_v<F, NoHandler>) {
    (void)v;
  } else if constexpr (std::is_invocable_v<F&, std::optional<T>&&>) {
    std::invoke(f, std::move(v));
  } else {
    static_assert(std::is_invocable_v<F&>, "gort::recv_case: the handler must take std::optional<T> or nothing");
    (void)v;
    std::invoke(f);
  }
}

template <class F>
void call_plain_handler(F& f) {
  if constexpr (!std::is_same_v<F, NoHandler>) {
    static_assert(std::is_invocable_v<F&>, "gort::send_case/default_case: the handler takes no arguments");
    std::invoke(f);
  }
}

}  // namespace detail

template <class T, class F>
struct RecvCase {
  detail::ChanCore* c;
  F handler;
  detail::RecvSlot<T> slot;

  void fill(detail::SelectOp& op) noexcept {
    op.c = c;
    op.elem = slot.raw();
    op.is_send = false;
  }
  void fire(const detail::SelectOp& op) {
    if (op.received) {
      detail::call_recv_handler<T>(handler, slot.take());
    } else {
      detail::call_recv_handler<T>(handler, std::nullopt);
    }
  }
};

template <class T, class F>
struct SendCase {
  detail::ChanCore* c;
  T value;
  F handler;

  void fill(detail::SelectOp& op) noexcept {
    op.c = c;
    op.elem = std::addressof(value);
    op.is_send = true;
  }
  void fire(const detail::SelectOp&) { detail::call_plain_handler(handler); }
};

template <class F>
struct DefaultCase {
  F handler;
};

// A receive from ch (a chan<T> or recv_chan<T>); the handler gets std::optional<T>
// (std::nullopt: closed), or nothing.
template <class C, class F = detail::NoHandler>
auto recv_case(const C& ch, F handler = {}) {
  using T = typename C::value_type;
  return RecvCase<T, std::decay_t<F>>{ch.core(), std::move(handler), {}};
}

// A send of value on ch (a chan<T> or send_chan<T>); the handler runs once it was sent.
template <class C, class V, class F = detail::NoHandler>
auto send_case(const C& ch, V&& value, F handler = {}) {
  using T = typename C::value_type;
  return SendCase<T, std::decay_t<F>>{ch.core(), T(std::forward<V>(value)), std::move(handler)};
}

// Makes select non-blocking: runs when no other case is ready.
template <class F = detail::NoHandler>
auto default_case(F handler = {}) {
  return DefaultCase<std::decay_t<F>>{std::move(handler)};
}

namespace detail {

template <class C>
inline constexpr bool is_default_case = false;
template <class F>
inline constexpr bool is_default_case<DefaultCase<F>> = true;

template <class Tuple, std::size_t... I>
std::size_t select_tuple(Tuple& cases, std::index_sequence<I...>) {
  constexpr bool is_def[] = {is_default_case<std::tuple_element_t<I, Tuple>>...};
  constexpr std::size_t n = sizeof...(I);
  std::size_t ndefault = 0, default_index = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (is_def[i]) ++ndefault, default_index = i;
  }
  // Channel cases are packed in order; op_of[i] is case i's slot.
  SelectOp ops[n > 0 ? n : 1];
  int case_of_op[n > 0 ? n : 1];
  int nops = 0;
  (
      [&] {
        if constexpr (!is_default_case<std::tuple_element_t<I, Tuple>>) {
          std::get<I>(cases).fill(ops[nops]);
          case_of_op[nops++] = int(I);
        }
      }(),
      ...);
  const int chosen = select_impl(ops, nops, ndefault == 0);
  std::size_t index = chosen < 0 ? default_index : std::size_t(case_of_op[chosen]);
  (
      [&] {
        if (I != index) return;
        if constexpr (is_default_case<std::tuple_element_t<I, Tuple>>) {
          call_plain_handler(std::get<I>(cases).handler);
        } else {
          std::get<I>(cases).fire(ops[chosen]);
        }
      }(),
      ...);
  return index;
}

}  // namespace detail

namespace detail {
template <class C>
inline constexpr bool is_select_case = false;
template <class T, class F>
inline constexpr bool is_select_case<RecvCase<T, F>> = true;
template <class T, class F>
inline constexpr bool is_select_case<SendCase<T, F>> = true;
template <class F>
inline constexpr bool is_select_case<DefaultCase<F>> = true;
}  // namespace detail

// Go's select over the given cases; returns the index of the case that ran.
template <class... Cases>
  requires(detail::is_select_case<std::decay_t<Cases>> && ...)
std::size_t select(Cases&&... cases) {
  static_assert(((detail::is_default_case<std::decay_t<Cases>> ? 1 : 0) + ... + 0) <= 1,
                "gort::select: at most one default_case");
  std::tuple<std::decay_t<Cases>...> t(std::forward<Cases>(cases)...);
  return detail::select_tuple(t, std::index_sequence_for<Cases...>{});
}

// One case of the dynamic select: made from recv_case, send_case or default_case, it holds
// a reference to its channel, so lists of them may be built and kept (Go's reflect.Select).
class SelectCase {
 public:
  template <class T, class F>
  SelectCase(RecvCase<T, F>&& rc)  // NOLINT: implicit, so lists read like the static form
      : ref_(retain(rc.c)), payload_(std::make_unique<Recv<T, F>>(std::move(rc.handler))) {}
  template <class T, class F>
  SelectCase(SendCase<T, F>&& sc)  // NOLINT
      : ref_(retain(sc.c)), is_send_(true),
        payload_(std::make_unique<Send<T, F>>(std::move(sc.value), std::move(sc.handler))) {}
  template <class F>
  SelectCase(DefaultCase<F>&& dc)  // NOLINT
      : is_default_(true), payload_(std::make_unique<Default<F>>(std::move(dc.handler))) {}

  bool is_default() const noexcept { return is_default_; }
  bool is_send() const noexcept { return is_send_; }

 private:
  friend std::size_t select(std::span<SelectCase> cases);
  struct Payload {
    virtual ~Payload() = default;
    virtual void* elem() noexcept = 0;
    virtual void fire(bool received) = 0;
  };
  template <class T, class F>
  struct Recv final : Payload {
    explicit Recv(F f) : handler(std::move(f)) {}
    F handler;
    detail::RecvSlot<T> slot;
    void* elem() noexcept override { return slot.raw(); }
    void fire(bool received) override {
      if (received) {
        detail::call_recv_handler<T>(handler, slot.take());
      } else {
        detail::call_recv_handler<T>(handler, std::nullopt);
      }
    }
  };
  template <class T, class F>
  struct Send final : Payload {
    Send(T v, F f) : value(std::move(v)), handler(std::move(f)) {}
    std::optional<T> value;
    F handler;
    void* elem() noexcept override { return std::addressof(*value); }
    void fire(bool) override { detail::call_plain_handler(handler); }
  };
  template <class F>
  struct Default final : Payload {
    explicit Default(F f) : handler(std::move(f)) {}
    F handler;
    void* elem() noexcept override { return nullptr; }
    void fire(bool) override { detail::call_plain_handler(handler); }
  };
  static detail::ChanRef retain(detail::ChanCore* c) noexcept {
    if (c) detail::chan_retain(c);
    return detail::ChanRef(c);
  }

  detail::ChanRef ref_;
  bool is_send_ = false;
  bool is_default_ = false;
  std::unique_ptr<Payload> payload_;
};

// The dynamic select: as select(cases...), over a runtime-sized list (at most one default
// case). A send case's value is sent once; selecting it again sends a moved-from value.
std::size_t select(std::span<SelectCase> cases);

}  // namespace gort
