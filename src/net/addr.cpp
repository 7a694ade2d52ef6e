// net/addr — see addr.hpp. Error texts are Go's (net/ipsock.go, net/lookup.go).
#include "net/addr.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <memory>

#include <gort/net.hpp>
#include <gort/runtime.hpp>

#include "net/fd.hpp"
#include "sched/sched.hpp"

namespace gort::net_impl {

namespace {

// Runs f() on the M's thread stack: glibc's NSS lookups (getaddrinfo, getservbyname_r) put
// buffers of up to 64 KiB on the stack, more than a goroutine's default stack has (Go's
// cgo resolver runs on a thread stack too). Called inside blocking(), which keeps this M.
template <class F>
int on_thread_stack(F& f) {
  struct Call {
    F* f;
    int result;
  } call{&f, 0};
  sched::on_system_stack([](void* p) noexcept {
    auto* c = static_cast<Call*>(p);
    c->result = (*c->f)();
  }, &call);
  return call.result;
}

using net::errc;

// getaddrinfo's EAI_* codes (other than "no such host", which is errc::no_such_host).
class ResolverCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int c) const override { return gai_strerror(c); }
};

const std::error_category& resolver_category() noexcept {
  static const ResolverCategory category;
  return category;
}

SockAddr make_v4(const in_addr& a, std::uint16_t port) {
  SockAddr s;
  auto* sin = reinterpret_cast<sockaddr_in*>(&s.ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  sin->sin_addr = a;
  s.len = sizeof(sockaddr_in);
  return s;
}

SockAddr make_v6(const in6_addr& a, std::uint32_t scope, std::uint16_t port) {
  SockAddr s;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&s.ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  sin6->sin6_addr = a;
  sin6->sin6_scope_id = scope;
  s.len = sizeof(sockaddr_in6);
  return s;
}

// A literal IP ("10.0.0.1", "::1", "fe80::1%eth0"); nullopt if host is not one.
std::optional<SockAddr> parse_ip(const std::string& host, std::uint16_t port) {
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return make_v4(a4, port);
  std::string ip = host;
  std::uint32_t scope = 0;
  if (std::size_t pct = host.find('%'); pct != std::string::npos) {
    ip = host.substr(0, pct);
    const std::string zone = host.substr(pct + 1);
    if (zone.empty()) return std::nullopt;
    scope = if_nametoindex(zone.c_str());
    if (scope == 0) {  // a numeric zone, as Go accepts (from_chars: no errno, no throw)
      const auto [end, err] = std::from_chars(zone.data(), zone.data() + zone.size(), scope);
      if (err != std::errc() || end != zone.data() + zone.size()) return std::nullopt;
    }
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) return make_v6(a6, scope, port);
  return std::nullopt;
}

// Go's parsePort: empty is 0; digits must be 0..65535; anything else is a service name.
bool parse_port(Network net, const std::string& port, std::uint16_t& out, Failure& f) {
  if (port.empty()) {
    out = 0;
    return true;
  }
  std::size_t i = (port[0] == '+' || port[0] == '-') ? 1 : 0;
  if (i < port.size() && port.find_first_not_of("0123456789", i) == std::string::npos) {
    unsigned long v = 0;
    for (; i < port.size(); ++i) {
      v = v * 10 + unsigned(port[i] - '0');
      if (v > 65535) break;
    }
    if (port[0] == '-' || v > 65535) {
      f.set(errc::invalid_port, "address " + port);
      return false;
    }
    out = static_cast<std::uint16_t>(v);
    return true;
  }
  // A service name ("http"): /etc/services, which NSS may take anywhere.
  (void)net;
  auto lookup = [&]() noexcept {
    servent se, *res = nullptr;
    char buf[1024];
    if (getservbyname_r(port.c_str(), "tcp", &se, buf, sizeof buf, &res) != 0 || res == nullptr) return -1;
    return int(ntohs(static_cast<std::uint16_t>(res->s_port)));
  };
  int found = gort::blocking([&] { return on_thread_stack(lookup); });
  if (found < 0) {
    f.set(errc::unknown_port, "lookup tcp/" + port);
    return false;
  }
  out = static_cast<std::uint16_t>(found);
  return true;
}

bool family_fits(Network net, int family) {
  return net == Network::tcp || (net == Network::tcp4 && family == AF_INET) ||
         (net == Network::tcp6 && family == AF_INET6);
}

std::vector<SockAddr> lookup_host(Network net, const std::string& host, std::uint16_t port, bool listen,
                                  Failure& f) {
  std::vector<SockAddr> out;
  addrinfo hints{};
  hints.ai_family = net == Network::tcp4 ? AF_INET : net == Network::tcp6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  addrinfo* res = nullptr;
  int saved_errno = 0;
  auto lookup = [&]() noexcept {
    int r = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    saved_errno = detail::last_errno();  // (see fd.hpp)
    return r;
  };
  const int rc = gort::blocking([&] { return on_thread_stack(lookup); });
  if (rc != 0) {
    if (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_ADDRFAMILY) {
      f.set(errc::no_such_host, "lookup " + host);
    } else if (rc == EAI_SYSTEM) {
      f.set({saved_errno, std::system_category()}, "lookup " + host);
    } else {
      f.set({rc, resolver_category()}, "lookup " + host);
    }
    return out;
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  for (const addrinfo* ai = res; ai; ai = ai->ai_next) {
    SockAddr s;
    if (ai->ai_family == AF_INET) {
      s = make_v4(reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, port);
    } else if (ai->ai_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      s = make_v6(sin6->sin6_addr, sin6->sin6_scope_id, port);
    } else {
      continue;
    }
    const bool dup = std::any_of(out.begin(), out.end(), [&](const SockAddr& o) {
      return o.len == s.len && std::memcmp(&o.ss, &s.ss, s.len) == 0;
    });
    if (!dup) out.push_back(s);
  }
  // Go listens on one address of a name, preferring IPv4.
  if (listen) std::stable_partition(out.begin(), out.end(), [](const SockAddr& a) { return a.family() == AF_INET; });
  if (out.empty()) f.set(errc::no_suitable_address, "lookup " + host);
  return out;
}

}  // namespace

std::optional<Network> parse_network(std::string_view network) noexcept {
  if (network == "tcp") return Network::tcp;
  if (network == "tcp4") return Network::tcp4;
  if (network == "tcp6") return Network::tcp6;
  if (network == "unix") return Network::unix_stream;
  return std::nullopt;
}

std::string_view base_network(Network n) noexcept { return n == Network::unix_stream ? "unix" : "tcp"; }

bool split_host_port(std::string_view hp, std::string& host, std::string& port, Failure& f) {
  auto fail = [&](errc e) {
    f.set(e, "address " + std::string(hp));
    return false;
  };
  const std::size_t i = hp.rfind(':');
  if (i == std::string_view::npos) return fail(errc::missing_port);
  std::size_t j = 0, k = 0;  // no '[' before j, no ']' before k
  if (hp[0] == '[') {
    const std::size_t end = hp.find(']');
    if (end == std::string_view::npos) return fail(errc::bad_brackets);
    if (end + 1 == hp.size()) return fail(errc::missing_port);
    if (end + 1 != i) return fail(hp[end + 1] == ':' ? errc::too_many_colons : errc::missing_port);
    host = std::string(hp.substr(1, end - 1));
    j = 1;
    k = end + 1;
  } else {
    host = std::string(hp.substr(0, i));
    if (host.find(':') != std::string::npos) return fail(errc::too_many_colons);
  }
  if (hp.find('[', j) != std::string_view::npos) return fail(errc::bad_brackets);
  if (hp.find(']', k) != std::string_view::npos) return fail(errc::bad_brackets);
  port = std::string(hp.substr(i + 1));
  return true;
}

std::vector<SockAddr> resolve(Network net, std::string_view address, bool listen, Failure& f) {
  std::vector<SockAddr> out;
  if (address.empty()) {
    f.set(errc::missing_address);
    return out;
  }
  if (net == Network::unix_stream) {
    SockAddr s;
    auto* un = reinterpret_cast<sockaddr_un*>(&s.ss);
    un->sun_family = AF_UNIX;
    if (address.size() >= sizeof(un->sun_path)) {
      f.set({ENAMETOOLONG, std::system_category()});
      return out;
    }
    std::memcpy(un->sun_path, address.data(), address.size());
    const bool abstract = address[0] == '@';  // Linux's abstract namespace: no file
    if (abstract) un->sun_path[0] = '\0';
    s.len = socklen_t(offsetof(sockaddr_un, sun_path) + address.size() + (abstract ? 0 : 1));
    out.push_back(s);
    return out;
  }
  std::string host, port;
  std::uint16_t portnum = 0;
  if (!split_host_port(address, host, port, f) || !parse_port(net, port, portnum, f)) return out;
  if (host.empty()) {
    if (listen) {
      if (net != Network::tcp4) out.push_back(make_v6(in6addr_any, 0, portnum));
      if (net != Network::tcp6) out.push_back(make_v4(in_addr{htonl(INADDR_ANY)}, portnum));
    } else {
      if (net == Network::tcp6) {
        out.push_back(make_v6(in6addr_loopback, 0, portnum));
      } else {
        out.push_back(make_v4(in_addr{htonl(INADDR_LOOPBACK)}, portnum));
      }
    }
    return out;
  }
  if (std::optional<SockAddr> ip = parse_ip(host, portnum)) {
    if (!family_fits(net, ip->family())) {
      f.set(errc::no_suitable_address, "address " + host);
      return out;
    }
    out.push_back(*ip);
    return out;
  }
  return lookup_host(net, host, portnum, listen, f);
}

std::string format(const sockaddr* sa, socklen_t len) {
  char buf[INET6_ADDRSTRLEN];
  switch (sa->sa_family) {
    case AF_INET: {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
      inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
    }
    case AF_INET6: {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
      const std::string port = std::to_string(ntohs(sin6->sin6_port));
      if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
        inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf, sizeof buf);
        return std::string(buf) + ":" + port;
      }
      inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
      std::string host = buf;
      if (sin6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE];
        host += "%";
        host += if_indextoname(sin6->sin6_scope_id, name) ? std::string(name) : std::to_string(sin6->sin6_scope_id);
      }
      return std::string(1, '[').append(host).append("]:").append(port);
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
      const std::size_t off = offsetof(sockaddr_un, sun_path);
      if (len <= off) return "";  // unnamed
      const std::size_t n = std::min<std::size_t>(len - off, sizeof(un->sun_path));
      if (un->sun_path[0] == '\0') return std::string(1, '@').append(un->sun_path + 1, n - 1);
      return std::string(un->sun_path, strnlen(un->sun_path, n));
    }
  }
  return "";
}

}  // namespace gort::net_impl
