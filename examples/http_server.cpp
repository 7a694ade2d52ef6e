// The examples' HTTP/1.1 server: see http_server.hpp.
#include "http_server.hpp"

#include <http_parser.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

namespace examples::http {
namespace {

using namespace std::chrono_literals;

// One parsed request: what the handler needs of it.
struct Request {
  std::string url;
  bool head = false;        // HEAD: headers only
  bool keep_alive = true;   // false: close the connection after answering
  bool http10 = false;      // answer an HTTP/1.0 keep-alive request with `Connection: keep-alive`
};

// The parser's callbacks collect complete requests here; the connection answers them
// after http_parser_execute returns, in order.
struct ParseState {
  std::string url;                // the request line's target, as the callbacks deliver it
  std::vector<Request> complete;  // requests parsed and not yet answered
};

int on_message_begin(http_parser* p) {
  static_cast<ParseState*>(p->data)->url.clear();
  return 0;
}

int on_url(http_parser* p, const char* at, std::size_t len) {
  static_cast<ParseState*>(p->data)->url.append(at, len);  // may come in pieces
  return 0;
}

int on_message_complete(http_parser* p) {
  auto* st = static_cast<ParseState*>(p->data);
  st->complete.push_back(Request{std::move(st->url), p->method == HTTP_HEAD, http_should_keep_alive(p) != 0,
                                 p->http_major == 1 && p->http_minor == 0});
  st->url.clear();
  return 0;
}

const http_parser_settings kSettings = [] {
  http_parser_settings s{};
  s.on_message_begin = on_message_begin;
  s.on_url = on_url;
  s.on_message_complete = on_message_complete;
  return s;
}();

// "Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n", as Go's net/http sends it; recomputed once a
// second per connection.
class DateHeader {
 public:
  const std::string& get() {
    const std::time_t now = std::time(nullptr);
    if (now != at_) {
      std::tm tm{};
      gmtime_r(&now, &tm);
      char buf[64];
      const std::size_t n = std::strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
      text_.assign(buf, n);
      at_ = now;
    }
    return text_;
  }

 private:
  std::time_t at_ = -1;
  std::string text_;
};

void append_response(std::string& out, int status, const char* reason, std::string_view body, bool with_body,
                     const char* connection, DateHeader& date) {
  char line[64];
  out.append(line, std::size_t(std::snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason)));
  if (connection != nullptr) out.append("Connection: ").append(connection).append("\r\n");
  out.append(date.get());
  out.append(line, std::size_t(std::snprintf(line, sizeof line, "Content-Length: %zu\r\n", body.size())));
  out.append("Content-Type: text/plain; charset=utf-8\r\n\r\n");
  if (with_body) out.append(body);
}

bool write_all(gort::net::Conn& conn, std::string_view s, std::error_code& ec) {
  conn.write(std::as_bytes(std::span(s.data(), s.size())), ec);
  return !ec;
}

// Ends a connection we chose to end while the client may still be sending (pipelined
// requests after `Connection: close`, the rest of a bad request): closing a socket with
// unread input makes the kernel send RST, which can destroy our last response before the
// client reads it. So: send FIN, drain what comes for a little while, then close (Go's
// closeWriteAndWait).
void finish(gort::net::Conn& conn) {
  std::error_code ec;
  conn.close_write(ec);
  conn.set_read_deadline(std::chrono::steady_clock::now() + 100ms, ec);
  char sink[4096];
  while (!ec && conn.read(std::as_writable_bytes(std::span(sink)), ec) != 0) {}
}

}  // namespace

Server::Server(gort::net::Listener ln, Options opts) : ln_(std::move(ln)), opts_(opts) {
  std::tie(ctx_, cancel_) = gort::with_cancel(gort::background());
}

std::string Server::addr() const { return ln_.addr(); }

void Server::serve() {
  for (;;) {
    std::error_code ec;
    gort::net::Conn conn = ln_.accept(ec);
    if (ec) {
      if (closed_.load()) return;  // close() closed the listener: accept woke with an error
      // Out of descriptors or memory, or a connection reset before we took it: back off and
      // go on, as Go's http.Server does with temporary errors.
      if (ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system ||
          ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory ||
          ec == std::errc::connection_aborted) {
        gort::sleep(5ms);
        continue;
      }
      std::fprintf(stderr, "http: accept: %s\n", ec.message().c_str());
      return;
    }
    conns_wg_.go([this, c = std::move(conn)]() mutable {
      {
        std::lock_guard lock(mu_);
        if (closed_.load()) return;  // close() ran meanwhile; c closes on destruction
        conns_.insert(&c);
      }
      handle(c);
      std::lock_guard lock(mu_);
      conns_.erase(&c);  // before c is destroyed: close() must not touch it after this
    });
  }
}

void Server::close() {
  if (closed_.exchange(true)) return;
  cancel_();  // ends /slow requests
  std::error_code ignored;
  ln_.close(ignored);
  std::lock_guard lock(mu_);
  for (gort::net::Conn* c : conns_) c->close(ignored);  // wakes its goroutine's read or write with an error
}

void Server::wait() { conns_wg_.wait(); }

// Reads, parses, and answers every complete request in what arrived, in order, with one write.
void Server::handle(gort::net::Conn& conn) {
  ParseState st;
  http_parser parser;
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &st;
  DateHeader date;
  std::string out;
  char buf[16 * 1024];
  for (;;) {
    std::error_code ec;
    const std::size_t n = conn.read(std::as_writable_bytes(std::span(buf)), ec);
    if (ec || n == 0) return;  // EOF, reset, or closed by Server::close
    http_parser_execute(&parser, &kSettings, buf, n);
    const bool bad = HTTP_PARSER_ERRNO(&parser) != HPE_OK || parser.upgrade;

    out.clear();
    bool last = false;  // this batch ends the connection
    for (const Request& req : st.complete) {
      const char* connection = !req.keep_alive ? "close" : req.http10 ? "keep-alive" : nullptr;
      const std::string_view path = std::string_view(req.url).substr(0, req.url.find('?'));
      if (path == "/") {
        append_response(out, 200, "OK", "hello, world\n", !req.head, connection, date);
      } else if (path == "/slow") {
        // Answer what came before it first, then take our time — unless the server closes.
        if (!out.empty() && !write_all(conn, out, ec)) return;
        out.clear();
        bool shut = false;
        gort::Timer slow(opts_.slow_delay);
        gort::select(gort::recv_case(slow.c), gort::recv_case(ctx_.done(), [&] { shut = true; }));
        slow.stop();
        if (shut) return;
        append_response(out, 200, "OK", "slow hello\n", !req.head, connection, date);
      } else {
        append_response(out, 404, "Not Found", "404 page not found\n", !req.head, connection, date);
      }
      requests_.fetch_add(1, std::memory_order_relaxed);
      if (!req.keep_alive) {
        last = true;  // anything pipelined after a `Connection: close` request is dropped
        break;
      }
    }
    st.complete.clear();
    if (bad && !last) {
      append_response(out, 400, "Bad Request", "400 Bad Request\n", true, "close", date);
      last = true;
    }
    if (!out.empty() && !write_all(conn, out, ec)) return;
    if (last) return finish(conn);  // conn closes when its goroutine drops it
  }
}

}  // namespace examples::http
