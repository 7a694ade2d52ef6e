// Fetch every URL concurrently, collect every result, give up at a deadline — the Go
// teaching example (The Go Programming Language, fetchall) with a context bounding it:
//
//   ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
//   defer cancel()
//   ch := make(chan result, len(urls))
//   for _, url := range urls {
//       go func(url string) { ch <- fetch(ctx, url) }(url)
//   }
//   for range urls { fmt.Println(<-ch) }
//
// fetch() is a minimal HTTP/1.1 GET client: gort::net::dial(ctx, ...), the context's deadline
// becomes the connection's deadline, one request with `Connection: close`, the response
// read to EOF and parsed by libhttp-parser. A fetch still running at the deadline fails
// with "timed out" instead of holding the others up: the whole run takes max(fastest
// answers, the timeout), not their sum.
//
// The demo runs against the http_hello server (http_server.hpp) in the same process, on an
// ephemeral loopback port; its /slow route answers only after 5 s, past the 300 ms deadline.
// Checks that the fast paths answered, /slow timed out, and the run took about the timeout.
//
// Standalone: `fetch_all` runs the demo; `fetch_all [--timeout MS] ADDR PATH...` fetches
// http://ADDR/PATH for each PATH (an HTTP server such as `http_hello ADDR`).
#include <gort/gort.hpp>
#include <gort/net.hpp>

#include <http_parser.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "examples.hpp"
#include "http_server.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Result {
  std::string path;
  int status = 0;          // HTTP status; 0 if none arrived
  std::size_t bytes = 0;   // body bytes
  double ms = 0;           // how long the fetch took
  std::error_code err;     // why it failed, if it did
};

// What the parser callbacks fill in.
struct Parsed {
  std::size_t body = 0;
  bool complete = false;
};

// GET http://addr/path, bounded by ctx.
Result fetch(const gort::Context& ctx, const std::string& addr, const std::string& path) {
  const auto t0 = Clock::now();
  Result r;
  r.path = path;
  auto finish = [&](std::error_code ec) {
    // The only connection deadline is the context's: report it as the context's error (its
    // own timer may fire a moment after the connection's).
    r.err = ec == std::errc::timed_out && ctx.deadline() ? make_error_code(gort::errc::deadline_exceeded) : ec;
    r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    return r;
  };

  std::error_code ec;
  gort::net::Conn conn = gort::net::dial(ctx, "tcp", addr, ec);  // gives up when ctx is done
  if (ec) return finish(ec);
  if (auto deadline = ctx.deadline()) conn.set_deadline(*deadline, ec);  // bounds every read and write
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + addr +
                          "\r\nUser-Agent: gort-fetch_all\r\nConnection: close\r\n\r\n";
  conn.write(std::as_bytes(std::span(req.data(), req.size())), ec);
  if (ec) return finish(ec);

  Parsed parsed;
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &parsed;
  http_parser_settings settings{};
  settings.on_body = [](http_parser* p, const char*, std::size_t n) {
    static_cast<Parsed*>(p->data)->body += n;
    return 0;
  };
  settings.on_message_complete = [](http_parser* p) {
    static_cast<Parsed*>(p->data)->complete = true;
    return 0;
  };
  char buf[4096];
  for (;;) {  // to EOF: we asked the server to close
    const std::size_t n = conn.read(std::as_writable_bytes(std::span(buf)), ec);
    if (ec) return finish(ec);
    http_parser_execute(&parser, &settings, buf, n);  // n == 0 tells the parser about EOF
    if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) return finish(std::make_error_code(std::errc::bad_message));
    if (n == 0) break;
  }
  if (!parsed.complete) return finish(std::make_error_code(std::errc::connection_aborted));
  r.status = int(parser.status_code);
  r.bytes = parsed.body;
  return finish({});
}

// Fetches every path concurrently within `timeout`; prints each result as it arrives.
std::vector<Result> fetch_concurrently(const std::string& addr, const std::vector<std::string>& paths,
                              std::chrono::milliseconds timeout) {
  auto [ctx, cancel] = gort::with_timeout(gort::background(), timeout);
  auto results = gort::make_chan<Result>(paths.size());  // buffered: no fetch ever waits to report
  for (const std::string& path : paths)
    gort::go([ctx = ctx, results, &addr, path] { results.send(fetch(ctx, addr, path)); });

  std::vector<Result> all;
  for (std::size_t i = 0; i < paths.size(); ++i) {  // for range urls { <-ch }
    Result r = *results.recv();
    if (r.err)
      std::printf("  %-12s %-28s after %6.1f ms\n", r.path.c_str(), r.err.message().c_str(), r.ms);
    else
      std::printf("  %-12s %3d, %3zu bytes %14s after %6.1f ms\n", r.path.c_str(), r.status, r.bytes, "", r.ms);
    all.push_back(std::move(r));
  }
  cancel();  // defer cancel(): releases the context's timer
  return all;
}

}  // namespace

int examples::fetch_all() {
  constexpr auto kTimeout = 300ms;
  http::Server server(gort::net::listen("tcp", "127.0.0.1:0"), http::Options{.slow_delay = 5s});
  const std::string addr = server.addr();
  gort::WaitGroup serving;
  serving.go([&] { server.serve(); });

  const std::vector<std::string> paths = {"/", "/?n=2", "/?n=3", "/missing", "/slow"};
  std::printf("fetching %zu URLs from http://%s concurrently, all within %lld ms:\n", paths.size(), addr.c_str(),
              static_cast<long long>(kTimeout.count()));
  const auto t0 = Clock::now();
  const std::vector<Result> results = fetch_concurrently(addr, paths, kTimeout);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

  int answered = 0, timed_out = 0;
  bool ok = results.size() == paths.size();
  for (const Result& r : results) {
    if (r.path == "/slow") {
      timed_out += r.err == gort::errc::deadline_exceeded;
    } else {
      answered += !r.err;
      ok = ok && !r.err && r.status == (r.path == "/missing" ? 404 : 200);
    }
  }
  ok = ok && timed_out == 1 && ms < 300 + 1000;
  std::printf("%d answered, %d timed out (%s); all collected in %.0f ms, not the 5 s /slow would take\n",
              answered, timed_out, gort::make_error_code(gort::errc::deadline_exceeded).message().c_str(), ms);

  server.close();  // also cuts the /slow handler short
  serving.wait();
  server.wait();
  if (!ok) std::printf("fetch_all: WRONG RESULT\n");
  return ok ? 0 : 1;
}

#ifndef GORT_TOUR
int main(int argc, char** argv) {
  if (argc == 1) return gort::run([] { return examples::fetch_all(); });
  std::chrono::milliseconds timeout = 1000ms;
  int i = 1;
  if (i + 1 < argc && std::string_view(argv[i]) == "--timeout") {
    timeout = std::chrono::milliseconds(std::atol(argv[i + 1]));
    i += 2;
  }
  if (argc - i < 2) {
    std::fprintf(stderr, "usage: %s                                    run the demo\n"
                         "       %s [--timeout MS] ADDR PATH...        fetch http://ADDR/PATH...\n",
                 argv[0], argv[0]);
    return 2;
  }
  const std::string addr = argv[i];
  const std::vector<std::string> paths(argv + i + 1, argv + argc);
  return gort::run([&] {
    const auto results = fetch_concurrently(addr, paths, timeout);
    for (const Result& r : results)
      if (r.err) return 1;
    return 0;
  });
}
#endif
