// net/fd — a socket shared by the goroutines using one Conn or Listener (Go's netFD with
// its fdMutex, simplified).
//
// Lifetime. `state` packs three things: kClosed (close() was called), kOwnerGone (the
// Conn/Listener handle was destroyed) and, from bit 2 up, `ops`: the calls in flight.
// Invariants:
//   - every call into `pd` or `sysfd` holds an op (acquire() succeeded, release() pending);
//     acquire() fails once kClosed is set, so ops only drain after close();
//   - the socket is torn down (netpoll::release, ::close) exactly once, by whoever drops
//     the last op of a closed fd — close() itself holds an op while it wakes waiters
//     through netpoll::close(pd), so the pd outlives that call;
//   - the NetFd memory is freed once kOwnerGone is set and ops is zero; the owner closes
//     before it leaves, so a handle that is gone implies a closed fd.
// Direction locks. netpoll allows one waiter per direction, so readers (and accept)
// serialise on `rmu` and writers on `wmu`; a reader and a writer run concurrently. A
// call takes its op before the lock and releases it after unlocking.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include <gort/net.hpp>
#include <gort/sync.hpp>

#include "netpoll/netpoll.hpp"

namespace gort::detail {

// errno of the calling thread. Read errno only through this, right after the failed call:
// a goroutine may resume on another thread after any park, and since __errno_location()
// is declared const, the compiler may compute errno's address once per function, before
// a park — and then read another thread's errno. Not inlined, so that cannot happen.
[[gnu::noinline]] int last_errno() noexcept;

struct NetFd {
  NetFd(int fd, netpoll::PollDesc* p, std::string_view network) noexcept : sysfd(fd), pd(p), net(network) {}
  NetFd(const NetFd&) = delete;
  NetFd& operator=(const NetFd&) = delete;

  // Takes an op; false (take none) once closed.
  bool acquire() noexcept;
  // Drops an op; the last op of a closed fd tears the socket down.
  void release() noexcept;
  // Marks the fd closed and wakes its waiters (they get kClosed). False if it already was.
  bool close() noexcept;
  // The handle's destruction: close(), then free the NetFd once no op is left.
  void drop_owner() noexcept;
  bool closed() const noexcept { return state.load(std::memory_order_acquire) & kClosed; }

  // The I/O loop: runs `sys` (a non-blocking syscall returning >= 0, or -1 with errno)
  // until it does something other than EAGAIN, waiting on pd in `mode` between tries
  // (and before the first when `wait_first`: the caller knows the first would fail).
  // EINTR retries. Returns sys's result, or -1 with ec set (errno, errc::closed,
  // errc::timeout). The caller holds an op and the direction's lock.
  template <class Sys>
  ssize_t io(netpoll::Mode mode, std::error_code& ec, Sys&& sys, bool wait_first = false) noexcept {
    for (;;) {
      if (int r = netpoll::check(pd, mode); r != netpoll::kReady) {
        ec = poll_error(r);
        return -1;
      }
      if (wait_first) {
        wait_first = false;
        if (int r = netpoll::wait(pd, mode); r != netpoll::kReady) {
          ec = poll_error(r);
          return -1;
        }
        continue;
      }
      ssize_t n = sys();
      if (n >= 0) return n;
      const int e = last_errno();
      if (e == EINTR) continue;
      if (e != EAGAIN && e != EWOULDBLOCK) {
        ec.assign(e, std::system_category());
        return -1;
      }
      if (int r = netpoll::wait(pd, mode); r != netpoll::kReady) {
        ec = poll_error(r);
        return -1;
      }
    }
  }

  static std::error_code poll_error(int r) noexcept {
    return r == netpoll::kTimedOut ? net::errc::timeout : net::errc::closed;
  }

  const int sysfd;
  netpoll::PollDesc* const pd;
  const std::string_view net;  // "tcp" or "unix" (static storage)
  // Set before the handle is published, read-only afterwards.
  std::string laddr, raddr;
  std::string unlink_path;  // a Unix listener's socket file, removed by close()

  // The last read was short on a TCP socket: it emptied the receive queue (guarded by rmu).
  bool read_drained = false;
  // Read-ahead (TCP, guarded by rmu): a small read is one recvmsg into the caller's buffer
  // and this one, so even a read that fills the caller's buffer tells whether it drained
  // the receive queue (it did if this one was not filled too). The next reads hand out
  // what landed here before they make a syscall.
  static constexpr std::size_t kReadAhead = 512;
  static constexpr std::size_t kReadAheadBelow = 4096;  // reads at least this big recv directly
  std::unique_ptr<std::byte[]> ahead;                   // allocated by the first small read
  std::size_t ahead_off = 0, ahead_len = 0;
  Mutex rmu;  // readers and accept take turns (one netpoll waiter per direction)
  Mutex wmu;  // writers take turns; also makes each write() contiguous on the stream

 private:
  static constexpr std::uint64_t kClosed = 1, kOwnerGone = 2, kOp = 4;
  static std::uint64_t ops(std::uint64_t s) noexcept { return s / kOp; }
  void destroy() noexcept;
  ~NetFd() = default;  // only drop_owner/release delete

  // acquire/close CAS it (acq_rel: a closer's writes before close happen-before the
  // teardown by the last op, whichever goroutine that is).
  std::atomic<std::uint64_t> state{0};
};

// Deadline time_point -> netpoll's monotonic ns: 0 (none) for time_point{}, and any
// instant at or before the clock's epoch as 1 ns (long past).
std::int64_t deadline_ns(time_point t) noexcept;

}  // namespace gort::detail
