// debug/serve — gort::debug::serve: an HTTP/1.1 endpoint run by the runtime itself on
// gort::net (Go's net/http/pprof and expvar in miniature).
//
// Shape. serve() listens, then starts the accept loop as goroutine "gort debug server";
// each connection gets a goroutine "gort debug conn" that parses requests with the small
// parser below and answers each in turn (so pipelined requests are safe). Every response
// carries Content-Length; keep-alive is HTTP/1.1's default, `Connection: close` (or HTTP/1.0
// without keep-alive) ends the connection after its response, and a request we cannot parse
// gets 400 and the connection is closed.
//
// Stopping. A Server is shared (shared_ptr) by the registry and its goroutines:
//   - `mu` guards `closed` and `conns` (the Conns open now, each owned by its goroutine);
//   - close() sets `closed`, closes the listener and every Conn in `conns` — closing wakes
//     a goroutine blocked on it — and a conn goroutine that starts after `closed` returns
//     at once;
//   - `wg` counts the server's goroutines; each one's sockets are closed before its
//     done(), so after wg.wait() no socket of the server is open.
// run()'s main stops every server when it returns (on_main_return), while the scheduler
// still runs the goroutines that must see their sockets close.
//
// Parsing. Only what this endpoint needs, strictly: the request line (method, origin-form
// or absolute-form target, HTTP/1.0 or 1.1), header lines (no obsolete line folding, no
// space before the colon), Host required for HTTP/1.1 (as Go requires it), Connection,
// Content-Length (a GET's body is read and dropped) and no Transfer-Encoding. A request
// head is at most kMaxHead bytes.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <vector>

#include <gort/debug.hpp>
#include <gort/net.hpp>
#include <gort/runtime.hpp>
#include <gort/sync.hpp>

#include "debug/hooks.hpp"
#include "sched/sched.hpp"

namespace gort::debug_impl {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxHead = 16 * 1024;  // request line and headers
constexpr std::size_t kMaxBody = 64 * 1024;  // a GET's body, read and dropped
constexpr auto kIdleTimeout = 2min;          // between requests on a kept-alive connection
constexpr auto kWriteTimeout = 1min;         // for one response

// ---- the request parser ------------------------------------------------------------------

struct Request {
  std::string_view method;
  std::string_view path;   // "/debug/vars"
  std::string_view query;  // "debug=2" (without '?')
  bool keep_alive = true;
  std::size_t content_length = 0;
};

enum class Parse { incomplete, ok, bad, head_too_large, bad_version };

bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses the request head at the start of `buf`. On ok, `req` points into buf and `used`
// is the head's length (up to and including the empty line).
Parse parse_request(std::string_view buf, Request& req, std::size_t& used) {
  // Empty lines before a request line are ignored (RFC 9112 §2.2).
  std::size_t start = 0;
  while (start < buf.size() && (buf[start] == '\r' || buf[start] == '\n')) ++start;
  std::vector<std::string_view> lines;
  std::size_t pos = start;
  bool complete = false;
  for (;;) {
    const std::size_t nl = buf.find('\n', pos);
    if (nl == std::string_view::npos) break;
    std::string_view line = buf.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.empty()) {
      complete = true;
      break;
    }
    lines.push_back(line);
  }
  if (!complete) return buf.size() - start > kMaxHead ? Parse::head_too_large : Parse::incomplete;
  if (pos - start > kMaxHead) return Parse::head_too_large;
  used = pos;

  // Request line: METHOD SP target SP HTTP/1.x
  const std::string_view rl = lines[0];
  const std::size_t sp1 = rl.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos) return Parse::bad;
  req.method = rl.substr(0, sp1);
  std::string_view target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = rl.substr(sp2 + 1);
  if (!is_token(req.method) || target.empty()) return Parse::bad;
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return Parse::bad;
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !std::isdigit(static_cast<unsigned char>(version[5])) ||
      version[6] != '.' || !std::isdigit(static_cast<unsigned char>(version[7]))) {
    return Parse::bad;
  }
  if (version[5] != '1' || version[7] > '1') return Parse::bad_version;
  const bool http11 = version[7] == '1';
  // Absolute form ("http://host:port/path"), as proxies send it: keep the path.
  if (target.substr(0, 7) == "http://" || target.substr(0, 8) == "https://") {
    const std::size_t slash = target.find('/', target.find("//") + 2);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (target.front() != '/' && target != "*") return Parse::bad;
  const std::size_t q = target.find('?');
  req.path = target.substr(0, q);
  req.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  bool host = false, close = false, keep_alive = false, have_length = false;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) return Parse::bad;  // also folding
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return Parse::bad;
    }
    if (iequals(name, "Host")) {
      if (host) return Parse::bad;  // more than one
      host = true;
    } else if (iequals(name, "Connection")) {
      for (std::size_t p = 0; p <= value.size();) {
        std::size_t comma = value.find(',', p);
        if (comma == std::string_view::npos) comma = value.size();
        const std::string_view opt = trim(value.substr(p, comma - p));
        close |= iequals(opt, "close");
        keep_alive |= iequals(opt, "keep-alive");
        p = comma + 1;
      }
    } else if (iequals(name, "Content-Length")) {
      std::size_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size()) return Parse::bad;
      if (have_length && n != req.content_length) return Parse::bad;
      have_length = true;
      req.content_length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      return Parse::bad;  // no request of ours has a chunked body
    }
  }
  if (http11 && !host) return Parse::bad;
  req.keep_alive = http11 ? !close : keep_alive && !close;
  return Parse::ok;
}

// ---- the pages ---------------------------------------------------------------------------

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string extra_headers;  // "Name: value\r\n" lines
};

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
  }
  return "Error";
}

Response error_page(int status) {
  Response r;
  r.status = status;
  r.body = std::to_string(status) + " " + reason(status) + "\n";
  if (status == 404) r.body = "404 page not found\n";  // Go's net/http body
  return r;
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);  // UTF-8 passes through
        }
    }
  }
  out += '"';
}

// "goroutines": 12 ... for every field of debug::Stats, in declaration order.
template <class F>
void for_each_stat(const debug::Stats& s, F&& f) {
  f("goroutines", std::uint64_t(s.goroutines));
  f("threads", std::uint64_t(s.threads));
  f("procs", std::uint64_t(s.procs));
  f("idle_procs", std::uint64_t(s.idle_procs));
  f("spinning_threads", std::uint64_t(s.spinning_threads));
  f("spawns", s.spawns);
  f("context_switches", s.context_switches);
  f("parks", s.parks);
  f("steals", s.steals);
  f("stolen_goroutines", s.stolen_goroutines);
  f("thread_parks", s.thread_parks);
  f("syscall_handoffs", s.syscall_handoffs);
  f("preemptions", s.preemptions);
  f("spawn_yields", s.spawn_yields);
  f("descriptors", s.descriptors);
  f("timers", s.timers);
  f("netpoll_waits", s.netpoll_waits);
  f("stacks_pooled", s.stacks_pooled);
  f("stacks_released", s.stacks_released);
  f("stack_release_calls", s.stack_release_calls);
}

std::string vars_json() {
  std::string out = "{\n";
  const debug::Stats s = debug::stats();
  for_each_stat(s, [&](const char* name, std::uint64_t v) {
    out += "\"";
    out += name;
    out += "\": " + std::to_string(v) + ",\n";
  });
  out += "\"num_cpu\": " + std::to_string(gort::num_cpu()) + ",\n";
  if (sched::Runtime* rt = sched::runtime()) {
    out += "\"uptime_ms\": " + std::to_string((sched::monotonic_ns() - rt->start_ns) / 1'000'000) + ",\n";
  }
  // Go's expvar publishes these two.
  out += "\"cmdline\": [";
  {
    std::ifstream f("/proc/self/cmdline", std::ios::binary);
    std::string arg;
    bool first = true;
    while (std::getline(f, arg, '\0')) {
      if (!first) out += ", ";
      first = false;
      json_string(out, arg);
    }
  }
  out += "],\n\"memstats\": {";
  // What the kernel says of the process (gort has no heap of its own to report on).
  const long page = sysconf(_SC_PAGESIZE);
  unsigned long long size = 0, resident = 0, shared = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%llu %llu %llu", &size, &resident, &shared) != 3) size = resident = shared = 0;
    std::fclose(f);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  out += "\"vm_bytes\": " + std::to_string(size * page) + ", \"rss_bytes\": " + std::to_string(resident * page) +
         ", \"rss_shared_bytes\": " + std::to_string(shared * page) +
         ", \"max_rss_bytes\": " + std::to_string(static_cast<unsigned long long>(ru.ru_maxrss) * 1024) + "}\n}\n";
  return out;
}

std::string sched_text() {
  std::string out;
  if (sched::Runtime* rt = sched::runtime()) out = schedtrace_line(rt) + "\n\n";
  const debug::Stats s = debug::stats();
  for_each_stat(s, [&](const char* name, std::uint64_t v) {
    char line[96];
    std::snprintf(line, sizeof line, "%-18s %llu\n", name, static_cast<unsigned long long>(v));
    out += line;
  });
  return out;
}

constexpr std::string_view kIndex = R"(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gort debug</title>
<style>body{font-family:sans-serif;margin:2em}td{padding:0.2em 1em 0.2em 0}</style>
</head>
<body>
<h1>gort debug</h1>
<p>Goroutines alive: @GOROUTINES@.</p>
<table>
<tr><td><a href="/debug/pprof/goroutine?debug=1">goroutine?debug=1</a></td><td>every goroutine, identical stacks grouped with counts</td></tr>
<tr><td><a href="/debug/pprof/goroutine?debug=2">goroutine?debug=2</a></td><td>every goroutine with its wait reason and stack, as a SIGQUIT dump</td></tr>
<tr><td><a href="/debug/vars">vars</a></td><td>scheduler counters, command line and memory, as JSON</td></tr>
<tr><td><a href="/debug/sched">sched</a></td><td>a schedtrace line and the scheduler counters</td></tr>
</table>
</body>
</html>
)";

Response route(std::string_view path, std::string_view query) {
  Response r;
  if (path == "/" || path == "/debug/pprof/" || path == "/debug/pprof") {
    r.content_type = "text/html; charset=utf-8";
    r.body = kIndex;
    r.body.replace(r.body.find("@GOROUTINES@"), 12, std::to_string(gort::num_goroutine()));
  } else if (path == "/debug/pprof/goroutine") {
    // debug=2 (or more): every goroutine; otherwise (pprof's binary debug=0 too) grouped.
    int level = 1;
    for (std::size_t p = 0; p <= query.size();) {
      std::size_t amp = query.find('&', p);
      if (amp == std::string_view::npos) amp = query.size();
      const std::string_view kv = query.substr(p, amp - p);
      if (kv.substr(0, 6) == "debug=") {
        int n = 0;
        std::from_chars(kv.data() + 6, kv.data() + kv.size(), n);
        level = n >= 2 ? 2 : 1;
      }
      p = amp + 1;
    }
    std::ostringstream os;
    debug::write_goroutines(os, level);
    r.body = os.str();
  } else if (path == "/debug/vars") {
    r.content_type = "application/json; charset=utf-8";
    r.body = vars_json();
  } else if (path == "/debug/sched") {
    r.body = sched_text();
  } else {
    return error_page(404);
  }
  r.extra_headers = "Cache-Control: no-store\r\n";
  return r;
}

std::string format_response(const Response& r, bool head, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "X-Content-Type-Options: nosniff\r\n";
  out += r.extra_headers;
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head) out += r.body;
  return out;
}

// ---- the server --------------------------------------------------------------------------

struct Server : std::enable_shared_from_this<Server> {
  net::Listener ln;
  std::string addr;
  gort::Mutex mu;
  bool closed = false;                      // guarded by mu
  std::unordered_set<net::Conn*> conns;     // guarded by mu: open connections
  gort::WaitGroup wg;                       // the accept loop and every conn goroutine

  void accept_loop();
  void handle(net::Conn& conn);
  void close();
};

// Ends a connection we chose to end while the client may still be sending: closing with
// unread input makes the kernel send RST, which can destroy our last response before the
// client reads it. So: FIN, drain briefly, then close (Go's closeWriteAndWait).
void finish(net::Conn& conn) {
  std::error_code ec;
  conn.close_write(ec);
  conn.set_read_deadline(Clock::now() + 100ms, ec);
  char sink[4096];
  while (!ec && conn.read(std::span<char>(sink), ec) != 0) {}
}

void Server::accept_loop() {
  for (;;) {
    std::error_code ec;
    net::Conn conn = ln.accept(ec);  // backs off by itself when out of descriptors
    if (ec) {
      std::lock_guard l(mu);
      if (!closed) std::fprintf(stderr, "gort debug server %s: accept: %s\n", addr.c_str(), ec.message().c_str());
      return;
    }
    wg.add(1);
    gort::go(gort::Spawn{"gort debug conn"}, [self = shared_from_this(), c = std::move(conn)]() mutable {
      {
        net::Conn local = std::move(c);  // closed at the end of this block, before done()
        bool run = false;
        {
          std::lock_guard l(self->mu);
          if (!self->closed) run = self->conns.insert(&local).second;
        }
        if (run) {
          self->handle(local);
          std::lock_guard l(self->mu);
          self->conns.erase(&local);  // before local is destroyed: close() must not touch it after
        }
      }
      self->wg.done();
    });
  }
}

void Server::close() {
  std::error_code ignored;
  std::lock_guard l(mu);
  if (closed) return;
  closed = true;
  ln.close(ignored);                                // wakes the accept loop
  for (net::Conn* c : conns) c->close(ignored);     // wakes its goroutine's read or write
}

void Server::handle(net::Conn& conn) {
  std::string buf;
  char chunk[8192];
  std::error_code ec;
  auto read_more = [&]() -> bool {
    conn.set_read_deadline(Clock::now() + kIdleTimeout, ec);
    const std::size_t n = conn.read(std::span<char>(chunk), ec);
    if (ec || n == 0) return false;
    buf.append(chunk, n);
    return true;
  };
  auto send = [&](const Response& r, bool head, bool close) -> bool {
    const std::string out = format_response(r, head, close);
    conn.set_write_deadline(Clock::now() + kWriteTimeout, ec);
    conn.write(out, ec);
    return !ec;
  };
  for (;;) {
    Request req;
    std::size_t used = 0;
    const Parse p = parse_request(buf, req, used);
    if (p == Parse::incomplete) {
      if (!read_more()) return;  // EOF, reset, idle too long, or closed by stop_serving
      continue;
    }
    if (p != Parse::ok) {
      const int status = p == Parse::head_too_large ? 431 : p == Parse::bad_version ? 505 : 400;
      if (send(error_page(status), false, true)) finish(conn);
      return;
    }
    const bool head = req.method == "HEAD";
    if (!head && req.method != "GET") {
      Response r = error_page(405);
      r.extra_headers = "Allow: GET, HEAD\r\n";
      if (send(r, head, true)) finish(conn);  // its body, if any, is not read: close
      return;
    }
    if (req.content_length > kMaxBody) {
      if (send(error_page(413), head, true)) finish(conn);
      return;
    }
    // The route's answer is computed before the request leaves buf (req points into it).
    const Response r = route(req.path, req.query);
    const bool keep = req.keep_alive;
    const std::size_t body = req.content_length;
    buf.erase(0, used);
    while (buf.size() < body) {
      if (!read_more()) return;
    }
    buf.erase(0, body);  // a GET's body means nothing to us
    if (!send(r, head, !keep)) return;
    if (!keep) return finish(conn);
  }
}

// Servers of the current run(); guarded by g_mu. g_count mirrors its size for the cheap
// check on_main_return makes.
gort::Mutex g_mu;
std::vector<std::shared_ptr<Server>> g_servers;
std::atomic<int> g_count{0};

// "host:port" with an empty host means loopback here.
std::pair<std::string, std::string> listen_target(std::string_view address) {
  if (address.find('/') != std::string_view::npos || (!address.empty() && address.front() == '@')) {
    return {"unix", std::string(address)};
  }
  auto [host, port] = net::split_host_port(address);
  if (host.empty()) host = "127.0.0.1";
  return {"tcp", net::join_host_port(host, port)};
}

}  // namespace

void on_main_return() {
  if (g_count.load(std::memory_order_acquire) == 0) return;
  debug::stop_serving();
}

}  // namespace gort::debug_impl

namespace gort::debug {

std::string serve_addr(std::string_view address) {
  using namespace debug_impl;
  if (!sched::runtime()) throw std::logic_error("gort::debug::serve: call it while gort::run is active");
  auto [network, where] = listen_target(address);
  auto srv = std::make_shared<Server>();
  srv->ln = net::listen(network, where);  // throws std::system_error
  srv->addr = srv->ln.addr();
  srv->wg.add(1);
  try {
    gort::go(gort::Spawn{"gort debug server"}, [srv] {
      srv->accept_loop();
      std::error_code ignored;
      srv->ln.close(ignored);  // after an accept error; stop_serving() may have closed it already
      srv->wg.done();
    });
  } catch (...) {
    srv->wg.done();
    throw;
  }
  {
    std::lock_guard l(g_mu);
    g_servers.push_back(srv);
    g_count.store(int(g_servers.size()), std::memory_order_release);
  }
  return srv->addr;
}

void serve(std::string_view address) { serve_addr(address); }

void stop_serving() {
  using namespace debug_impl;
  std::vector<std::shared_ptr<Server>> servers;
  {
    std::lock_guard l(g_mu);
    servers.swap(g_servers);
    g_count.store(0, std::memory_order_release);
  }
  for (auto& s : servers) s->close();
  for (auto& s : servers) s->wg.wait();
}

}  // namespace gort::debug
