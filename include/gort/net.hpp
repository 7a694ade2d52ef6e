// gort/net.hpp — Go's net package, the stream part: TCP and Unix-domain listeners and
// connections whose blocking calls park the goroutine on the netpoller, never its thread.
//
//   gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
//   gort::go([&] { gort::net::Conn c = gort::net::dial("tcp", ln.addr()); c.write("hi"); });
//   gort::net::Conn conn = ln.accept();
//
// Networks: "tcp" (IPv4 or IPv6, as the address says; ":port" listens dual-stack on [::]),
// "tcp4", "tcp6", "unix" (a socket path; a leading '@' names a Linux abstract socket).
// Addresses are Go's: "127.0.0.1:8080", "[::1]:0", ":0", "localhost:80". Literal IPs never
// touch the resolver; host names are resolved with getaddrinfo inside gort::blocking().
//
// Errors: every call throws std::system_error whose what() reads like Go's
// ("dial tcp 127.0.0.1:1: connect: Connection refused"), and has an overload taking a
// trailing std::error_code& that reports instead of throwing. Codes from the kernel carry
// errno (std::system_category); the rest are gort::net::errc values below, which compare
// equal to the std::errc named beside each.
//
// Threads: any goroutine, and any plain thread while run() is active (a blocked call then
// blocks that thread). One reader and one writer may run at once on a Conn; more
// concurrent readers (or writers) take turns. close() may be called from any goroutine
// at any time: calls blocked on the Conn or Listener wake with errc::closed, and the
// descriptor itself is closed once the last of them has left.
#pragma once
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <gort/context.hpp>
#include <gort/time.hpp>

namespace gort::net {

enum class errc {
  closed = 1,           // "use of closed network connection" (Go's ErrClosed) == std::errc::bad_file_descriptor
  timeout,              // "i/o timeout": a deadline passed == std::errc::timed_out
  missing_address,      // "missing address" == std::errc::invalid_argument
  missing_port,         // "missing port in address" == std::errc::invalid_argument
  too_many_colons,      // "too many colons in address" == std::errc::invalid_argument
  bad_brackets,         // "missing or unexpected bracket in address" == std::errc::invalid_argument
  invalid_port,         // "invalid port" (not 0..65535) == std::errc::invalid_argument
  unknown_port,         // "unknown port" (no such service name) == std::errc::invalid_argument
  unknown_network,      // "unknown network" == std::errc::invalid_argument
  no_such_host,         // "no such host" (the resolver found nothing)
  no_suitable_address,  // "no suitable address found" (e.g. an IPv6 literal for tcp4) == std::errc::address_family_not_supported
};
const std::error_category& net_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {int(e), net_category()}; }

}  // namespace gort::net

template <>
struct std::is_error_code_enum<gort::net::errc> : std::true_type {};

namespace gort::detail {
struct NetFd;       // src/net/fd.hpp: the socket, its poll descriptor and reference count
struct NetAccess;   // src/net/net.cpp: wraps a NetFd in a Conn or Listener
}

namespace gort::net {

// A connected stream socket (Go's net.Conn). Move-only; destroying it closes it.
// A default-constructed Conn is not connected: every operation fails with errc::closed.
class Conn {
 public:
  Conn() noexcept = default;
  Conn(Conn&& o) noexcept : fd_(o.fd_) { o.fd_ = nullptr; }
  Conn& operator=(Conn&& o) noexcept;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn();

  // Reads what is available, up to buf.size() bytes, waiting until at least one byte is.
  // Returns 0 at end of stream (the peer closed or shut down its side), or for an empty buf.
  std::size_t read(std::span<std::byte> buf);
  std::size_t read(std::span<std::byte> buf, std::error_code& ec);
  std::size_t read(std::span<char> buf) { return read(std::as_writable_bytes(buf)); }
  std::size_t read(std::span<char> buf, std::error_code& ec) { return read(std::as_writable_bytes(buf), ec); }

  // Writes all of buf (looping over partial writes). On error, the overload with ec
  // returns how much was written before it.
  std::size_t write(std::span<const std::byte> buf);
  std::size_t write(std::span<const std::byte> buf, std::error_code& ec);
  std::size_t write(std::string_view s) { return write(std::as_bytes(std::span(s.data(), s.size()))); }
  std::size_t write(std::string_view s, std::error_code& ec) {
    return write(std::as_bytes(std::span(s.data(), s.size())), ec);
  }

  // Closes the connection; blocked reads and writes wake with errc::closed. Closing twice
  // (or a Conn that never connected) is errc::closed, as in Go.
  void close();
  void close(std::error_code& ec) noexcept;
  // Shuts down the writing side (the peer reads end of stream); reading still works.
  void close_write();
  void close_write(std::error_code& ec) noexcept;

  // Deadlines: an operation in that direction that has not finished by `t` (now, or
  // blocked) fails with errc::timeout until the deadline is moved. A default-constructed
  // time_point (time_point{}) means no deadline. set_deadline sets both directions.
  void set_deadline(time_point t);
  void set_deadline(time_point t, std::error_code& ec) noexcept;
  void set_read_deadline(time_point t);
  void set_read_deadline(time_point t, std::error_code& ec) noexcept;
  void set_write_deadline(time_point t);
  void set_write_deadline(time_point t, std::error_code& ec) noexcept;

  // The addresses in Go's format: "127.0.0.1:8080", "[::1]:8080", a socket path (empty
  // for an unnamed Unix socket). Still valid after close(); empty for a default Conn.
  std::string local_addr() const;
  std::string remote_addr() const;
  // "tcp" or "unix".
  std::string_view network() const noexcept;

  // True unless default-constructed or moved from (a closed Conn still tests true).
  explicit operator bool() const noexcept { return fd_ != nullptr; }

 private:
  friend struct detail::NetAccess;
  explicit Conn(detail::NetFd* fd) noexcept : fd_(fd) {}
  detail::NetFd* fd_ = nullptr;  // owner's reference (NetFd::drop_owner on destruction)
};

// A listening socket (Go's net.Listener). Move-only; destroying it closes it. A Unix
// listener removes its socket file when closed, as Go's does.
class Listener {
 public:
  Listener() noexcept = default;
  Listener(Listener&& o) noexcept : fd_(o.fd_) { o.fd_ = nullptr; }
  Listener& operator=(Listener&& o) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  // Waits for and returns the next connection. Aborted handshakes are skipped; running
  // out of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM) backs off — 5 ms, doubling up to
  // 1 s — and retries, as Go's net/http server does, instead of failing.
  Conn accept();
  Conn accept(std::error_code& ec);
  // Closes the listener; a blocked accept wakes with errc::closed.
  void close();
  void close(std::error_code& ec) noexcept;
  // A deadline for accept, as Conn::set_deadline (Go's TCPListener.SetDeadline).
  void set_deadline(time_point t);
  void set_deadline(time_point t, std::error_code& ec) noexcept;
  // The bound address with the port resolved: "127.0.0.1:43521", "[::]:43521", a path.
  std::string addr() const;
  std::string_view network() const noexcept;

  explicit operator bool() const noexcept { return fd_ != nullptr; }

 private:
  friend struct detail::NetAccess;
  explicit Listener(detail::NetFd* fd) noexcept : fd_(fd) {}
  detail::NetFd* fd_ = nullptr;
};

// Listens on `address` (Go's net.Listen). Port 0 picks a free port (see addr()). TCP
// listeners set SO_REUSEADDR; the backlog is the kernel's somaxconn.
Listener listen(std::string_view network, std::string_view address);
Listener listen(std::string_view network, std::string_view address, std::error_code& ec);

// Connects to `address` (Go's net.Dial). A host name resolving to several addresses is
// tried in order until one connects. An empty host dials the local system.
Conn dial(std::string_view network, std::string_view address);
Conn dial(std::string_view network, std::string_view address, std::error_code& ec);
// As dial, abandoned when ctx is done: the error is then ctx.err() (gort::errc::canceled,
// which equals std::errc::operation_canceled, or deadline_exceeded == std::errc::timed_out).
Conn dial(const Context& ctx, std::string_view network, std::string_view address);
Conn dial(const Context& ctx, std::string_view network, std::string_view address, std::error_code& ec);
// dial with a timeout (Go's DialTimeout).
Conn dial_timeout(std::string_view network, std::string_view address, std::chrono::nanoseconds timeout);
Conn dial_timeout(std::string_view network, std::string_view address, std::chrono::nanoseconds timeout,
                  std::error_code& ec);

// Go's net.SplitHostPort / JoinHostPort: "[::1]:80" <-> ("::1", "80"). split throws
// std::system_error (errc::missing_port, too_many_colons, bad_brackets) on malformed input.
std::pair<std::string, std::string> split_host_port(std::string_view hostport);
std::string join_host_port(std::string_view host, std::string_view port);

}  // namespace gort::net
