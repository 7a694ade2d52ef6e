// "hello, world" over HTTP/1.1: Go's
//
//   http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
//       io.WriteString(w, "hello, world\n")
//   })
//   http.ListenAndServe(addr, nil)
//
// with the server of http_server.hpp: a goroutine per connection, requests parsed by
// libhttp-parser, keep-alive, pipelining, `Connection: close`, 400 for bad requests.
//
// The demo starts the server on an ephemeral loopback port and talks to it over raw
// connections: three pipelined requests in one write come back in order, the last one's
// `Connection: close` closes the connection, a malformed request gets 400 and a close, and
// kClients keep-alive clients send kRequests each. Then Server::close() (Go's
// http.Server.Close) stops it and every goroutine returns. Checks all of that.
//
// Standalone: `http_hello` runs the demo; `http_hello ADDR [--maxprocs N]` serves ADDR until
// killed (the http_hello benchmark runs it that way; try `curl -v http://ADDR/`).
#include <gort/gort.hpp>
#include <gort/net.hpp>

#include <http_parser.h>

#include <atomic>
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

// Parses a stream of responses; collects their status codes.
struct ResponseReader {
  http_parser parser;
  http_parser_settings settings{};
  std::vector<int> statuses;

  ResponseReader() {
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = this;
    settings.on_message_complete = [](http_parser* p) {
      static_cast<ResponseReader*>(p->data)->statuses.push_back(int(p->status_code));
      return 0;
    };
  }
  // Feeds n bytes (0: EOF); false on a parse error.
  bool feed(const char* data, std::size_t n) {
    http_parser_execute(&parser, &settings, data, n);
    return HTTP_PARSER_ERRNO(&parser) == HPE_OK;
  }
};

bool send(gort::net::Conn& conn, std::string_view s) {
  std::error_code ec;
  conn.write(std::as_bytes(std::span(s.data(), s.size())), ec);
  return !ec;
}

// Sends `requests` in one write, then reads responses until the server closes (EOF).
// Returns their status codes; `closed` tells whether the server did close.
std::vector<int> exchange_until_close(const std::string& addr, std::string_view requests, bool& closed) {
  closed = false;
  std::error_code ec;
  gort::net::Conn conn = gort::net::dial("tcp", addr, ec);
  if (ec || !send(conn, requests)) return {};
  conn.set_read_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(5), ec);
  ResponseReader rr;
  char buf[4096];
  for (;;) {
    const std::size_t n = conn.read(std::as_writable_bytes(std::span(buf)), ec);
    if (ec) break;  // e.g. the deadline: the server did not close
    if (!rr.feed(buf, n)) break;
    if (n == 0) {
      closed = true;
      break;
    }
  }
  return rr.statuses;
}

// A keep-alive client: `n` requests on one connection, one at a time. Returns how many got 200.
int keep_alive_client(const std::string& addr, int n) {
  std::error_code ec;
  gort::net::Conn conn = gort::net::dial("tcp", addr, ec);
  if (ec) return 0;
  ResponseReader rr;
  char buf[4096];
  for (int i = 0; i < n; ++i) {
    if (!send(conn, "GET / HTTP/1.1\r\nHost: demo\r\n\r\n")) break;
    const std::size_t want = rr.statuses.size() + 1;
    while (rr.statuses.size() < want) {
      const std::size_t got = conn.read(std::as_writable_bytes(std::span(buf)), ec);
      if (ec || got == 0 || !rr.feed(buf, got)) return 0;
    }
  }
  int ok = 0;
  for (int s : rr.statuses) ok += s == 200;
  return ok;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s.empty() ? "none" : s;
}

}  // namespace

int examples::http_hello() {
  constexpr int kClients = 20, kRequests = 50;
  http::Server server(gort::net::listen("tcp", "127.0.0.1:0"));
  const std::string addr = server.addr();
  gort::WaitGroup serving;
  serving.go([&] { server.serve(); });

  // Pipelining: three requests in one write, answered in order; the last asks to close.
  bool closed = false;
  const std::vector<int> piped = exchange_until_close(addr,
                                                      "GET / HTTP/1.1\r\nHost: demo\r\n\r\n"
                                                      "GET /nope HTTP/1.1\r\nHost: demo\r\n\r\n"
                                                      "GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n",
                                                      closed);
  bool ok = piped == std::vector<int>{200, 404, 200} && closed;
  std::printf("http://%s/: 3 pipelined requests in one write -> %s, in order; `Connection: close` %s\n",
              addr.c_str(), join(piped).c_str(), closed ? "closed the connection" : "was IGNORED");

  const std::vector<int> bad = exchange_until_close(addr, "HELLO? /\r\n\r\n", closed);
  ok = ok && bad == std::vector<int>{400} && closed;
  std::printf("a malformed request -> %s, connection %s\n", join(bad).c_str(), closed ? "closed" : "left OPEN");

  // Keep-alive clients, concurrently.
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<int> ok_responses{0};
  gort::WaitGroup clients;
  for (int i = 0; i < kClients; ++i) clients.go([&] { ok_responses.fetch_add(keep_alive_client(addr, kRequests)); });
  clients.wait();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ok = ok && ok_responses.load() == kClients * kRequests;
  std::printf("%d keep-alive clients x %d requests: %d x 200 OK in %.0f ms\n", kClients, kRequests,
              ok_responses.load(), ms);

  server.close();  // the accept loop returns; open connections are closed
  serving.wait();
  server.wait();
  std::printf("server closed after %llu requests\n", static_cast<unsigned long long>(server.requests()));
  if (!ok) std::printf("http_hello: WRONG RESULT\n");
  return ok ? 0 : 1;
}

#ifndef GORT_TOUR
int main(int argc, char** argv) {
  if (argc == 1) return gort::run([] { return examples::http_hello(); });
  std::string addr;
  gort::Config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--maxprocs" && i + 1 < argc) {
      cfg.maxprocs = std::atoi(argv[++i]);
    } else if (addr.empty() && !a.starts_with("-")) {
      addr = a;
    } else {
      std::fprintf(stderr, "usage: %s                        run the demo\n"
                           "       %s ADDR [--maxprocs N]   serve http://ADDR/ until killed\n",
                   argv[0], argv[0]);
      return 2;
    }
  }
  return gort::run(
      [addr] {
        std::error_code ec;
        gort::net::Listener ln = gort::net::listen("tcp", addr, ec);
        if (ec) {
          std::fprintf(stderr, "http_hello: listen %s: %s\n", addr.c_str(), ec.message().c_str());
          return 1;
        }
        examples::http::Server server(std::move(ln));
        std::printf("http_hello: serving http://%s/ on %d processors\n", server.addr().c_str(), gort::maxprocs());
        std::fflush(stdout);
        server.serve();
        return 0;
      },
      cfg);
}
#endif
