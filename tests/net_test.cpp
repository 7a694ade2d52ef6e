// gort::net over the netpoller: listen/dial/accept on tcp4, tcp6 and unix, addresses,
// half-close, deadlines, close waking blocked calls, dial errors and contexts, clients that
// vanish, plain threads, and many concurrent connections — over maxprocs 1, 2 and 8, on
// loopback only. Every test checks that it left no descriptor open.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gort/net.hpp>

#include "netpoll/netpoll.hpp"
#include "sched/futex.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using gort_test::open_fds;
using gort_test::read_to_eof;
using gort_test::wait_parked;
using gort_test::scaled;
using Clock = std::chrono::steady_clock;

namespace {

class Net : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Net);
class NetStress : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(NetStress);

// ---- helpers -----------------------------------------------------------------------------

// Fails the test if the body leaves descriptors open. The poller's own descriptors are
// made once, so a warm-up listen comes first.
template <class F>
void without_fd_leaks(F&& body) {
  { gort::net::listen("tcp", "127.0.0.1:0"); }
  const std::multiset<std::string> before = gort_test::open_fd_targets();
  body();
  const std::multiset<std::string> after = gort_test::settled_fd_targets(before);
  std::string leaked;
  for (const std::string& t : after) {
    if (after.count(t) > before.count(t)) leaked += " " + t;
  }
  EXPECT_EQ(after.size(), before.size()) << "descriptors leaked:" << leaked;
}

std::string read_n(gort::net::Conn& c, std::size_t n) {
  std::string s(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const std::size_t k = c.read(std::span<char>(s).subspan(got));
    if (k == 0) break;
    got += k;
  }
  s.resize(got);
  return s;
}

std::string port_of(const std::string& addr) { return addr.substr(addr.rfind(':') + 1); }

// (std::from_chars rather than std::stoi, which saves and restores errno: a thread-local
// that TSan cannot follow a goroutine's fiber into.)
std::uint16_t port_number(const std::string& addr) {
  const std::string p = port_of(addr);
  std::uint16_t n = 0;
  std::from_chars(p.data(), p.data() + p.size(), n);
  return n;
}

bool ipv6_loopback_available() {
  const int s = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(s);
  return ok;
}

std::string temp_socket_path() {
  static std::atomic<int> seq{0};
  return "/tmp/gort-net-test-" + std::to_string(::getpid()) + "-" + std::to_string(seq.fetch_add(1)) + ".sock";
}

// The message of the std::system_error f throws ("<none>" if it does not throw one).
template <class F>
std::pair<std::error_code, std::string> failure(F&& f) {
  try {
    f();
  } catch (const std::system_error& e) {
    return {e.code(), e.what()};
  }
  return {{}, "<none>"};
}

// Accepts one connection and echoes it until EOF, in a goroutine counted by wg.
void serve_echo_once(gort::net::Listener& ln, gort::WaitGroup& wg) {
  wg.go([&ln] {
    gort::net::Conn c = ln.accept();
    char buf[8192];
    while (std::size_t n = c.read(std::span<char>(buf))) c.write(std::string_view(buf, n));
  });
}

// Dials addr, sends a large message (several socket buffers, so writes are partial and
// both sides wait on the poller), half-closes and reads the echo to EOF.
void echo_round_trip(std::string_view network, const std::string& addr) {
  gort::net::Conn c = gort::net::dial(network, addr);
  std::string msg(scaled(1 << 20), 'x');
  for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = char('a' + i % 26);
  gort::WaitGroup wg;
  wg.go([&] {
    EXPECT_EQ(c.write(msg), msg.size());
    c.close_write();
  });
  const std::string back = read_to_eof(c);
  wg.wait();
  EXPECT_EQ(back.size(), msg.size());
  EXPECT_TRUE(back == msg);
}

// A TCP listener whose accept queue is full and never drained: a further connect's SYN is
// dropped, so the dial stays pending (how Go's tests get a dial that hangs on loopback).
class Blackhole {
 public:
  Blackhole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::listen(fd_, 0), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    addr_ = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
    // Fill the queue: dials succeed until one hangs.
    for (int i = 0; i < 16; ++i) {
      std::error_code ec;
      gort::net::Conn c = gort::net::dial_timeout("tcp", addr_, 100ms, ec);
      if (ec) {
        EXPECT_EQ(ec, std::errc::timed_out) << ec.message();
        full_ = true;
        break;
      }
      held_.push_back(std::move(c));
    }
    EXPECT_TRUE(full_) << "the accept queue never filled";
  }
  ~Blackhole() { ::close(fd_); }
  const std::string& addr() const { return addr_; }

 private:
  int fd_ = -1;
  bool full_ = false;
  std::string addr_;
  std::vector<gort::net::Conn> held_;
};

// ---- listen, dial, accept, addresses -----------------------------------------------------

TEST_P(Net, EchoTcp4WithAddresses) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp4", "127.0.0.1:0");
      const std::string addr = ln.addr();
      ASSERT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
      EXPECT_NE(port_of(addr), "0");
      EXPECT_EQ(ln.network(), "tcp");

      auto accepted = gort::make_chan<gort::net::Conn>(1);
      gort::go([&ln, accepted] { accepted.send(ln.accept()); });
      gort::net::Conn c = gort::net::dial("tcp4", addr);
      gort::net::Conn s = *accepted.recv();
      EXPECT_EQ(c.remote_addr(), addr);
      EXPECT_EQ(s.local_addr(), addr);
      EXPECT_EQ(s.remote_addr(), c.local_addr());
      EXPECT_EQ(c.local_addr().rfind("127.0.0.1:", 0), 0u) << c.local_addr();

      c.write("ping");
      EXPECT_EQ(read_n(s, 4), "ping");
      s.write(std::as_bytes(std::span("pong", 4)));
      EXPECT_EQ(read_n(c, 4), "pong");
      c.close();
      s.close();

      gort::WaitGroup wg;
      serve_echo_once(ln, wg);
      echo_round_trip("tcp", addr);
      wg.wait();
    });
  });
}

TEST_P(Net, EchoTcp6) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "the kernel has no IPv6 loopback";
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp6", "[::1]:0");
      const std::string addr = ln.addr();
      ASSERT_EQ(addr.rfind("[::1]:", 0), 0u) << addr;
      gort::WaitGroup wg;
      wg.go([&] {
        gort::net::Conn s = ln.accept();
        EXPECT_EQ(s.local_addr(), addr);
        EXPECT_EQ(s.remote_addr().rfind("[::1]:", 0), 0u) << s.remote_addr();
        char buf[8192];
        while (std::size_t n = s.read(std::span<char>(buf))) s.write(std::string_view(buf, n));
      });
      echo_round_trip("tcp6", addr);
      wg.wait();
      // "tcp" takes an IPv6 literal too.
      serve_echo_once(ln, wg);
      echo_round_trip("tcp", addr);
      wg.wait();
    });
  });
}

TEST_P(Net, EchoUnix) {
  run([] {
    without_fd_leaks([] {
      const std::string path = temp_socket_path();
      {
        gort::net::Listener ln = gort::net::listen("unix", path);
        EXPECT_EQ(ln.addr(), path);
        EXPECT_EQ(ln.network(), "unix");
        struct stat st;
        ASSERT_EQ(::stat(path.c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));

        auto accepted = gort::make_chan<gort::net::Conn>(1);
        gort::go([&ln, accepted] { accepted.send(ln.accept()); });
        gort::net::Conn c = gort::net::dial("unix", path);
        gort::net::Conn s = *accepted.recv();
        EXPECT_EQ(c.remote_addr(), path);
        EXPECT_EQ(c.local_addr(), "");  // an unnamed client socket, as Go reports it
        EXPECT_EQ(s.local_addr(), path);
        EXPECT_EQ(c.network(), "unix");
        c.close();
        s.close();

        gort::WaitGroup wg;
        serve_echo_once(ln, wg);
        echo_round_trip("unix", path);
        wg.wait();
        // A second listener on the same path fails while the first holds it.
        auto [ec, what] = failure([&] { gort::net::listen("unix", path); });
        EXPECT_EQ(ec, std::errc::address_in_use) << what;
        EXPECT_NE(what.find("listen unix " + path + ": bind:"), std::string::npos) << what;
      }
      struct stat st;
      EXPECT_NE(::stat(path.c_str(), &st), 0) << "closing the listener removes its socket file";
    });
  });
}

TEST_P(Net, AbstractUnixSocket) {
  run([] {
    without_fd_leaks([] {
      const std::string name = "@gort-net-test-" + std::to_string(::getpid()) + "-abstract";
      gort::net::Listener ln = gort::net::listen("unix", name);
      EXPECT_EQ(ln.addr(), name);
      gort::WaitGroup wg;
      serve_echo_once(ln, wg);
      echo_round_trip("unix", name);
      wg.wait();
    });
  });
}

TEST_P(Net, WildcardAndLocalhost) {
  run([] {
    without_fd_leaks([] {
      // ":0" on "tcp" listens on every interface: dual-stack [::] where IPv6 exists.
      gort::net::Listener any = gort::net::listen("tcp", ":0");
      const std::string a = any.addr();
      EXPECT_TRUE(a.rfind("[::]:", 0) == 0 || a.rfind("0.0.0.0:", 0) == 0) << a;
      gort::WaitGroup wg;
      serve_echo_once(any, wg);
      echo_round_trip("tcp", "127.0.0.1:" + port_of(a));
      wg.wait();
      serve_echo_once(any, wg);
      echo_round_trip("tcp", ":" + port_of(a));  // an empty host dials the local system
      wg.wait();

      gort::net::Listener four = gort::net::listen("tcp4", ":0");
      EXPECT_EQ(four.addr().rfind("0.0.0.0:", 0), 0u) << four.addr();

      // A host name goes through the resolver (in blocking()); Go listens on its IPv4.
      gort::net::Listener local = gort::net::listen("tcp", "localhost:0");
      EXPECT_EQ(local.addr().rfind("127.0.0.1:", 0), 0u) << local.addr();
      serve_echo_once(local, wg);
      echo_round_trip("tcp", "localhost:" + port_of(local.addr()));
      wg.wait();
    });
  });
}

// ---- half-close, deadlines, close --------------------------------------------------------

TEST_P(Net, EofAfterCloseWrite) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::WaitGroup wg;
      wg.go([&] {
        gort::net::Conn s = ln.accept();
        EXPECT_EQ(read_to_eof(s), "request");  // ends: the client shut its side down
        char b;
        EXPECT_EQ(s.read(std::span<char>(&b, 1)), 0u) << "EOF stays EOF";
        s.write("response");                 // our side is still open
      });
      gort::net::Conn c = gort::net::dial("tcp", ln.addr());
      c.write("request");
      c.close_write();
      EXPECT_EQ(read_to_eof(c), "response");
      auto [ec, what] = failure([&] { c.write("more"); });
      EXPECT_EQ(ec, std::errc::broken_pipe) << what;
      EXPECT_NE(what.find("write tcp " + c.local_addr() + "->" + c.remote_addr() + ": write: "), std::string::npos)
          << what;
      wg.wait();
    });
  });
}

TEST_P(Net, ReadDeadline) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::net::Conn c = gort::net::dial("tcp", ln.addr());
      gort::net::Conn s = ln.accept();
      char buf[16];

      // A deadline already passed fails at once, even for the error_code overload.
      c.set_read_deadline(Clock::now() - 1s);
      std::error_code ec;
      EXPECT_EQ(c.read(std::span<char>(buf), ec), 0u);
      EXPECT_EQ(ec, std::errc::timed_out);
      EXPECT_EQ(ec, gort::net::errc::timeout);

      // A future deadline expires while the read is blocked.
      const auto start = Clock::now();
      c.set_read_deadline(start + 50ms);
      auto [code, what] = failure([&] { c.read(std::span<char>(buf)); });
      EXPECT_EQ(code, std::errc::timed_out);
      EXPECT_GE(Clock::now() - start, 45ms);
      EXPECT_LT(Clock::now() - start, 5s);
      EXPECT_EQ(what, "read tcp " + c.local_addr() + "->" + c.remote_addr() + ": i/o timeout");

      // Moving the deadline away (time_point{}: none) makes the conn usable again.
      c.set_read_deadline(gort::time_point{});
      s.write("late");
      EXPECT_EQ(read_n(c, 4), "late");

      // A deadline set by another goroutine wakes a reader already parked in IO wait.
      gort::WaitGroup wg;
      wg.go([&] {
        std::error_code e;
        c.read(std::span<char>(buf), e);
        EXPECT_EQ(e, std::errc::timed_out);
      });
      wait_parked("IO wait", 1);
      c.set_deadline(Clock::now());
      wg.wait();
      // The write side has its own deadline: writing still works after a read timeout.
      c.set_deadline({});
      c.write("ok");
      EXPECT_EQ(read_n(s, 2), "ok");
    });
  });
}

TEST_P(Net, WriteDeadlineReportsPartialWrite) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::net::Conn c = gort::net::dial("tcp", ln.addr());
      gort::net::Conn s = ln.accept();  // never reads: the socket buffers fill up
      const std::string chunk(4 << 20, 'z');
      c.set_write_deadline(Clock::now() + 100ms);
      std::error_code ec;
      std::size_t total = 0, last = 0;
      for (int i = 0; i < 64 && !ec; ++i) {  // buffers hold a few MB: this ends in a timeout
        last = c.write(chunk, ec);
        total += last;
      }
      EXPECT_EQ(ec, std::errc::timed_out);
      EXPECT_GT(total, 0u);
      EXPECT_LT(last, chunk.size()) << "the write that timed out reports what it wrote";
    });
  });
}

TEST_P(Net, CloseWakesBlockedReaderAndWriter) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::net::Conn c = gort::net::dial("tcp", ln.addr());
      gort::net::Conn s = ln.accept();
      gort::WaitGroup wg;
      std::string read_what, write_what;
      wg.go([&] {
        auto [ec, what] = failure([&] {
          char buf[16];
          c.read(std::span<char>(buf));
        });
        EXPECT_EQ(ec, gort::net::errc::closed);
        EXPECT_EQ(ec, std::errc::bad_file_descriptor);
        read_what = what;
      });
      wg.go([&] {
        const std::string chunk(1 << 20, 'w');
        std::error_code ec;
        while (!ec) c.write(chunk, ec);  // fills the buffers, then parks
        EXPECT_EQ(ec, gort::net::errc::closed);
      });
      wait_parked("IO wait", 2);
      c.close();
      wg.wait();
      EXPECT_NE(read_what.find("use of closed network connection"), std::string::npos) << read_what;
      EXPECT_EQ(read_what.rfind("read tcp ", 0), 0u) << read_what;
      // Closed is closed: further calls and a second close fail the same way.
      std::error_code ec;
      c.close(ec);
      EXPECT_EQ(ec, gort::net::errc::closed);
      c.write("x", ec);
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_THROW(c.close(), std::system_error);
      EXPECT_FALSE(c.local_addr().empty()) << "addresses outlive close";
      // The peer sees the connection end.
      EXPECT_EQ(read_to_eof(s).size() >= 0u, true);
    });
  });
}

TEST_P(Net, CloseListenerWakesAccept) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      const std::string addr = ln.addr();
      auto result = gort::make_chan<std::pair<std::error_code, std::string>>(1);
      gort::go([&ln, result] { result.send(failure([&] { ln.accept(); })); });
      wait_parked("IO wait", 1);
      ln.close();
      auto [ec, what] = *result.recv();
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_EQ(what, "accept tcp " + addr + ": use of closed network connection");
      std::error_code again;
      gort::net::Conn none = ln.accept(again);
      EXPECT_EQ(again, gort::net::errc::closed);
      EXPECT_FALSE(none);
      // The port is free again: nobody accepts there any more.
      std::error_code dial_ec;
      gort::net::dial("tcp", addr, dial_ec);
      EXPECT_EQ(dial_ec, std::errc::connection_refused);
    });
  });
}

TEST_P(Net, ListenerDeadline) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      ln.set_deadline(Clock::now() + 30ms);
      std::error_code ec;
      EXPECT_FALSE(ln.accept(ec));
      EXPECT_EQ(ec, std::errc::timed_out);
    });
  });
}

TEST_P(Net, ConcurrentReadersTakeTurns) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::net::Conn c = gort::net::dial("tcp", ln.addr());
      gort::net::Conn s = ln.accept();
      const int kReaders = 4, kBytes = scaled(200000);
      std::atomic<long> total{0};
      gort::WaitGroup wg;
      for (int r = 0; r < kReaders; ++r) {
        wg.go([&] {
          char buf[1000];
          std::error_code ec;
          while (std::size_t n = c.read(std::span<char>(buf), ec)) total += long(n);
        });
      }
      gort::WaitGroup writers;
      for (int r = 0; r < kReaders; ++r) writers.go([&] { s.write(std::string(kBytes / kReaders, 'r')); });
      writers.wait();
      s.close_write();  // the readers read until EOF, each reading whole chunks in turn
      wg.wait();
      EXPECT_EQ(total.load(), long(kBytes / kReaders * kReaders));
    });
  });
}

// ---- errors ------------------------------------------------------------------------------

TEST_P(Net, DialRefused) {
  run([] {
    without_fd_leaks([] {
      std::string addr;
      { addr = gort::net::listen("tcp", "127.0.0.1:0").addr(); }  // a port nobody listens on
      auto [ec, what] = failure([&] { gort::net::dial("tcp", addr); });
      EXPECT_EQ(ec, std::errc::connection_refused);
      EXPECT_EQ(ec.value(), ECONNREFUSED);
      EXPECT_EQ(what, "dial tcp " + addr + ": connect: " + std::system_category().message(ECONNREFUSED));
    });
  });
}

struct BadInput {
  const char* network;
  const char* address;
  std::errc cond;
  const char* problem;  // what the message must name
};

TEST_P(Net, MalformedAddressesAndUnknownNetworks) {
  run([] {
    without_fd_leaks([] {
      const BadInput cases[] = {
          {"tcp", "127.0.0.1", std::errc::invalid_argument, "address 127.0.0.1: missing port in address"},
          {"tcp", "1:2:3", std::errc::invalid_argument, "address 1:2:3: too many colons in address"},
          {"tcp", "::1:80", std::errc::invalid_argument, "too many colons in address"},
          {"tcp", "[::1]", std::errc::invalid_argument, "missing port in address"},
          {"tcp", "[::1:80", std::errc::invalid_argument, "bracket"},
          {"tcp", "127.0.0.1:65536", std::errc::invalid_argument, "address 65536: invalid port"},
          {"tcp", "127.0.0.1:-1", std::errc::invalid_argument, "invalid port"},
          {"tcp", "127.0.0.1:no-such-service-x", std::errc::invalid_argument, "lookup tcp/no-such-service-x: unknown port"},
          {"tcp", "", std::errc::invalid_argument, "missing address"},
          {"unix", "", std::errc::invalid_argument, "missing address"},
          {"tcp4", "[::1]:80", std::errc::address_family_not_supported, "no suitable address"},
          {"tcp6", "127.0.0.1:80", std::errc::address_family_not_supported, "no suitable address"},
          {"tcp5", "127.0.0.1:80", std::errc::invalid_argument, "tcp5: unknown network tcp5"},
          {"udp", "127.0.0.1:80", std::errc::invalid_argument, "unknown network udp"},
          {"", "127.0.0.1:80", std::errc::invalid_argument, "unknown network"},
      };
      for (const BadInput& bad : cases) {
        // (Not SCOPED_TRACE: GoogleTest keeps traces per thread, and a goroutine may resume
        // on another thread after a blocking call.)
        auto [dec, dwhat] = failure([&] { gort::net::dial(bad.network, bad.address); });
        EXPECT_EQ(dec, bad.cond) << dwhat;
        EXPECT_EQ(dwhat.rfind("dial", 0), 0u) << dwhat;
        EXPECT_NE(dwhat.find(bad.problem), std::string::npos) << dwhat;
        auto [lec, lwhat] = failure([&] { gort::net::listen(bad.network, bad.address); });
        EXPECT_EQ(lec, bad.cond) << lwhat;
        EXPECT_EQ(lwhat.rfind("listen", 0), 0u) << lwhat;
        EXPECT_NE(lwhat.find(bad.problem), std::string::npos) << lwhat;
      }
      // Go's exact text for the common case.
      EXPECT_EQ(failure([] { gort::net::dial("tcp", "127.0.0.1"); }).second,
                "dial tcp: address 127.0.0.1: missing port in address");
      EXPECT_EQ(failure([] { gort::net::dial("tcp5", "x:1"); }).second, "dial tcp5: unknown network tcp5");
      // A Unix path longer than sun_path.
      auto [uec, uwhat] = failure([] { gort::net::listen("unix", "/tmp/" + std::string(200, 'p')); });
      EXPECT_EQ(uec, std::errc::filename_too_long) << uwhat;
    });
  });
}

TEST(NetAddr, SplitAndJoinHostPort) {
  using gort::net::join_host_port;
  using gort::net::split_host_port;
  EXPECT_EQ(split_host_port("127.0.0.1:80"), std::make_pair(std::string("127.0.0.1"), std::string("80")));
  EXPECT_EQ(split_host_port("[::1]:443"), std::make_pair(std::string("::1"), std::string("443")));
  EXPECT_EQ(split_host_port(":0"), std::make_pair(std::string(""), std::string("0")));
  EXPECT_EQ(split_host_port("host:"), std::make_pair(std::string("host"), std::string("")));
  EXPECT_EQ(join_host_port("::1", "80"), "[::1]:80");
  EXPECT_EQ(join_host_port("example.com", "80"), "example.com:80");
  for (const char* bad : {"nohost", "a:b:c", "[::1", "[::1]80", "x]:80", "[a]:[80"}) {
    SCOPED_TRACE(bad);
    auto [ec, what] = failure([&] { split_host_port(bad); });
    EXPECT_EQ(ec, std::errc::invalid_argument);
    EXPECT_EQ(what.rfind(std::string("address ") + bad + ": ", 0), 0u) << what;
  }
}

TEST_P(Net, ErrorCodeOverloadsDoNotThrow) {
  run([] {
    without_fd_leaks([] {
      std::error_code ec;
      gort::net::Listener bad_ln;
      EXPECT_NO_THROW(bad_ln = gort::net::listen("tcp", "127.0.0.1", ec));
      EXPECT_EQ(ec, gort::net::errc::missing_port);
      EXPECT_FALSE(bad_ln);
      gort::net::Conn none;
      EXPECT_NO_THROW(none = gort::net::dial("tcp9", "127.0.0.1:1", ec));
      EXPECT_EQ(ec, gort::net::errc::unknown_network);
      EXPECT_FALSE(none);

      std::string addr;
      { addr = gort::net::listen("tcp", "127.0.0.1:0").addr(); }
      EXPECT_NO_THROW(none = gort::net::dial("tcp", addr, ec));
      EXPECT_EQ(ec, std::errc::connection_refused);
      EXPECT_NO_THROW(none = gort::net::dial(gort::background(), "tcp", addr, ec));
      EXPECT_EQ(ec, std::errc::connection_refused);

      // Every call on a Conn or Listener that is closed (or never was open).
      char buf[4];
      gort::net::Conn empty;
      EXPECT_NO_THROW(empty.read(std::span<char>(buf), ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_NO_THROW(empty.write("x", ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_NO_THROW(empty.close_write(ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_NO_THROW(empty.set_deadline(Clock::now(), ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_NO_THROW(empty.close(ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_THROW(empty.read(std::span<char>(buf)), std::system_error);

      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0", ec);
      EXPECT_FALSE(ec);
      ASSERT_TRUE(ln);
      gort::net::Conn c = gort::net::dial("tcp", ln.addr(), ec);
      EXPECT_FALSE(ec);
      gort::net::Conn s = ln.accept(ec);
      EXPECT_FALSE(ec);
      EXPECT_EQ(c.write("abc", ec), 3u);
      EXPECT_FALSE(ec);
      EXPECT_EQ(read_n(s, 3), "abc");
      c.close(ec);
      EXPECT_FALSE(ec);
      EXPECT_NO_THROW(c.read(std::span<char>(buf), ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_NO_THROW(c.set_read_deadline(Clock::now(), ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      ln.close(ec);
      EXPECT_FALSE(ec);
      EXPECT_NO_THROW(ln.accept(ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_NO_THROW(ln.close(ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
      EXPECT_NO_THROW(ln.set_deadline(Clock::now(), ec));
      EXPECT_EQ(ec, gort::net::errc::closed);
    });
  });
}

TEST_P(Net, MoveAndDestroyClose) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::net::Conn c = gort::net::dial("tcp", ln.addr());
      gort::net::Conn s = ln.accept();
      gort::net::Conn moved = std::move(c);
      EXPECT_FALSE(c);  // NOLINT(bugprone-use-after-move): moved-from is empty
      EXPECT_TRUE(moved);
      moved.write("m");
      EXPECT_EQ(read_n(s, 1), "m");
      moved = gort::net::Conn();  // assignment closes what it held: the peer reads EOF
      EXPECT_EQ(read_to_eof(s), "");
      gort::net::Listener other = std::move(ln);
      EXPECT_FALSE(ln);  // NOLINT(bugprone-use-after-move)
      const std::string addr = other.addr();
      { gort::net::Listener gone = std::move(other); }  // destroyed: closed
      std::error_code ec;
      gort::net::dial("tcp", addr, ec);
      EXPECT_EQ(ec, std::errc::connection_refused);
    });
  });
}

// ---- contexts ----------------------------------------------------------------------------

TEST_P(Net, DialWithCanceledContext) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      auto [ctx, cancel] = gort::with_cancel(gort::background());
      cancel();
      auto [ec, what] = failure([&] { gort::net::dial(ctx, "tcp", ln.addr()); });
      EXPECT_EQ(ec, std::errc::operation_canceled) << what;
      EXPECT_EQ(ec, gort::errc::canceled);
      EXPECT_NE(what.find("dial tcp " + ln.addr()), std::string::npos) << what;
      // A live context dials normally.
      auto [live, stop] = gort::with_cancel(gort::background());
      gort::net::Conn c = gort::net::dial(live, "tcp", ln.addr());
      EXPECT_TRUE(c);
      stop();
    });
  });
}

TEST_P(Net, CancelAbortsPendingDial) {
  run([] {
    without_fd_leaks([] {
      Blackhole hole;
      auto [ctx, cancel] = gort::with_cancel(gort::background());
      auto result = gort::make_chan<std::error_code>(1);
      gort::go([ctx = ctx, addr = hole.addr(), result] {
        std::error_code ec;
        gort::net::dial(ctx, "tcp", addr, ec);
        result.send(ec);
      });
      wait_parked("IO wait", 1);  // the connect is pending on the poller
      const auto start = Clock::now();
      cancel();
      const std::error_code ec = *result.recv();
      EXPECT_EQ(ec, std::errc::operation_canceled) << ec.message();
      EXPECT_LT(Clock::now() - start, 2s);
    });
  });
}

TEST_P(Net, ContextDeadlineAbortsPendingDial) {
  run([] {
    without_fd_leaks([] {
      Blackhole hole;
      const auto start = Clock::now();
      auto [ctx, cancel] = gort::with_timeout(gort::background(), 80ms);
      auto [ec, what] = failure([&] { gort::net::dial(ctx, "tcp", hole.addr()); });
      EXPECT_EQ(ec, std::errc::timed_out) << what;
      EXPECT_GE(Clock::now() - start, 70ms);
      EXPECT_LT(Clock::now() - start, 3s);
      EXPECT_NE(what.find("dial tcp " + hole.addr()), std::string::npos) << what;
      cancel();
      std::error_code tec;
      gort::net::dial_timeout("tcp", hole.addr(), 30ms, tec);
      EXPECT_EQ(tec, std::errc::timed_out);
    });
  });
}

// ---- servers under misbehaving clients, plain threads, load ------------------------------

TEST_P(Net, ClientsVanishMidRequest) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      const std::string addr = ln.addr();
      std::atomic<int> vanished{0}, served{0};
      gort::WaitGroup server;
      // The server: a goroutine per connection reading a 16-byte request, answering it.
      server.go([&] {
        gort::WaitGroup handlers;
        for (;;) {
          std::error_code ec;
          gort::net::Conn c = ln.accept(ec);
          if (ec) break;
          handlers.go([&vanished, &served, accepted = std::move(c)]() mutable {
            // A local, so it is closed before done(): the lambda's captures die after it.
            gort::net::Conn c = std::move(accepted);
            std::string req(16, '\0');
            std::size_t got = 0;
            std::error_code rec;
            while (got < req.size()) {
              const std::size_t n = c.read(std::span<char>(req).subspan(got), rec);
              if (n == 0) break;
              got += n;
            }
            if (got < req.size()) {
              EXPECT_TRUE(!rec || rec == std::errc::connection_reset) << rec.message();
              ++vanished;
              return;
            }
            c.write("answer:" + req, rec);
            ++served;
          });
        }
        handlers.wait();
      });
      const int rounds = scaled(50);
      for (int i = 0; i < rounds; ++i) {
        {  // half a request, then gone: the server reads EOF
          gort::net::Conn c = gort::net::dial("tcp", addr);
          c.write("partial");
        }
        {  // half a request, then an abortive close (RST): ECONNRESET, or EOF if it raced
          const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in sa{};
          sa.sin_family = AF_INET;
          sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          sa.sin_port = htons(port_number(addr));
          ASSERT_EQ(gort::blocking([&] { return ::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa); }), 0);
          ASSERT_EQ(::send(s, "half", 4, MSG_NOSIGNAL), 4);
          linger lg{1, 0};
          ::setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
          ::close(s);
        }
        // And a well-behaved client still gets its answer.
        gort::net::Conn c = gort::net::dial("tcp", addr);
        c.write("0123456789abcdef");
        EXPECT_EQ(read_n(c, 23), "answer:0123456789abcdef");
      }
      ln.close();
      server.wait();
      EXPECT_EQ(served.load(), rounds);
      EXPECT_EQ(vanished.load(), 2 * rounds);
    });
  });
}

// A read that comes up short has emptied the socket, so the next read waits for the
// poller's next edge instead of trying recv first. What follows the data without a later
// edge must still be read: a FIN that arrived with the data (its edge is the one that woke
// the first read), and bytes behind urgent data (recv stops short at the urgent mark). The
// peer is a plain blocking socket sending back to back once the reader is parked, so one
// edge often covers everything; a missed edge ends in the read deadline, not a hang.
TEST_P(Net, ShortReadThenFinOrUrgentDataIsStillRead) {
  run([] {
    gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
    const std::uint16_t port = port_number(ln.addr());
    const int rounds = scaled(100);
    int missed = 0;
    for (int i = 0; i < rounds; ++i) {
      const bool urgent = i % 2 == 1;
      std::atomic<std::uint64_t> parked_after{~std::uint64_t(0)};
      std::thread peer([&] {
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons(port);
        if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
          ::close(s);
          return;
        }
        // Until the reader has parked in the poller (or gone by it: either order is valid).
        while (gort::debug::stats().netpoll_waits <= parked_after.load()) std::this_thread::yield();
        if (urgent) {
          ::send(s, "ab", 2, MSG_NOSIGNAL);
          ::send(s, "c", 1, MSG_NOSIGNAL | MSG_OOB);  // out of band: not in the stream
          ::send(s, "de", 2, MSG_NOSIGNAL);
          char ack;
          while (::recv(s, &ack, 1, 0) < 0 && errno == EINTR) {}  // the reader got it all
        } else {
          ::send(s, "hello", 5, MSG_NOSIGNAL);
        }
        ::close(s);
      });
      gort::net::Conn c = ln.accept();
      c.set_read_deadline(Clock::now() + 10s);
      parked_after = gort::debug::stats().netpoll_waits;
      std::string got;
      std::error_code ec;
      char buf[64];
      const std::size_t want = urgent ? 4 : std::string::npos;
      while (got.size() < want) {
        const std::size_t n = c.read(std::span<char>(buf), ec);
        if (n == 0) break;
        got.append(buf, n);
      }
      if (urgent) c.write("k", ec);
      gort::blocking([&] { peer.join(); });
      EXPECT_EQ(got, urgent ? "abde" : "hello") << "round " << i << ": " << ec.message();
      if (!urgent) EXPECT_FALSE(ec) << "round " << i << ": EOF expected, got " << ec.message();
      if (ec == gort::net::errc::timeout) ++missed;
    }
    EXPECT_EQ(missed, 0) << "reads waited for an edge that never came";
  });
}

// Small TCP reads also fill a read-ahead buffer (one recvmsg): every byte still comes out
// once and in order, whatever mix of read sizes and write sizes.
TEST_P(Net, SmallReadsOfAStreamLoseAndReorderNothing) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      const std::size_t total = std::size_t(scaled(256)) * 1024;
      auto byte_at = [](std::size_t i) { return char((i * 131 + i / 251) & 0xff); };
      gort::WaitGroup wg;
      wg.go([&] {
        gort::net::Conn c = gort::net::dial("tcp", ln.addr());
        std::string chunk;
        for (std::size_t sent = 0, k = 0; sent < total; ++k) {
          const std::size_t n = std::min(total - sent, 1 + (k * 7919) % 2000);
          chunk.resize(n);
          for (std::size_t j = 0; j < n; ++j) chunk[j] = byte_at(sent + j);
          c.write(chunk);
          sent += n;
        }
        c.close_write();
      });
      gort::net::Conn c = ln.accept();
      std::vector<char> buf(6000);
      std::size_t got = 0, bad = 0, reads = 0;
      for (;;) {
        // Mostly small reads (the read-ahead path), sometimes big ones (recv directly).
        const std::size_t want = reads % 11 == 10 ? 5000 : 1 + (reads * 37) % 700;
        ++reads;
        const std::size_t n = c.read(std::span<char>(buf.data(), want));
        if (n == 0) break;
        ASSERT_LE(n, want);
        for (std::size_t j = 0; j < n; ++j) bad += buf[j] != byte_at(got + j);
        got += n;
      }
      wg.wait();
      EXPECT_EQ(got, total);
      EXPECT_EQ(bad, 0u) << "bytes out of order or corrupted";
    });
  });
}

// Bytes already read ahead obey the read deadline like bytes still in the kernel, and
// survive a timeout.
TEST_P(Net, ReadAheadBytesObeyTheDeadlineAndSurviveIt) {
  run([] {
    gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
    std::string sent(100, '\0');
    for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = char('A' + i % 50);
    gort::WaitGroup wg;
    wg.go([&] {
      gort::net::Conn c = gort::net::dial("tcp", ln.addr());
      c.write(sent);  // one segment on loopback: the first read takes it whole
      c.close_write();
      char b;
      std::error_code ec;
      c.read(std::span<char>(&b, 1), ec);  // until the reader closes
    });
    gort::net::Conn c = ln.accept();
    char buf[10];
    std::size_t n = 0;
    while (n < sizeof buf) n += c.read(std::span<char>(buf + n, sizeof buf - n));
    EXPECT_EQ(std::string(buf, n), sent.substr(0, 10));
    c.set_read_deadline(Clock::now() - 1s);
    std::error_code ec;
    EXPECT_EQ(c.read(std::span<char>(buf), ec), 0u);
    EXPECT_EQ(ec, gort::net::errc::timeout) << ec.message();
    c.set_read_deadline(gort::time_point{});
    std::string rest;
    while (rest.size() < 90) {
      const std::size_t m = c.read(std::span<char>(buf), ec);
      ASSERT_FALSE(ec) << ec.message();
      ASSERT_GT(m, 0u) << "end of stream after " << rest.size() << " of 90 bytes";
      rest.append(buf, m);
    }
    EXPECT_EQ(rest, sent.substr(10));
    EXPECT_EQ(c.read(std::span<char>(buf), ec), 0u);  // then end of stream
    EXPECT_FALSE(ec) << ec.message();
    c.close();
    wg.wait();
  });
}

TEST_P(Net, PlainThreadDialsAGoroutineServer) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::WaitGroup wg;
      serve_echo_once(ln, wg);
      auto done = gort::make_chan<std::string>(1);
      std::thread t([addr = ln.addr(), done] {
        std::string got;
        try {
          gort::net::Conn c = gort::net::dial("tcp", addr);  // blocks this thread, not a P
          c.write("from a thread");
          c.close_write();
          got = read_to_eof(c);
        } catch (const std::exception& e) {
          got = e.what();
        }
        done.send(got);
      });
      EXPECT_EQ(*done.recv(), "from a thread");
      t.join();
      wg.wait();
    });
  });
}

// Each P's fds live in the epoll instance of its home, and what they wake runs on the P that
// polls it: connections opened on every P, served after all but one P are retired, lose
// nothing (the remaining P polls the homes of the retired ones too).
TEST_P(Net, ConnectionsOpenedOnEveryPAreServedAfterMaxprocsShrinks) {
  run([] {
    without_fd_leaks([] {
      const int procs = gort::maxprocs();
      const int n = 64;
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::WaitGroup server;
      server.go([&] {
        for (int i = 0; i < n; ++i) {
          server.go([c = ln.accept()]() mutable {
            for (std::string req; !(req = read_n(c, 4)).empty();) c.write(req);
          });
        }
      });
      // Dials from goroutines that yield in between, so they run on every P.
      std::vector<gort::net::Conn> conns(n);
      gort::WaitGroup dialed;
      for (int i = 0; i < n; ++i) {
        dialed.go([&, i] {
          gort::yield();
          conns[std::size_t(i)] = gort::net::dial("tcp", ln.addr());
        });
      }
      dialed.wait();
      gort::maxprocs(1);
      gort::WaitGroup clients;
      std::atomic<int> ok{0};
      for (int i = 0; i < n; ++i) {
        clients.go([&, i] {
          gort::net::Conn& c = conns[std::size_t(i)];
          char req[5];
          for (int round = 0; round < 8; ++round) {
            std::snprintf(req, sizeof req, "%02d%02d", i, round);
            c.write(std::string_view(req, 4));
            if (read_n(c, 4) != std::string_view(req, 4)) return;
          }
          ++ok;
        });
      }
      clients.wait();
      EXPECT_EQ(ok.load(), n);
      gort::maxprocs(procs);
      for (gort::net::Conn& c : conns) c.close();
      server.wait();
    });
  });
}

// An accepted socket's home is the P last seen on the CPU that handled its packets
// (SO_INCOMING_CPU): for a loopback connection, where its peer wrote from.
TEST(NetpollHomes, AcceptedSocketsHomeIsThePLastSeenOnTheirIncomingCpu) {
  cpu_set_t saved;
  ASSERT_EQ(::sched_getaffinity(0, sizeof saved, &saved), 0);
  const int cpu = ::sched_getcpu();
  ASSERT_GE(cpu, 0);
  cpu_set_t here;
  CPU_ZERO(&here);
  CPU_SET(cpu, &here);
  ASSERT_EQ(::sched_setaffinity(0, sizeof here, &here), 0);  // the handshake runs on `cpu`
  gort::netpoll::note_cpu(5);
  const int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(ls, 1), 0);
  ASSERT_EQ(::getsockname(ls, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  const int a = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(a, 0);
  ASSERT_EQ(::write(c, "x", 1), 1);
  int incoming = -1;
  socklen_t ilen = sizeof incoming;
  if (::getsockopt(a, SOL_SOCKET, SO_INCOMING_CPU, &incoming, &ilen) == 0 && incoming >= 0) {
    EXPECT_EQ(incoming, cpu);
    EXPECT_EQ(gort::netpoll::incoming_home(a), 5);
  } else {
    EXPECT_EQ(gort::netpoll::incoming_home(a), -1) << "no SO_INCOMING_CPU (an emulator): no guess";
  }
  gort::netpoll::note_cpu(0);
  for (int fd : {a, c, ls}) ::close(fd);
  ASSERT_EQ(::sched_setaffinity(0, sizeof saved, &saved), 0);
}

// The M that sleeps until the next timer while fds are watched waits in poll(). A wait
// shorter than a millisecond must end after its timeout, and, where the kernel has
// epoll_pwait2, well before the next whole millisecond (epoll_wait counts in milliseconds
// and must round up). Without it (an emulator), the millisecond fallback is checked.
TEST(NetpollTimeout, AShortPollEndsAfterItsTimeoutNotAtTheNextMillisecond) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  gort::netpoll::PollDesc* pd = gort::netpoll::open(fds[0], 0);  // nothing will be written
  const int probe = ::epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(probe, 0);
  epoll_event ev{};
  const timespec zero{0, 0};
  const bool ns_timeouts = ::epoll_pwait2(probe, &ev, 1, &zero, nullptr) >= 0 || errno != ENOSYS;
  ::close(probe);
  constexpr std::int64_t kTimeoutNs = 300'000;
  std::int64_t quickest = INT64_MAX;
  for (int i = 0; i < 20; ++i) {
    gort::sched::GQueue ready;
    const std::int64_t t0 = gort::sched::monotonic_ns();
    EXPECT_EQ(gort::netpoll::poll(kTimeoutNs, ready), 0);
    const std::int64_t took = gort::sched::monotonic_ns() - t0;
    EXPECT_GE(took, kTimeoutNs) << "a poll ended before its timeout";
    quickest = std::min(quickest, took);
  }
  if (ns_timeouts) {
    EXPECT_LT(quickest, 900'000) << "the timeout was rounded up to a millisecond";
  } else {
    EXPECT_GE(quickest, 1'000'000) << "epoll_wait's millisecond timeout must round up";
  }
  gort::netpoll::close(pd);
  gort::netpoll::release(pd);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_P(Net, AcceptBacksOffWhenOutOfDescriptors) {
  run([] {
    without_fd_leaks([] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      gort::net::Conn c = gort::net::dial("tcp", ln.addr());  // queued, waiting for accept
      rlimit saved;
      ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
      // The lowest free descriptor: with the limit there, accept4 gets EMFILE.
      const int lowest = ::dup(0);
      ASSERT_GE(lowest, 0);
      ::close(lowest);
      rlimit low = saved;
      low.rlim_cur = rlim_t(lowest);
      ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
      auto accepted = gort::make_chan<std::error_code>(1);
      gort::go([&ln, accepted] {
        std::error_code ec;
        {
          gort::net::Conn s = ln.accept(ec);  // EMFILE: sleeps and retries instead of failing
        }  // closed before reporting, so the descriptor count below cannot race with it
        accepted.send(ec);
      });
      wait_parked("sleep", 1);  // backing off
      EXPECT_EQ(accepted.len(), 0u);
      ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
      EXPECT_FALSE(*accepted.recv());
    });
  });
}

TEST_P(NetStress, ManyConcurrentConnections) {
  run([] {
    // Each connection costs two descriptors here (both ends live in this process).
    rlimit lim;
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
    const long room = (long(lim.rlim_cur) - open_fds() - 100) / 2;
    const int n = int(std::min<long>(scaled(10000), room));
    ASSERT_GT(n, 100) << "RLIMIT_NOFILE is too low for a stress test";

    without_fd_leaks([n] {
      gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
      const std::string addr = ln.addr();
      const int base = open_fds();
      std::atomic<int> served{0};
      gort::WaitGroup server;
      server.go([&] {
        for (int i = 0; i < n; ++i) {
          gort::net::Conn c = ln.accept();
          server.go([&served, accepted = std::move(c)]() mutable {
            gort::net::Conn c = std::move(accepted);  // closed before done()
            std::string req = read_n(c, 8);
            c.write(req);
            if (read_to_eof(c).empty()) ++served;  // held open until the client closes
          });
        }
      });
      gort::WaitGroup clients, echoed;
      auto release = gort::make_chan<std::monostate>();
      gort::Semaphore dialing(512);  // under the listen backlog: no SYN is dropped
      std::atomic<int> ok{0};
      echoed.add(n);
      for (int i = 0; i < n; ++i) {
        clients.go([&, i] {
          dialing.acquire();
          gort::net::Conn c = gort::net::dial("tcp", addr);
          dialing.release();
          char id[9];
          std::snprintf(id, sizeof id, "%08d", i);
          c.write(std::string_view(id, 8));
          if (read_n(c, 8) == std::string_view(id, 8)) ++ok;
          echoed.done();
          release.recv();  // hold the connection until every client got its echo
        });
      }
      echoed.wait();
      EXPECT_EQ(ok.load(), n);
      EXPECT_GE(open_fds(), base + 2 * n) << "all connections are open at once";
      release.close();
      clients.wait();
      server.wait();
      EXPECT_EQ(served.load(), n);
      EXPECT_EQ(gort_test::settled_open_fds(base), base);
    });
  });
}

}  // namespace
