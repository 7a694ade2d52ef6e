// net/fd — the reference count that lets close() run while calls are in flight (fd.hpp).
#include "net/fd.hpp"

#include <unistd.h>

#include <cerrno>

#include "sched/sanitizer.hpp"

namespace gort::detail {

bool NetFd::acquire() noexcept {
  std::uint64_t s = state.load(std::memory_order_relaxed);
  do {
    if (s & kClosed) return false;
  } while (!state.compare_exchange_weak(s, s + kOp, std::memory_order_acquire, std::memory_order_relaxed));
  return true;
}

void NetFd::release() noexcept {
  std::uint64_t s = state.load(std::memory_order_acquire);
  for (;;) {
    if ((s & kClosed) && ops(s) == 1) {
      // The last op of a closed fd: nobody can acquire any more, and only kOwnerGone can
      // still change, so tear down while our op keeps the memory alive.
      destroy();
      s = state.fetch_sub(kOp, std::memory_order_acq_rel) - kOp;
      if (s & kOwnerGone) delete this;
      return;
    }
    // Not the last op of a closed fd, so never the one to free (kOwnerGone implies kClosed).
    if (state.compare_exchange_weak(s, s - kOp, std::memory_order_acq_rel, std::memory_order_acquire)) return;
  }
}

bool NetFd::close() noexcept {
  std::uint64_t s = state.load(std::memory_order_relaxed);
  do {
    if (s & kClosed) return false;
  } while (!state.compare_exchange_weak(s, (s | kClosed) + kOp, std::memory_order_acq_rel, std::memory_order_relaxed));
  // Go's UnixListener removes its file before closing the socket.
  if (!unlink_path.empty()) ::unlink(unlink_path.c_str());
  netpoll::close(pd);  // wakes waiters with kClosed; our op keeps pd valid meanwhile
  release();
  return true;
}

void NetFd::drop_owner() noexcept {
  close();
  const std::uint64_t s = state.fetch_or(kOwnerGone, std::memory_order_acq_rel);
  if (ops(s) == 0) delete this;
}

void NetFd::destroy() noexcept {
  netpoll::release(pd);
  ::close(sysfd);  // once released, no late event of ours can reach the next fd's user
}

int last_errno() noexcept {
  // errno is this thread's, just set by the failed call. TSan sees only that the thread's
  // TLS was created by the thread and is now read by a goroutine's fiber, with no edge
  // between them (fibers switch without one), and would report that as a race.
  [[maybe_unused]] sched::san::IgnoreAccesses ignore;
  return errno;
}

std::int64_t deadline_ns(time_point t) noexcept {
  if (t == time_point{}) return 0;
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return ns > 0 ? ns : 1;
}

}  // namespace gort::detail
