// gort/chan.hpp — Go's channels: typed references to a type-erased channel core.
//
// A chan<T> is a reference (copies share one channel; == compares identity); the default
// chan<T> is the nil channel. The core (src/chan/chan.cpp) is a lock, a ring buffer of
// `cap` slots and two FIFO queues of waiters; it moves and destroys elements through a
// small per-type table, so select can mix channel types. A send to a parked receiver moves
// the value straight into the receiver's slot and runs the receiver next (runnext).
//
// Element moves happen under the channel's lock: an element type's move constructor must
// not block, and if it throws the program terminates (Go copies values; it cannot fail).
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include <gort/runtime.hpp>

namespace gort {

namespace detail {

// How the core moves and destroys one element without knowing its type.
struct ElemOps {
  std::size_t size;
  std::size_t align;
  void (*move_construct)(void* dst, void* src) noexcept;  // construct *dst from std::move(*src)
  void (*destroy)(void* p) noexcept;
};

template <class T>
inline constexpr ElemOps elem_ops_for{
    sizeof(T), alignof(T),
    [](void* dst, void* src) noexcept { ::new (dst) T(std::move(*static_cast<T*>(src))); },
    [](void* p) noexcept { static_cast<T*>(p)->~T(); }};

struct ChanCore;  // src/chan/chan.hpp

ChanCore* chan_make(const ElemOps* ops, std::size_t capacity);
void chan_retain(ChanCore* c) noexcept;
void chan_release(ChanCore* c) noexcept;
// Moves *elem into the channel, blocking until received or buffered. Nil: blocks forever.
// Closed: throws panic_error("send on closed channel").
void chan_send(ChanCore* c, void* elem);
// Constructs the received element in `out` (uninitialized storage) and returns true, or
// returns false (out untouched) once the channel is closed and drained.
bool chan_recv(ChanCore* c, void* out);
void chan_close(ChanCore* c);
std::size_t chan_len(const ChanCore* c) noexcept;
std::size_t chan_cap(const ChanCore* c) noexcept;

// A counted reference to a core.
class ChanRef {
 public:
  ChanRef() noexcept = default;
  explicit ChanRef(ChanCore* c) noexcept : c_(c) {}  // adopts one reference
  ChanRef(const ChanRef& o) noexcept : c_(o.c_) {
    if (c_) chan_retain(c_);
  }
  ChanRef(ChanRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  ChanRef& operator=(ChanRef o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~ChanRef() {
    if (c_) chan_release(c_);
  }
  ChanCore* get() const noexcept { return c_; }

 private:
  ChanCore* c_ = nullptr;
};

// Uninitialized storage for one received T.
template <class T>
struct RecvSlot {
  alignas(T) unsigned char buf[sizeof(T)];
  void* raw() noexcept { return buf; }
  T* ptr() noexcept { return std::launder(reinterpret_cast<T*>(buf)); }
  std::optional<T> take() noexcept(std::is_nothrow_move_constructible_v<T>) {
    struct Destroy {
      T* p;
      ~Destroy() { p->~T(); }
    } d{ptr()};
    return std::optional<T>(std::in_place, std::move(*d.p));
  }
};

template <class T>
std::optional<T> recv_on(ChanCore* c) {
  RecvSlot<T> slot;
  if (!chan_recv(c, slot.raw())) return std::nullopt;
  return slot.take();
}

// `for (T v : ch)`: receives until the channel is closed and drained.
template <class T>
class ChanRange {
 public:
  struct sentinel {};
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    explicit iterator(ChanCore* c) : c_(c), v_(recv_on<T>(c)) {}
    // The received value, to be moved from: `for (T v : ch)` works for move-only T too.
    T&& operator*() noexcept { return std::move(*v_); }
    iterator& operator++() {
      v_ = recv_on<T>(c_);
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, sentinel) noexcept { return !it.v_.has_value(); }

   private:
    ChanCore* c_;
    std::optional<T> v_;
  };
};

}  // namespace detail

template <class T> class send_chan;
template <class T> class recv_chan;

// A channel of T (Go's chan T). Capacity 0 is unbuffered: a send waits for its receiver.
template <class T>
class chan {
  static_assert(std::is_move_constructible_v<T>, "gort::chan<T>: T must be move-constructible");
  static_assert(!std::is_reference_v<T>, "gort::chan<T>: T must not be a reference");

 public:
  using value_type = T;
  chan() noexcept = default;  // the nil channel: send/recv block forever, close panics

  void send(T v) const { detail::chan_send(ref_.get(), std::addressof(v)); }
  std::optional<T> recv() const { return detail::recv_on<T>(ref_.get()); }
  void close() const { detail::chan_close(ref_.get()); }
  std::size_t len() const noexcept { return detail::chan_len(ref_.get()); }
  std::size_t cap() const noexcept { return detail::chan_cap(ref_.get()); }
  explicit operator bool() const noexcept { return ref_.get() != nullptr; }

  typename detail::ChanRange<T>::iterator begin() const { return typename detail::ChanRange<T>::iterator(ref_.get()); }
  typename detail::ChanRange<T>::sentinel end() const noexcept { return {}; }

  friend bool operator==(const chan& a, const chan& b) noexcept { return a.ref_.get() == b.ref_.get(); }
  detail::ChanCore* core() const noexcept { return ref_.get(); }
  // For the runtime (make_chan, timers): wraps a core reference.
  explicit chan(detail::ChanRef r) noexcept : ref_(std::move(r)) {}

 private:
  friend class send_chan<T>;
  friend class recv_chan<T>;
  detail::ChanRef ref_;
};

// Makes a channel with room for `capacity` buffered values (0: unbuffered).
template <class T>
chan<T> make_chan(std::size_t capacity = 0) {
  return chan<T>(detail::ChanRef(detail::chan_make(&detail::elem_ops_for<T>, capacity)));
}

// A send-only view of a channel (Go's chan<- T); chan<T> converts to it.
template <class T>
class send_chan {
 public:
  using value_type = T;
  send_chan() noexcept = default;
  send_chan(const chan<T>& c) noexcept : ref_(c.ref_) {}  // NOLINT: implicit, as in Go
  void send(T v) const { detail::chan_send(ref_.get(), std::addressof(v)); }
  void close() const { detail::chan_close(ref_.get()); }
  std::size_t len() const noexcept { return detail::chan_len(ref_.get()); }
  std::size_t cap() const noexcept { return detail::chan_cap(ref_.get()); }
  explicit operator bool() const noexcept { return ref_.get() != nullptr; }
  friend bool operator==(const send_chan& a, const send_chan& b) noexcept { return a.ref_.get() == b.ref_.get(); }
  detail::ChanCore* core() const noexcept { return ref_.get(); }

 private:
  detail::ChanRef ref_;
};

// A receive-only view of a channel (Go's <-chan T); chan<T> converts to it.
template <class T>
class recv_chan {
 public:
  using value_type = T;
  recv_chan() noexcept = default;
  recv_chan(const chan<T>& c) noexcept : ref_(c.ref_) {}  // NOLINT: implicit, as in Go
  std::optional<T> recv() const { return detail::recv_on<T>(ref_.get()); }
  std::size_t len() const noexcept { return detail::chan_len(ref_.get()); }
  std::size_t cap() const noexcept { return detail::chan_cap(ref_.get()); }
  explicit operator bool() const noexcept { return ref_.get() != nullptr; }
  typename detail::ChanRange<T>::iterator begin() const { return typename detail::ChanRange<T>::iterator(ref_.get()); }
  typename detail::ChanRange<T>::sentinel end() const noexcept { return {}; }
  friend bool operator==(const recv_chan& a, const recv_chan& b) noexcept { return a.ref_.get() == b.ref_.get(); }
  detail::ChanCore* core() const noexcept { return ref_.get(); }

 private:
  detail::ChanRef ref_;
};

}  // namespace gort
