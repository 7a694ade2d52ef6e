// gort/detail/task.hpp — how go() hands a callable to the scheduler without allocating.
//
// A goroutine's callable is moved into storage inside its G (kInlineTaskBytes, 16-aligned)
// when it fits and moves without throwing; otherwise into one heap box. The G is reserved
// first (spawn_begin), the callable constructed in place, then the G is published
// (spawn_commit); if construction throws, spawn_abort returns the G unused.
#pragma once
#include <cstddef>
#include <functional>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

namespace gort {

struct Spawn {
  std::string_view name;       // shown in goroutine dumps; copied
  std::size_t stack_size = 0;  // bytes of address space; 0: the runtime's default (Config::stack_size)
};

namespace detail {

inline constexpr std::size_t kInlineTaskBytes = 64;

struct TaskOps {
  void (*invoke)(void* storage);   // runs the callable (may throw: a panic)
  void (*destroy)(void* storage) noexcept;
};

// Reserves a G; *storage receives kInlineTaskBytes of 16-aligned space inside it.
// Throws std::logic_error when no runtime is active. `caller_pc` names the creation site.
void* spawn_begin(const Spawn& opts, const TaskOps* ops, void** storage, void* caller_pc);
void spawn_commit(void* g) noexcept;
void spawn_abort(void* g) noexcept;

template <class Fn>
struct InlineTask {
  static void invoke(void* s) { (*std::launder(static_cast<Fn*>(s)))(); }
  static void destroy(void* s) noexcept { std::launder(static_cast<Fn*>(s))->~Fn(); }
  static constexpr TaskOps ops{&invoke, &destroy};
};

template <class Fn>
struct BoxedTask {
  static void invoke(void* s) { (**static_cast<Fn**>(s))(); }
  static void destroy(void* s) noexcept { delete *static_cast<Fn**>(s); }
  static constexpr TaskOps ops{&invoke, &destroy};
};

template <class Fn>
[[gnu::always_inline]] inline void spawn_task(const Spawn& opts, Fn&& fn, void* caller_pc) {
  using T = std::decay_t<Fn>;
  void* storage = nullptr;
  if constexpr (sizeof(T) <= kInlineTaskBytes && alignof(T) <= 16 && std::is_nothrow_move_constructible_v<T>) {
    void* g = spawn_begin(opts, &InlineTask<T>::ops, &storage, caller_pc);
    ::new (storage) T(std::forward<Fn>(fn));
    spawn_commit(g);
  } else {
    T* box = new T(std::forward<Fn>(fn));
    void* g;
    try {
      g = spawn_begin(opts, &BoxedTask<T>::ops, &storage, caller_pc);
    } catch (...) {
      delete box;
      throw;
    }
    *static_cast<T**>(storage) = box;
    spawn_commit(g);
  }
}

template <class F, class... A>
auto bind_task(F&& f, A&&... args) {
  if constexpr (sizeof...(A) == 0) {
    return std::decay_t<F>(std::forward<F>(f));
  } else {
    return [f = std::decay_t<F>(std::forward<F>(f)), ... a = std::decay_t<A>(std::forward<A>(args))]() mutable {
      std::invoke(std::move(f), std::move(a)...);
    };
  }
}

// run(): the main goroutine calls body(arg); returns main's status.
struct Config;
int run_main(void (*body)(void*), void* arg, std::size_t cfg_stack_size, int cfg_maxprocs);

// blocking(): hand the P away around a call that blocks the thread.
void enter_blocking();
void exit_blocking();

}  // namespace detail
}  // namespace gort
