// A TCP echo server, a goroutine per connection — the first program of every Go networking
// tutorial, and the shape of every Go server:
//
//   ln, _ := net.Listen("tcp", "127.0.0.1:0")
//   for {
//       conn, err := ln.Accept()
//       if err != nil { return }          // the listener was closed
//       go func() { defer conn.Close(); io.Copy(conn, conn) }()
//   }
//
// Each goroutine reads and writes as if it had a thread of its own; while it waits for
// bytes it is parked in the netpoller ("IO wait"), and its thread runs other goroutines.
//
// The demo starts the server on an ephemeral loopback port, runs kClients client goroutines
// that each send kMessages messages and check every echo, then shuts the server down by
// closing the listener (Accept wakes with an error) and waits for every goroutine.
// Checks that every message came back intact and that no goroutine is left.
//
// Standalone: `echo_server` runs the demo; `echo_server --serve ADDR` serves ADDR until
// killed (try `nc 127.0.0.1 7007`).
#include <gort/gort.hpp>
#include <gort/net.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "examples.hpp"

namespace {

// Go: io.Copy(conn, conn). Returns when the client closes (EOF) or the connection fails.
void echo(gort::net::Conn conn) {
  char buf[4096];
  for (;;) {
    std::error_code ec;
    const std::size_t n = conn.read(std::as_writable_bytes(std::span(buf)), ec);
    if (ec || n == 0) return;  // an error, or EOF: conn closes as it goes out of scope
    conn.write(std::as_bytes(std::span(buf, n)), ec);
    if (ec) return;
  }
}

// The accept loop: a goroutine per connection, counted in `wg`. Returns once `ln` is closed.
void serve(gort::net::Listener& ln, gort::WaitGroup& wg, std::atomic<long>& accepted) {
  for (;;) {
    std::error_code ec;
    gort::net::Conn conn = ln.accept(ec);
    if (ec) return;  // closed: accept woke with an error
    accepted.fetch_add(1);
    wg.go([c = std::move(conn)]() mutable { echo(std::move(c)); });
  }
}

// Reads exactly buf.size() bytes (a TCP read returns whatever has arrived).
bool read_full(gort::net::Conn& conn, std::span<char> buf) {
  std::size_t got = 0;
  while (got < buf.size()) {
    std::error_code ec;
    const std::size_t n = conn.read(std::as_writable_bytes(buf.subspan(got)), ec);
    if (ec || n == 0) return false;
    got += n;
  }
  return true;
}

// One client: kMessages messages, each echoed back and compared.
bool client(const std::string& addr, int id, int messages) {
  std::error_code ec;
  gort::net::Conn conn = gort::net::dial("tcp", addr, ec);
  if (ec) {
    std::printf("client %d: dial %s: %s\n", id, addr.c_str(), ec.message().c_str());
    return false;
  }
  for (int i = 0; i < messages; ++i) {
    const std::string msg = "client " + std::to_string(id) + " message " + std::to_string(i) + "\n";
    conn.write(std::as_bytes(std::span(msg.data(), msg.size())), ec);
    std::string back(msg.size(), '\0');
    if (ec || !read_full(conn, back) || back != msg) return false;
  }
  return true;  // conn closes here: the server's read returns 0 (EOF) and its goroutine ends
}

}  // namespace

int examples::echo_server() {
  constexpr int kClients = 100, kMessages = 100;
  const auto t0 = std::chrono::steady_clock::now();

  gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");  // ":0": the kernel picks a port
  const std::string addr = ln.addr();

  gort::WaitGroup server_wg;  // the accept loop and every connection goroutine
  std::atomic<long> accepted{0};
  server_wg.go([&] { serve(ln, server_wg, accepted); });

  std::atomic<int> ok_clients{0};
  gort::WaitGroup clients;
  for (int id = 0; id < kClients; ++id)
    clients.go([&, id] {
      if (client(addr, id, kMessages)) ok_clients.fetch_add(1);
    });
  clients.wait();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  ln.close();        // the accept loop wakes with an error and returns
  server_wg.wait();  // ... and every connection goroutine has seen its client's EOF
  std::printf("echo server on %s: %d/%d clients x %d messages echoed intact in %.0f ms (%ld connections "
              "accepted); listener closed, %lld goroutine(s) running now\n",
              addr.c_str(), ok_clients.load(), kClients, kMessages, ms, accepted.load(),
              static_cast<long long>(gort::num_goroutine()));
  if (ok_clients.load() != kClients || accepted.load() != kClients) {
    std::printf("echo_server: WRONG RESULT\n");
    return 1;
  }
  return 0;
}

#ifndef GORT_TOUR
int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "--serve") {
    const std::string addr = argv[2];
    return gort::run([addr] {
      std::error_code ec;
      gort::net::Listener ln = gort::net::listen("tcp", addr, ec);
      if (ec) {
        std::fprintf(stderr, "echo_server: listen %s: %s\n", addr.c_str(), ec.message().c_str());
        return 1;
      }
      std::printf("echo server listening on %s\n", ln.addr().c_str());
      std::fflush(stdout);
      gort::WaitGroup wg;
      std::atomic<long> accepted{0};
      serve(ln, wg, accepted);
      return 0;
    });
  }
  if (argc != 1) {
    std::fprintf(stderr, "usage: %s            run the demo\n       %s --serve ADDR  serve ADDR until killed\n",
                 argv[0], argv[0]);
    return 2;
  }
  return gort::run([] { return examples::echo_server(); });
}
#endif
