// net — Listener, Conn, listen and dial (Go's net package) over the netpoller.
//
// Every socket is created SOCK_NONBLOCK|SOCK_CLOEXEC (accept4 for accepted ones) and
// registered with netpoll before its handle exists; every blocking call is the loop
// check -> syscall -> EAGAIN -> netpoll::wait in NetFd::io. The handle owns a NetFd
// (fd.hpp), whose reference count lets close() run from any goroutine while others are
// blocked on it. The throwing overloads wrap the std::error_code ones and add Go's
// OpError text ("read tcp 127.0.0.1:1->127.0.0.1:2: read: Connection reset by peer").
#include <gort/net.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>

#include <gort/select.hpp>

#include "net/addr.hpp"
#include "net/fd.hpp"

namespace gort {

namespace detail {

struct NetAccess {
  static net::Conn conn(NetFd* fd) noexcept { return net::Conn(fd); }
  static net::Listener listener(NetFd* fd) noexcept { return net::Listener(fd); }
};

}  // namespace detail

namespace net {

namespace {

using detail::last_errno;
using detail::NetFd;
using net_impl::Failure;
using net_impl::Network;
using net_impl::SockAddr;

class NetCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "gort.net"; }
  std::string message(int c) const override {
    switch (errc(c)) {
      case errc::closed: return "use of closed network connection";
      case errc::timeout: return "i/o timeout";
      case errc::missing_address: return "missing address";
      case errc::missing_port: return "missing port in address";
      case errc::too_many_colons: return "too many colons in address";
      case errc::bad_brackets: return "missing or unexpected bracket in address";
      case errc::invalid_port: return "invalid port";
      case errc::unknown_port: return "unknown port";
      case errc::unknown_network: return "unknown network";
      case errc::no_such_host: return "no such host";
      case errc::no_suitable_address: return "no suitable address found";
    }
    return "unknown net error";
  }
  std::error_condition default_error_condition(int c) const noexcept override {
    switch (errc(c)) {
      case errc::closed: return std::errc::bad_file_descriptor;
      case errc::timeout: return std::errc::timed_out;
      case errc::missing_address:
      case errc::missing_port:
      case errc::too_many_colons:
      case errc::bad_brackets:
      case errc::invalid_port:
      case errc::unknown_port:
      case errc::unknown_network: return std::errc::invalid_argument;
      case errc::no_suitable_address: return std::errc::address_family_not_supported;
      case errc::no_such_host: break;
    }
    return {c, *this};
  }
};

// A std::system_error whose what() is exactly Go's OpError text (system_error would
// append ": " + the code's message to whatever it is given, which Go's form places itself).
class OpError : public std::system_error {
 public:
  OpError(std::error_code ec, std::string text) : std::system_error(ec), text_(std::move(text)) {}
  const char* what() const noexcept override { return text_.c_str(); }

 private:
  std::string text_;
};

// "<op> <net> [<src>->]<addr>: [<detail>: ][<syscall>: ]<message>", each part when known.
[[noreturn]] void throw_op(std::string_view op, std::string_view network, std::string_view src,
                           std::string_view addr, const Failure& f) {
  std::string s(op);
  if (!network.empty()) s.append(" ").append(network);
  if (!addr.empty()) {
    s += ' ';
    if (!src.empty()) s.append(src).append("->");
    s.append(addr);
  }
  s += ": ";
  if (!f.detail.empty()) s.append(f.detail).append(": ");
  if (f.syscall) s.append(f.syscall).append(": ");
  s += f.message.empty() ? f.ec.message() : f.message;
  throw OpError(f.ec, std::move(s));
}

// For a Conn/Listener call that failed with ec: Go names the syscall only for errno codes.
[[noreturn]] void throw_fd_op(const NetFd* fd, std::string_view op, const char* syscall, bool with_src,
                              std::error_code ec) {
  Failure f;
  f.ec = ec;
  if (ec.category() == std::system_category()) f.syscall = syscall;
  if (!fd) throw_op(op, "", "", "", f);
  throw_op(op, fd->net, with_src ? std::string_view(fd->laddr) : std::string_view(),
           with_src ? std::string_view(fd->raddr) : std::string_view(fd->laddr), f);
}

constexpr std::size_t kMaxRW = 1 << 30;  // Go's maxRW: one syscall moves at most 1 GiB

int listen_backlog() {
  // Go reads somaxconn once; the kernel caps larger values itself.
  static const int backlog = [] {
    int n = SOMAXCONN;
    if (int fd = ::open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC); fd >= 0) {
      char buf[32] = {};
      if (::read(fd, buf, sizeof buf - 1) > 0 && std::atoi(buf) > 0) n = std::atoi(buf);
      ::close(fd);
    }
    return n;
  }();
  return backlog;
}

void set_int(int fd, int level, int opt, int v) noexcept { ::setsockopt(fd, level, opt, &v, sizeof v); }

// Go's defaults for TCP connections: no Nagle delay, keep-alive probes after 15 s idle.
void tcp_conn_options(int fd) noexcept {
  set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 15);
  set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, 15);
}

std::string sock_name(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  return net_impl::format(reinterpret_cast<sockaddr*>(&ss), len);
}

// Registers s with the poller and wraps it; on failure closes s.
NetFd* new_fd(int s, std::string_view network, Failure& f, int home = -1) noexcept {
  netpoll::PollDesc* pd = nullptr;
  try {
    pd = netpoll::open(s, home);
  } catch (const std::system_error& e) {
    ::close(s);
    f.ec = e.code();
    f.syscall = "epoll_ctl";
    return nullptr;
  } catch (...) {
    ::close(s);
    f.ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
  auto* fd = new (std::nothrow) NetFd(s, pd, network);
  if (!fd) {
    netpoll::close(pd);
    netpoll::release(pd);
    ::close(s);
    f.ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return fd;
}

// Sleeps d, in short steps so that a close() meanwhile is noticed promptly.
void backoff(const NetFd* fd, std::chrono::milliseconds d) {
  constexpr std::chrono::milliseconds kStep{5};
  while (d.count() > 0 && !fd->closed()) {
    gort::sleep(std::min(d, kStep));
    d -= kStep;
  }
}

// Waits for a non-blocking connect to finish (Go's netFD.connect). A context deadline
// becomes the write deadline; a context that can be canceled gets a goroutine that, on
// cancellation, sets the write deadline to the distant past so the wait returns.
bool wait_connect(NetFd* fd, const Context* ctx, Failure& f) {
  std::int64_t deadline = 0;
  if (ctx) {
    if (std::optional<time_point> d = ctx->deadline()) {
      deadline = detail::deadline_ns(*d);
      netpoll::set_deadline(fd->pd, netpoll::Mode::write, deadline);
    }
  }
  chan<std::monostate> stop;
  chan<bool> interrupted;
  if (ctx && ctx->done()) {
    stop = make_chan<std::monostate>();
    interrupted = make_chan<bool>(1);
    try {
      gort::go(Spawn{"net.dial: context watcher"}, [pd = fd->pd, done = ctx->done(), stop, interrupted] {
        bool fired = false;
        gort::select(recv_case(done, [&] {
                       fired = true;
                       netpoll::set_deadline(pd, netpoll::Mode::write, 1);
                     }),
                     recv_case(stop));
        interrupted.send(fired);
      });
    } catch (const std::logic_error&) {
      interrupted = {};  // no active run(): the deadline alone bounds the wait
    }
  }
  int polled = netpoll::kReady, err = 0;
  for (;;) {
    polled = netpoll::wait(fd->pd, netpoll::Mode::write);
    if (polled != netpoll::kReady) break;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (::getsockopt(fd->sysfd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
      err = last_errno();
      break;
    }
    if (soerr == EINPROGRESS || soerr == EALREADY || soerr == EINTR) continue;
    if (soerr != 0 && soerr != EISCONN) {
      err = soerr;
      break;
    }
    // Writable without an error can be a spurious edge: only a peer name proves it.
    sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    if (::getpeername(fd->sysfd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) break;
    if (last_errno() != ENOTCONN) {
      err = last_errno();
      break;
    }
  }
  bool fired = false;
  if (interrupted) {
    stop.close();
    fired = interrupted.recv().value_or(false);
  }
  if (deadline != 0 || fired) netpoll::set_deadline(fd->pd, netpoll::Mode::write, 0);
  if (fired || polled == netpoll::kTimedOut) {
    const std::error_code cerr = ctx->err();
    f.ec = cerr ? cerr : std::error_code(gort::errc::deadline_exceeded);
    return false;
  }
  if (polled != netpoll::kReady) {
    f.ec = NetFd::poll_error(polled);
    return false;
  }
  if (err != 0) {
    f.sys("connect", err);
    return false;
  }
  return true;
}

NetFd* connect_one(Network net, const SockAddr& ra, const Context* ctx, Failure& f) {
  const int s = ::socket(ra.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) {
    f.sys("socket", last_errno());
    return nullptr;
  }
  if (ra.family() == AF_INET6) set_int(s, IPPROTO_IPV6, IPV6_V6ONLY, net == Network::tcp6);
  const int r = ::connect(s, ra.get(), ra.len);
  const int err = r == 0 ? 0 : last_errno();
  // EINTR: the connect goes on asynchronously (Go treats it as EINPROGRESS). A Unix
  // socket's EAGAIN (a full backlog) is an error, as in Go.
  const bool pending = err == EINPROGRESS || err == EALREADY || err == EINTR;
  if (err != 0 && !pending && err != EISCONN) {
    ::close(s);
    f.sys("connect", err);
    return nullptr;
  }
  NetFd* fd = new_fd(s, net_impl::base_network(net), f);
  if (!fd) return nullptr;
  if (pending && !wait_connect(fd, ctx, f)) {
    fd->drop_owner();
    return nullptr;
  }
  if (net != Network::unix_stream) tcp_conn_options(s);
  fd->laddr = sock_name(s);
  fd->raddr = net_impl::format(ra);
  return fd;
}

// dial's body; `at` gets the address the failure is reported against.
NetFd* dial_fd(const Context* ctx, std::string_view network, std::string_view address, Failure& f,
               std::string& at) {
  const std::optional<Network> net = net_impl::parse_network(network);
  if (!net) {
    f.ec = errc::unknown_network;
    f.message = "unknown network " + std::string(network);
    return nullptr;
  }
  if (ctx && ctx->err()) {
    f.ec = ctx->err();
    at = std::string(address);
    return nullptr;
  }
  const std::vector<SockAddr> addrs = net_impl::resolve(*net, address, false, f);
  if (addrs.empty()) return nullptr;
  for (const SockAddr& ra : addrs) {
    if (ctx && ctx->err()) {
      if (!f.ec) {
        f.ec = ctx->err();
        at = net_impl::format(ra);
      }
      break;
    }
    Failure one;
    if (NetFd* fd = connect_one(*net, ra, ctx, one)) return fd;
    if (!f.ec) {  // Go reports the first address's error
      f = std::move(one);
      at = net_impl::format(ra);
    }
  }
  return nullptr;
}

NetFd* listen_fd(std::string_view network, std::string_view address, Failure& f) {
  const std::optional<Network> net = net_impl::parse_network(network);
  if (!net) {
    f.ec = errc::unknown_network;
    f.message = "unknown network " + std::string(network);
    return nullptr;
  }
  const std::vector<SockAddr> addrs = net_impl::resolve(*net, address, true, f);
  if (addrs.empty()) return nullptr;
  // Go listens on one address; the second candidate is only the IPv4 wildcard for a
  // kernel without IPv6.
  std::size_t i = 0;
  int s = -1;
  for (; i < addrs.size(); ++i) {
    s = ::socket(addrs[i].family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s >= 0 || last_errno() != EAFNOSUPPORT || i + 1 == addrs.size()) break;
  }
  if (s < 0) {
    f.sys("socket", last_errno());
    return nullptr;
  }
  const SockAddr& la = addrs[i];
  if (la.family() == AF_INET6) set_int(s, IPPROTO_IPV6, IPV6_V6ONLY, *net == Network::tcp6);
  if (*net != Network::unix_stream) set_int(s, SOL_SOCKET, SO_REUSEADDR, 1);
  if (::bind(s, la.get(), la.len) != 0) {
    f.sys("bind", last_errno());
    ::close(s);
    return nullptr;
  }
  const bool file = *net == Network::unix_stream && address[0] != '@';
  if (::listen(s, listen_backlog()) != 0) {
    f.sys("listen", last_errno());
    ::close(s);
    if (file) ::unlink(std::string(address).c_str());
    return nullptr;
  }
  NetFd* fd = new_fd(s, net_impl::base_network(*net), f);
  if (!fd) {
    if (file) ::unlink(std::string(address).c_str());
    return nullptr;
  }
  if (*net == Network::unix_stream) {
    fd->laddr = std::string(address);  // Go reports the name it was given
    if (file) fd->unlink_path = fd->laddr;
  } else {
    fd->laddr = sock_name(s);
  }
  return fd;
}

}  // namespace

const std::error_category& net_category() noexcept {
  static const NetCategory category;
  return category;
}

// ---- Conn --------------------------------------------------------------------------------

Conn& Conn::operator=(Conn&& o) noexcept {
  if (this != &o) {
    if (fd_) fd_->drop_owner();
    fd_ = std::exchange(o.fd_, nullptr);
  }
  return *this;
}

Conn::~Conn() {
  if (fd_) fd_->drop_owner();
}

std::size_t Conn::read(std::span<std::byte> buf, std::error_code& ec) {
  ec.clear();
  NetFd* fd = fd_;
  if (!fd || !fd->acquire()) {
    ec = errc::closed;
    return 0;
  }
  ssize_t n = 0;
  if (!buf.empty()) {
    std::lock_guard lock(fd->rmu);
    const std::size_t len = std::min(buf.size(), kMaxRW);
    if (fd->ahead_len > 0) {
      // Read ahead by an earlier call: no syscall, but the same deadline and close checks.
      if (int r = netpoll::check(fd->pd, netpoll::Mode::read); r != netpoll::kReady) {
        ec = NetFd::poll_error(r);
        n = -1;
      } else {
        n = ssize_t(std::min(len, fd->ahead_len));
        std::memcpy(buf.data(), fd->ahead.get() + fd->ahead_off, std::size_t(n));
        fd->ahead_off += std::size_t(n);
        fd->ahead_len -= std::size_t(n);
      }
    } else {
      // After a short read, Go tries recv again and gets EAGAIN (one wasted syscall per
      // request in a request/response exchange); the receive queue was empty, so wait for
      // its next edge instead (netpoll::drained_reads_wait says when that is safe). Not on
      // Unix sockets: their stream reads also stop short after a message carrying descriptors.
      const bool wait_first = fd->read_drained && netpoll::drained_reads_wait(fd->pd);
      if (fd->net == "tcp" && len < NetFd::kReadAheadBelow) {
        if (!fd->ahead) fd->ahead = std::make_unique_for_overwrite<std::byte[]>(NetFd::kReadAhead);
        n = fd->io(netpoll::Mode::read, ec, [&] {
          iovec iov[2] = {{buf.data(), len}, {fd->ahead.get(), NetFd::kReadAhead}};
          msghdr msg{};
          msg.msg_iov = iov;
          msg.msg_iovlen = 2;
          return ::recvmsg(fd->sysfd, &msg, 0);
        }, wait_first);
        fd->read_drained = n > 0 && std::size_t(n) < len + NetFd::kReadAhead;
        if (n > ssize_t(len)) {
          fd->ahead_off = 0;
          fd->ahead_len = std::size_t(n) - len;
          n = ssize_t(len);
        }
      } else {
        n = fd->io(netpoll::Mode::read, ec, [&] { return ::recv(fd->sysfd, buf.data(), len, 0); }, wait_first);
        fd->read_drained = n > 0 && std::size_t(n) < len && fd->net == "tcp";
      }
    }
  }
  fd->release();
  return n < 0 ? 0 : std::size_t(n);
}

std::size_t Conn::read(std::span<std::byte> buf) {
  std::error_code ec;
  const std::size_t n = read(buf, ec);
  if (ec) throw_fd_op(fd_, "read", "read", true, ec);
  return n;
}

std::size_t Conn::write(std::span<const std::byte> buf, std::error_code& ec) {
  ec.clear();
  NetFd* fd = fd_;
  if (!fd || !fd->acquire()) {
    ec = errc::closed;
    return 0;
  }
  std::size_t done = 0;
  {
    std::lock_guard lock(fd->wmu);
    while (done < buf.size()) {
      const std::size_t len = std::min(buf.size() - done, kMaxRW);
      // MSG_NOSIGNAL: a peer that went away is EPIPE here, not a process-killing SIGPIPE.
      const ssize_t n = fd->io(netpoll::Mode::write, ec,
                               [&] { return ::send(fd->sysfd, buf.data() + done, len, MSG_NOSIGNAL); });
      if (n < 0) break;
      if (n == 0) {  // cannot happen on a stream socket; never spin on it
        ec = std::make_error_code(std::errc::io_error);
        break;
      }
      done += std::size_t(n);
    }
  }
  fd->release();
  return done;
}

std::size_t Conn::write(std::span<const std::byte> buf) {
  std::error_code ec;
  const std::size_t n = write(buf, ec);
  if (ec) throw_fd_op(fd_, "write", "write", true, ec);
  return n;
}

void Conn::close(std::error_code& ec) noexcept {
  ec.clear();
  if (!fd_ || !fd_->close()) ec = errc::closed;
}

void Conn::close() {
  std::error_code ec;
  close(ec);
  if (ec) throw_fd_op(fd_, "close", nullptr, true, ec);
}

void Conn::close_write(std::error_code& ec) noexcept {
  ec.clear();
  NetFd* fd = fd_;
  if (!fd || !fd->acquire()) {
    ec = errc::closed;
    return;
  }
  if (::shutdown(fd->sysfd, SHUT_WR) != 0) ec.assign(last_errno(), std::system_category());
  fd->release();
}

void Conn::close_write() {
  std::error_code ec;
  close_write(ec);
  if (ec) throw_fd_op(fd_, "close", "shutdown", true, ec);
}

namespace {

void set_fd_deadline(NetFd* fd, netpoll::Mode mode, time_point t, std::error_code& ec) noexcept {
  ec.clear();
  if (!fd || !fd->acquire()) {
    ec = errc::closed;
    return;
  }
  netpoll::set_deadline(fd->pd, mode, detail::deadline_ns(t));
  fd->release();
}

}  // namespace

void Conn::set_deadline(time_point t, std::error_code& ec) noexcept { set_fd_deadline(fd_, netpoll::Mode::both, t, ec); }
void Conn::set_read_deadline(time_point t, std::error_code& ec) noexcept {
  set_fd_deadline(fd_, netpoll::Mode::read, t, ec);
}
void Conn::set_write_deadline(time_point t, std::error_code& ec) noexcept {
  set_fd_deadline(fd_, netpoll::Mode::write, t, ec);
}
void Conn::set_deadline(time_point t) {
  std::error_code ec;
  set_deadline(t, ec);
  if (ec) throw_fd_op(fd_, "set", nullptr, true, ec);
}
void Conn::set_read_deadline(time_point t) {
  std::error_code ec;
  set_read_deadline(t, ec);
  if (ec) throw_fd_op(fd_, "set", nullptr, true, ec);
}
void Conn::set_write_deadline(time_point t) {
  std::error_code ec;
  set_write_deadline(t, ec);
  if (ec) throw_fd_op(fd_, "set", nullptr, true, ec);
}

std::string Conn::local_addr() const { return fd_ ? fd_->laddr : std::string(); }
std::string Conn::remote_addr() const { return fd_ ? fd_->raddr : std::string(); }
std::string_view Conn::network() const noexcept { return fd_ ? fd_->net : std::string_view(); }

// ---- Listener ----------------------------------------------------------------------------

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    if (fd_) fd_->drop_owner();
    fd_ = std::exchange(o.fd_, nullptr);
  }
  return *this;
}

Listener::~Listener() {
  if (fd_) fd_->drop_owner();
}

Conn Listener::accept(std::error_code& ec) {
  ec.clear();
  NetFd* fd = fd_;
  if (!fd || !fd->acquire()) {
    ec = errc::closed;
    return {};
  }
  sockaddr_storage sa{};
  socklen_t salen = 0;
  int s = -1;
  {
    std::lock_guard lock(fd->rmu);
    std::chrono::milliseconds delay{5};
    for (;;) {
      salen = sizeof sa;
      const ssize_t r = fd->io(netpoll::Mode::read, ec, [&] {
        return ssize_t(::accept4(fd->sysfd, reinterpret_cast<sockaddr*>(&sa), &salen, SOCK_NONBLOCK | SOCK_CLOEXEC));
      });
      if (r >= 0) {
        s = int(r);
        break;
      }
      if (ec.category() != std::system_category()) break;
      const int e = ec.value();
      if (e == ECONNABORTED) {  // the client gave up while queued: take the next one
        ec.clear();
        continue;
      }
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        ec.clear();
        backoff(fd, delay);
        delay = std::min(delay * 2, std::chrono::milliseconds(1000));
        continue;
      }
      break;
    }
  }
  NetFd* c = nullptr;
  if (s >= 0) {
    Failure f;
    c = new_fd(s, fd->net, f, netpoll::incoming_home(s));
    if (!c) {
      ec = f.ec;
    } else {
      if (fd->net == "tcp") tcp_conn_options(s);
      c->laddr = sock_name(s);
      c->raddr = net_impl::format(reinterpret_cast<sockaddr*>(&sa), salen);
    }
  }
  fd->release();
  return detail::NetAccess::conn(c);
}

Conn Listener::accept() {
  std::error_code ec;
  Conn c = accept(ec);
  if (ec) throw_fd_op(fd_, "accept", "accept4", false, ec);
  return c;
}

void Listener::close(std::error_code& ec) noexcept {
  ec.clear();
  if (!fd_ || !fd_->close()) ec = errc::closed;
}

void Listener::close() {
  std::error_code ec;
  close(ec);
  if (ec) throw_fd_op(fd_, "close", nullptr, false, ec);
}

void Listener::set_deadline(time_point t, std::error_code& ec) noexcept {
  set_fd_deadline(fd_, netpoll::Mode::read, t, ec);
}

void Listener::set_deadline(time_point t) {
  std::error_code ec;
  set_deadline(t, ec);
  if (ec) throw_fd_op(fd_, "set", nullptr, false, ec);
}

std::string Listener::addr() const { return fd_ ? fd_->laddr : std::string(); }
std::string_view Listener::network() const noexcept { return fd_ ? fd_->net : std::string_view(); }

// ---- listen, dial ------------------------------------------------------------------------

Listener listen(std::string_view network, std::string_view address, std::error_code& ec) {
  Failure f;
  NetFd* fd = listen_fd(network, address, f);
  ec = f.ec;
  return detail::NetAccess::listener(fd);
}

Listener listen(std::string_view network, std::string_view address) {
  Failure f;
  NetFd* fd = listen_fd(network, address, f);
  if (!fd) {
    // Go names the address when it got that far (a bind error), not for bad input.
    const bool parsed = f.ec.category() == std::system_category();
    throw_op("listen", network, "", parsed ? address : std::string_view(), f);
  }
  return detail::NetAccess::listener(fd);
}

Conn dial(const Context& ctx, std::string_view network, std::string_view address, std::error_code& ec) {
  Failure f;
  std::string at;
  NetFd* fd = dial_fd(&ctx, network, address, f, at);
  ec = f.ec;
  return detail::NetAccess::conn(fd);
}

Conn dial(const Context& ctx, std::string_view network, std::string_view address) {
  Failure f;
  std::string at;
  NetFd* fd = dial_fd(&ctx, network, address, f, at);
  if (!fd) throw_op("dial", network, "", at, f);
  return detail::NetAccess::conn(fd);
}

Conn dial(std::string_view network, std::string_view address, std::error_code& ec) {
  Failure f;
  std::string at;
  NetFd* fd = dial_fd(nullptr, network, address, f, at);
  ec = f.ec;
  return detail::NetAccess::conn(fd);
}

Conn dial(std::string_view network, std::string_view address) {
  Failure f;
  std::string at;
  NetFd* fd = dial_fd(nullptr, network, address, f, at);
  if (!fd) throw_op("dial", network, "", at, f);
  return detail::NetAccess::conn(fd);
}

namespace {
// Cancels on every way out, so a failed dial does not leave the timer armed.
struct CancelOnExit {
  CancelFunc& cancel;
  ~CancelOnExit() { cancel(); }
};
}  // namespace

Conn dial_timeout(std::string_view network, std::string_view address, std::chrono::nanoseconds timeout,
                  std::error_code& ec) {
  auto [ctx, cancel] = with_timeout(background(), timeout);
  CancelOnExit guard{cancel};
  return dial(ctx, network, address, ec);
}

Conn dial_timeout(std::string_view network, std::string_view address, std::chrono::nanoseconds timeout) {
  auto [ctx, cancel] = with_timeout(background(), timeout);
  CancelOnExit guard{cancel};
  return dial(ctx, network, address);
}

// ---- host:port ---------------------------------------------------------------------------

std::pair<std::string, std::string> split_host_port(std::string_view hostport) {
  std::string host, port;
  Failure f;
  if (!net_impl::split_host_port(hostport, host, port, f)) {
    throw OpError(f.ec, f.detail + ": " + f.ec.message());
  }
  return {std::move(host), std::move(port)};
}

std::string join_host_port(std::string_view host, std::string_view port) {
  std::string s;
  if (host.find(':') != std::string_view::npos) return s.append("[").append(host).append("]:").append(port);
  return s.append(host).append(":").append(port);
}

}  // namespace net
}  // namespace gort
