// gort::debug::serve: every page fetched over gort::net from a goroutine (goroutine dumps
// at both levels showing a goroutine parked with a known wait reason, /debug/vars as
// JSON, /debug/sched, the HTML index), the HTTP edge cases (404, 405, 400, 505, 431,
// HEAD, HTTP/1.0, keep-alive, pipelining, Connection: close), loopback binding, Unix
// sockets, stop_serving() and the stop when run()'s main returns — with no descriptor
// left open. curl and headless Chromium fetch the same pages in tools_test.py.
#include <dirent.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <map>
#include <string>
#include <string_view>
#include <system_error>

#include <gort/net.hpp>

#include "test_util.hpp"

using gort_test::open_fds;
using gort_test::read_to_eof;
using gort_test::count_parked;

namespace {

class Serve : public gort_test::Procs {};
GORT_INSTANTIATE_PROCS(Serve);

// ---- helpers -----------------------------------------------------------------------------

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads one response (head, then Content-Length bytes of body unless `head_only`) from c,
// keeping what follows it in `pending`. Fails the test on a malformed response.
Reply read_reply(gort::net::Conn& c, std::string& pending, bool head_only = false) {
  Reply r;
  char buf[4096];
  std::size_t end;
  while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
    const std::size_t n = c.read(std::span<char>(buf));
    if (n == 0) {
      ADD_FAILURE() << "connection ended inside a response head: " << pending;
      return r;
    }
    pending.append(buf, n);
  }
  const std::string head = pending.substr(0, end);
  pending.erase(0, end + 4);
  EXPECT_EQ(head.substr(0, 9), "HTTP/1.1 ") << head;
  r.status = std::atoi(head.c_str() + 9);
  for (std::size_t p = head.find("\r\n"); p != std::string::npos;) {
    const std::size_t next = head.find("\r\n", p + 2);
    const std::string line = head.substr(p + 2, next == std::string::npos ? std::string::npos : next - p - 2);
    const std::size_t colon = line.find(':');
    EXPECT_NE(colon, std::string::npos) << line;
    if (colon != std::string::npos) r.headers[lower(line.substr(0, colon))] = line.substr(line.find_first_not_of(' ', colon + 1));
    p = next;
  }
  EXPECT_TRUE(r.headers.count("content-length")) << head;
  const std::size_t len = std::strtoul(r.headers["content-length"].c_str(), nullptr, 10);
  if (head_only) return r;
  while (pending.size() < len) {
    const std::size_t n = c.read(std::span<char>(buf));
    if (n == 0) break;
    pending.append(buf, n);
  }
  EXPECT_GE(pending.size(), len) << "short body";
  r.body = pending.substr(0, len);
  pending.erase(0, std::min(len, pending.size()));
  return r;
}

// One request on a fresh connection, `Connection: close`.
Reply get(const std::string& addr, const std::string& target, const char* method = "GET") {
  gort::net::Conn c = gort::net::dial("tcp", addr);
  c.write(std::string(method) + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n");
  std::string pending;
  Reply r = read_reply(c, pending, std::string_view(method) == "HEAD");
  pending += read_to_eof(c);
  EXPECT_EQ(pending, "") << "bytes after the response";
  return r;
}

// Raw bytes in (then end of stream), everything out until the server closes.
std::string roundtrip(const std::string& addr, std::string_view raw) {
  gort::net::Conn c = gort::net::dial("tcp", addr);
  c.write(raw);
  c.close_write();  // a server still waiting for the rest of a request sees EOF
  return read_to_eof(c);
}

// A JSON checker small enough to trust: parses one value, collecting the top-level
// object's members as raw text. False on anything that is not JSON.
class Json {
 public:
  explicit Json(std::string_view s) : s_(s) {}
  bool parse_object_top(std::map<std::string, std::string>& members) {
    ws();
    if (!eat('{')) return false;
    ws();
    if (eat('}')) return finish();
    for (;;) {
      ws();
      std::string key;
      if (!string(&key)) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      const std::size_t from = i_;
      if (!value()) return false;
      members[key] = std::string(s_.substr(from, i_ - from));
      ws();
      if (eat('}')) return finish();
      if (!eat(',')) return false;
    }
  }

 private:
  bool finish() {
    ws();
    return i_ == s_.size();
  }
  void ws() {
    while (i_ < s_.size() && std::string_view(" \t\r\n").find(s_[i_]) != std::string_view::npos) ++i_;
  }
  bool eat(char c) { return i_ < s_.size() && s_[i_] == c ? (++i_, true) : false; }
  bool string(std::string* out) {
    if (!eat('"')) return false;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (static_cast<unsigned char>(s_[i_]) < 0x20) return false;
      if (s_[i_] == '\\') {
        ++i_;
        if (i_ >= s_.size() || std::string_view("\"\\/bfnrtu").find(s_[i_]) == std::string_view::npos) return false;
        if (s_[i_] == 'u') {
          for (int k = 1; k <= 4; ++k) {
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k]))) return false;
          }
          i_ += 4;
        }
      } else if (out) {
        *out += s_[i_];
      }
      ++i_;
    }
    return eat('"');
  }
  bool value() {
    ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') return string(nullptr);
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i_;
      ws();
      if (eat(close)) return true;
      for (;;) {
        ws();
        if (c == '{') {
          if (!string(nullptr)) return false;
          ws();
          if (!eat(':')) return false;
        }
        if (!value()) return false;
        ws();
        if (eat(close)) return true;
        if (!eat(',')) return false;
      }
    }
    for (std::string_view lit : {"true", "false", "null"}) {
      if (s_.substr(i_, lit.size()) == lit) return i_ += lit.size(), true;
    }
    const std::size_t from = i_;
    eat('-');
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || std::string_view(".eE+-").find(s_[i_]) != std::string_view::npos)) ++i_;
    return i_ > from && std::isdigit(static_cast<unsigned char>(s_[i_ - 1]));
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

long long as_int(const std::string& s) {
  long long v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() ? v : -1;
}

}  // namespace

// The frame the dump must show (exported, so it is named even without debug info).
extern "C" [[gnu::noinline]] void gort_serve_test_parked_here(gort::chan<int> c) {
  c.recv();
  asm volatile("" ::: "memory");  // not a tail call: keep this frame on the stack
}

namespace {

// ---- the pages ---------------------------------------------------------------------------

TEST_P(Serve, GoroutineDumpsShowAParkedGoroutine) {
  run([] {
    const std::string addr = gort::debug::serve_addr(":0");
    auto c = gort::make_chan<int>();
    gort::go(gort::Spawn{"parked for the dump"}, [c] { gort_serve_test_parked_here(c); });
    while (count_parked("chan receive") < 1) gort::yield();

    Reply r2 = get(addr, "/debug/pprof/goroutine?debug=2");
    EXPECT_EQ(r2.status, 200);
    EXPECT_EQ(r2.headers["content-type"], "text/plain; charset=utf-8");
    EXPECT_NE(r2.body.find("[chan receive] \"parked for the dump\":\n"), std::string::npos) << r2.body;
    EXPECT_NE(r2.body.find("gort_serve_test_parked_here"), std::string::npos) << r2.body;
    EXPECT_NE(r2.body.find("\"gort debug server\""), std::string::npos) << "the accept loop is in the dump: " << r2.body;
    EXPECT_EQ(r2.body.rfind("goroutine 1 [", 0), 0u) << r2.body;

    Reply r1 = get(addr, "/debug/pprof/goroutine?debug=1");
    EXPECT_EQ(r1.status, 200);
    EXPECT_EQ(r1.body.rfind("goroutine profile: total ", 0), 0u) << r1.body;
    EXPECT_NE(r1.body.find("gort_serve_test_parked_here"), std::string::npos) << r1.body;
    EXPECT_EQ(r1.body.find("\"parked for the dump\""), std::string::npos) << "level 1 has no headers: " << r1.body;

    // No debug parameter (pprof's binary form): the grouped text.
    Reply r0 = get(addr, "/debug/pprof/goroutine");
    EXPECT_EQ(r0.body.rfind("goroutine profile: total ", 0), 0u) << r0.body;

    c.close();
    gort::debug::stop_serving();
  });
}

TEST_P(Serve, VarsIsJsonWithTheStats) {
  run([] {
    const std::string addr = gort::debug::serve_addr(":0");
    Reply r = get(addr, "/debug/vars");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-type"], "application/json; charset=utf-8");
    std::map<std::string, std::string> m;
    ASSERT_TRUE(Json(r.body).parse_object_top(m)) << "not a JSON object: " << r.body;
    for (const char* k : {"goroutines", "threads", "procs", "idle_procs", "spinning_threads", "spawns",
                          "context_switches", "parks", "steals", "stolen_goroutines", "thread_parks",
                          "syscall_handoffs", "preemptions", "spawn_yields", "descriptors", "timers", "netpoll_waits", "stacks_pooled", "stacks_released",
                          "stack_release_calls", "num_cpu", "uptime_ms"}) {
      EXPECT_GE(as_int(m[k]), 0) << k << " missing or not an integer in " << r.body;
    }
    // main, the accept loop and the connection's goroutine at least.
    EXPECT_GE(as_int(m["goroutines"]), 3) << r.body;
    EXPECT_EQ(as_int(m["procs"]), gort::maxprocs()) << r.body;
    EXPECT_GE(as_int(m["netpoll_waits"]), 1) << "the accept loop waited on the poller: " << r.body;
    ASSERT_TRUE(m.count("cmdline"));
    EXPECT_EQ(m["cmdline"].front(), '[');
    EXPECT_NE(m["cmdline"].find("debug_serve_test"), std::string::npos) << m["cmdline"];
    ASSERT_TRUE(m.count("memstats"));
    std::map<std::string, std::string> mem;
    ASSERT_TRUE(Json(m["memstats"]).parse_object_top(mem)) << m["memstats"];
    EXPECT_GT(as_int(mem["rss_bytes"]), 0) << m["memstats"];
    EXPECT_GE(as_int(mem["vm_bytes"]), as_int(mem["rss_bytes"])) << m["memstats"];
    EXPECT_GT(as_int(mem["max_rss_bytes"]), 0) << m["memstats"];
    gort::debug::stop_serving();
  });
}

TEST_P(Serve, SchedHasATraceLineAndCounters) {
  const int procs = GetParam();
  run([procs] {
    const std::string addr = gort::debug::serve_addr(":0");
    Reply r = get(addr, "/debug/sched");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.rfind("SCHED ", 0), 0u) << r.body;
    EXPECT_NE(r.body.find("ms: gomaxprocs=" + std::to_string(procs) + " idleprocs="), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\ncontext_switches "), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\ngoroutines "), std::string::npos) << r.body;
    gort::debug::stop_serving();
  });
}

TEST_P(Serve, IndexLinksEveryPage) {
  run([] {
    const std::string addr = gort::debug::serve_addr(":0");
    for (const char* path : {"/", "/debug/pprof/"}) {
      Reply r = get(addr, path);
      EXPECT_EQ(r.status, 200) << path;
      EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8") << path;
      EXPECT_EQ(r.body.rfind("<!DOCTYPE html>", 0), 0u) << r.body;
      for (const char* href : {"/debug/pprof/goroutine?debug=1", "/debug/pprof/goroutine?debug=2", "/debug/vars",
                               "/debug/sched"}) {
        EXPECT_NE(r.body.find(std::string("<a href=\"") + href + "\">"), std::string::npos) << href << " in " << r.body;
      }
      EXPECT_NE(r.body.find("</html>"), std::string::npos);
    }
    gort::debug::stop_serving();
  });
}

// ---- HTTP --------------------------------------------------------------------------------

TEST_P(Serve, ErrorsAndMethods) {
  run([] {
    const std::string addr = gort::debug::serve_addr(":0");
    Reply r = get(addr, "/nope");
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.body, "404 page not found\n");
    r = get(addr, "/debug/vars", "POST");
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.headers["allow"], "GET, HEAD");
    EXPECT_EQ(r.headers["connection"], "close");
    r = get(addr, "/debug/vars", "HEAD");
    EXPECT_EQ(r.status, 200);
    EXPECT_GT(as_int(r.headers["content-length"]), 0);  // and get() checked no body came

    auto status_of = [](const std::string& raw) { return raw.substr(0, raw.find("\r\n")); };
    EXPECT_EQ(status_of(roundtrip(addr, "garbage\r\n\r\n")), "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(status_of(roundtrip(addr, "GET / HTTP/1.1\r\n\r\n")), "HTTP/1.1 400 Bad Request") << "no Host";
    EXPECT_EQ(status_of(roundtrip(addr, "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n")), "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(status_of(roundtrip(addr, "GET / HTTP/1.1\r\nHost : x\r\n\r\n")), "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(status_of(roundtrip(addr, "GET nopath HTTP/1.1\r\nHost: x\r\n\r\n")), "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(status_of(roundtrip(addr, "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")),
              "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(status_of(roundtrip(addr, "GET / HTTP/2.0\r\nHost: x\r\n\r\n")), "HTTP/1.1 505 HTTP Version Not Supported");
    EXPECT_EQ(status_of(roundtrip(addr, "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(20000, 'a') + "\r\n\r\n")),
              "HTTP/1.1 431 Request Header Fields Too Large");
    // A client that goes away mid-request gets nothing, and the server goes on.
    EXPECT_EQ(roundtrip(addr, "GET /debug/va"), "");
    // HTTP/1.0 closes after the response; bare LF line ends are accepted.
    const std::string r10 = roundtrip(addr, "GET /debug/sched HTTP/1.0\n\n");
    EXPECT_EQ(status_of(r10), "HTTP/1.1 200 OK");
    EXPECT_NE(r10.find("\r\nConnection: close\r\n"), std::string::npos) << r10;
    // An absolute-form target, and a GET with a body (read and dropped).
    EXPECT_EQ(status_of(roundtrip(addr, "GET http://" + addr + "/debug/vars HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
              "HTTP/1.1 200 OK");
    const std::string with_body = roundtrip(
        addr, "GET /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(status_of(with_body), "HTTP/1.1 404 Not Found");
    EXPECT_NE(with_body.find("HTTP/1.1 200 OK"), std::string::npos) << with_body;
    gort::debug::stop_serving();
  });
}

TEST_P(Serve, KeepAliveAndPipelining) {
  run([] {
    const std::string addr = gort::debug::serve_addr(":0");
    gort::net::Conn c = gort::net::dial("tcp", addr);
    std::string pending;
    // Kept alive: three requests, one after the other, on one connection.
    for (const char* path : {"/debug/sched", "/debug/vars", "/"}) {
      c.write(std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
      Reply r = read_reply(c, pending);
      EXPECT_EQ(r.status, 200) << path;
      EXPECT_EQ(r.headers.count("connection"), 0u) << path;
    }
    // Pipelined: three in one write, the last asking to close; answered in order, then EOF.
    c.write("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(read_reply(c, pending).status, 404);
    EXPECT_EQ(read_reply(c, pending, true).status, 200);
    Reply last = read_reply(c, pending);
    EXPECT_EQ(last.status, 200);
    EXPECT_EQ(last.body.rfind("goroutine profile: total ", 0), 0u) << last.body;
    EXPECT_EQ(last.headers["connection"], "close");
    EXPECT_EQ(pending + read_to_eof(c), "");
    gort::debug::stop_serving();
  });
}

// ---- where it listens, and stopping ------------------------------------------------------

TEST_P(Serve, EmptyHostMeansLoopback) {
  run([] {
    const std::string addr = gort::debug::serve_addr(":0");
    EXPECT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
    const std::string any = gort::debug::serve_addr("0.0.0.0:0");
    EXPECT_EQ(any.rfind("0.0.0.0:", 0), 0u) << any;
    EXPECT_EQ(get("127.0.0.1:" + any.substr(8), "/debug/sched").status, 200);
    gort::debug::stop_serving();
  });
}

TEST_P(Serve, UnixSocket) {
  run([] {
    const std::string path = ::testing::TempDir() + "gort-debug-" + std::to_string(::getpid()) + ".sock";
    EXPECT_EQ(gort::debug::serve_addr(path), path);
    gort::net::Conn c = gort::net::dial("unix", path);
    c.write("GET /debug/vars HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::string pending;
    EXPECT_EQ(read_reply(c, pending).status, 200);
    gort::debug::stop_serving();
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file outlived the server";
  });
}

TEST_P(Serve, StopServingClosesConnectionsAndListener) {
  run([] {
    gort::net::listen("tcp", "127.0.0.1:0");  // the poller's own descriptors exist from here
    const int before = open_fds();
    const std::string addr = gort::debug::serve_addr(":0");
    gort::net::Conn idle = gort::net::dial("tcp", addr);
    std::string pending;
    idle.write("GET /debug/sched HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(read_reply(idle, pending).status, 200);  // its goroutine now waits for the next request
    gort::debug::stop_serving();                       // returns once its goroutines are gone
    EXPECT_EQ(read_to_eof(idle), "") << "the idle connection was closed";
    idle.close();
    std::error_code ec;
    gort::net::dial("tcp", addr, ec);
    EXPECT_EQ(ec, std::errc::connection_refused);
    EXPECT_EQ(gort_test::settled_open_fds(before), before) << "descriptors leaked";
    gort::debug::stop_serving();  // nothing to stop: fine
  });
}

TEST_P(Serve, LeakChecksIgnoreTheServerByName) {
  run([] {
    gort::debug::serve(":0");
    gort::testing::VerifyOptions o;
    o.grace = std::chrono::milliseconds(10);
    EXPECT_THROW(gort::testing::verify_none(o), gort::testing::leak_error);
    o.ignore = {"gort debug"};
    EXPECT_NO_THROW(gort::testing::verify_none(o));
    gort::debug::stop_serving();
  });
}

TEST(ServeRun, StopsWhenMainReturns) {
  std::string addr;
  int before = -1;
  gort::run([&] {
    gort::net::listen("tcp", "127.0.0.1:0");
    before = open_fds();
    addr = gort::debug::serve_addr(":0");
    gort::net::Conn c = gort::net::dial("tcp", addr);  // left open: main's return must close the server's side
    std::string pending;
    c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(read_reply(c, pending).status, 200);
    c.close();
    gort::testing::VerifyOptions o;
    o.ignore = {"gort debug"};
    gort::testing::verify_none(o);
  });
  EXPECT_EQ(gort_test::settled_open_fds(before), before) << "the server's sockets outlived run()";
  gort::run([&] {
    std::error_code ec;
    gort::net::dial("tcp", addr, ec);
    EXPECT_EQ(ec, std::errc::connection_refused) << "still listening on " << addr;
    // The next run serves afresh; stop_serving has nothing of the last run's to stop.
    gort::debug::stop_serving();
    EXPECT_EQ(get(gort::debug::serve_addr(":0"), "/debug/sched").status, 200);
  });
}

TEST(ServeRun, Failures) {
  EXPECT_THROW(gort::debug::serve(":0"), std::logic_error) << "outside run()";
  gort::testing::run_test([] {
    gort::net::Listener taken = gort::net::listen("tcp", "127.0.0.1:0");
    try {
      gort::debug::serve(taken.addr());
      ADD_FAILURE() << "serve on a taken address returned";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::address_in_use) << e.what();
    }
    EXPECT_THROW(gort::debug::serve("no-port"), std::system_error);
    EXPECT_EQ(gort::num_goroutine(), 1) << "a failed serve started no goroutine";
  });
}

}  // namespace
