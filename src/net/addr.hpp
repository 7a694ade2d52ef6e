// net/addr — networks and addresses: parsing Go's "host:port" forms, resolving them to
// socket addresses, and formatting socket addresses back the way Go prints them.
//
// Literal IPs are parsed with inet_pton and never reach the resolver; host names and
// service names go to getaddrinfo/getservbyname_r inside gort::blocking(), because they
// may block the thread for seconds (DNS).
#pragma once
#include <sys/socket.h>

#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace gort::net_impl {

enum class Network { tcp, tcp4, tcp6, unix_stream };

std::optional<Network> parse_network(std::string_view network) noexcept;
// "tcp" for every TCP network, "unix" for unix: the name Conn::network() reports.
std::string_view base_network(Network n) noexcept;

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const noexcept { return ss.ss_family; }
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&ss); }
};

// Why an operation failed, with what Go's OpError prints around the code: the failing
// syscall ("connect"), the piece of input at fault ("address 127.0.0.1"), or a message
// replacing the code's own ("unknown network tcp5").
struct Failure {
  std::error_code ec;
  const char* syscall = nullptr;
  std::string detail;
  std::string message;

  void set(std::error_code e, std::string d = {}) {
    ec = e;
    detail = std::move(d);
  }
  void sys(const char* name, int err) {
    ec.assign(err, std::system_category());
    syscall = name;
  }
};

// Resolves `address` for `net`. `listen`: an empty host means every interface (for "tcp"
// the dual-stack [::], then 0.0.0.0 should the kernel lack IPv6); otherwise the local
// system (loopback). Returns the candidates in order, or an empty vector with f set.
std::vector<SockAddr> resolve(Network net, std::string_view address, bool listen, Failure& f);

// Go's formatting: "127.0.0.1:80", "[::1]:80", "[fe80::1%lo]:80", a Unix path ("@name" for
// an abstract socket, "" for an unnamed one). IPv4-mapped IPv6 addresses print as IPv4.
std::string format(const sockaddr* sa, socklen_t len);
inline std::string format(const SockAddr& a) { return format(a.get(), a.len); }

// Go's SplitHostPort: f set (missing_port, too_many_colons, bad_brackets) on bad input.
bool split_host_port(std::string_view hostport, std::string& host, std::string& port, Failure& f);

}  // namespace gort::net_impl
