// A minimal HTTP/1.1 server over gort::net, shared by the http_hello and fetch_all examples
// (and the http_hello benchmark, which runs the http_hello program).
//
// Go's net/http in miniature: Serve accepts in a loop and runs a goroutine per connection;
// each connection goroutine reads, parses with Debian's libhttp-parser (<http_parser.h>),
// and answers every complete request in the buffer, in order, with one write — so it is
// safe under pipelining. Keep-alive is HTTP/1.1's default; `Connection: close` (or an
// HTTP/1.0 request without keep-alive) ends the connection after its response; a request
// the parser rejects gets `400 Bad Request` and the connection is closed.
//
// Routes:
//   /        200 "hello, world\n" (the same bytes and headers as Go's hello-world server)
//   /slow    sleeps Options::slow_delay, then 200 "slow hello\n" (shows timeouts in fetch_all)
//   other    404 "404 page not found\n"
#pragma once
#include <gort/gort.hpp>
#include <gort/net.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_set>

namespace examples::http {

struct Options {
  std::chrono::milliseconds slow_delay{1000};  // how long /slow takes
};

class Server {
 public:
  // Serves on `ln`, which the server now owns.
  explicit Server(gort::net::Listener ln, Options opts = {});
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound address, e.g. "127.0.0.1:43117".
  std::string addr() const;

  // Accepts connections, a goroutine for each, until close(); then returns (its connection
  // goroutines may still be finishing: wait() for them). Call from one goroutine.
  void serve();

  // Go's http.Server.Close: closes the listener (serve() returns), closes every open
  // connection and cuts short every /slow request. Callable from any goroutine, repeatedly.
  void close();

  // Waits until every connection goroutine has returned.
  void wait();

  // Requests answered so far (all connections).
  std::uint64_t requests() const noexcept { return requests_.load(std::memory_order_relaxed); }

 private:
  void handle(gort::net::Conn& conn);

  gort::net::Listener ln_;
  Options opts_;
  gort::Context ctx_;           // canceled by close(): ends /slow requests
  gort::CancelFunc cancel_;
  std::atomic<bool> closed_{false};
  std::atomic<std::uint64_t> requests_{0};
  gort::WaitGroup conns_wg_;    // one count per connection goroutine
  gort::Mutex mu_;
  std::unordered_set<gort::net::Conn*> conns_;  // guarded by mu_: the open connections
};

}  // namespace examples::http
