// tcp_echo — many TCP connections, each doing request/response round trips through the
// netpoller.
//
// Usage: gort_tcp_echo <maxprocs> [conns=1000] [roundtrips=1000] [size=64]
// One process holds both ends over loopback: an echo server (a goroutine per accepted
// connection: read, write back what was read) and `conns` client goroutines. Each client
// dials, waits at a gate until every client is connected, then `roundtrips` times writes
// `size` bytes and reads until all `size` came back, checking the bytes. Every wait is a
// park in IO wait on a non-blocking socket, so the figure is goroutine switches + netpoll +
// two syscalls per direction. Metric: round trips per second over the timed phase (all
// clients' round trips / time from opening the gate to the last client done), higher is
// better. Fair with bench/go/tcp_echo: the same structure with net.Listen/net.Dial,
// io.ReadFull and sync.WaitGroup.
#include <gort/gort.hpp>
#include <gort/net.hpp>

#include <atomic>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "common.hpp"

namespace {

void echo(gort::net::Conn conn) {
  std::byte buf[4096];
  for (;;) {
    std::error_code ec;
    const std::size_t n = conn.read(buf, ec);
    if (ec || n == 0) return;
    conn.write(std::span<const std::byte>(buf, n), ec);
    if (ec) return;
  }
}

bool read_full(gort::net::Conn& conn, std::span<std::byte> buf) {
  for (std::size_t got = 0; got < buf.size();) {
    std::error_code ec;
    const std::size_t n = conn.read(buf.subspan(got), ec);
    if (ec || n == 0) return false;
    got += n;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int procs = int(bench::arg(argc, argv, 1, 1));
  const long conns = bench::arg(argc, argv, 2, 1000);
  const long roundtrips = bench::arg(argc, argv, 3, 1000);
  const long size = bench::arg(argc, argv, 4, 64);
  bench::check(bench::raise_fd_limit() > 2 * conns + 16, "open-file limit (ulimit -n) too low for conns");
  return gort::run(
      [=] {
        gort::net::Listener ln = gort::net::listen("tcp", "127.0.0.1:0");
        const std::string addr = ln.addr();
        gort::WaitGroup server;
        server.go([&] {
          for (;;) {
            std::error_code ec;
            gort::net::Conn c = ln.accept(ec);
            if (ec) return;  // the listener was closed
            server.go([c = std::move(c)]() mutable { echo(std::move(c)); });
          }
        });

        gort::WaitGroup connected, done;
        auto gate = gort::make_chan<std::monostate>();
        std::atomic<long> ok{0};
        connected.add(conns);
        done.add(conns);
        for (long id = 0; id < conns; ++id) {
          gort::go([&, id] {
            std::error_code ec;
            gort::net::Conn conn = gort::net::dial("tcp", addr, ec);
            connected.done();
            bench::check(!ec, "dial");
            gate.recv();  // until every client is connected
            std::vector<std::byte> out(static_cast<std::size_t>(size)), in(static_cast<std::size_t>(size));
            long good = 0;
            for (long i = 0; i < roundtrips; ++i) {
              std::memset(out.data(), int((id + i) & 0xff), out.size());
              conn.write(out, ec);
              if (ec || !read_full(conn, in)) break;
              good += in == out;
            }
            ok.fetch_add(good);
            conn.close();
            done.done();
          });
        }
        connected.wait();
        const auto t0 = bench::now();
        gate.close();
        done.wait();
        const double ms = bench::ms_since(t0);
        ln.close();
        server.wait();  // every server goroutine saw its client's EOF
        bench::check(ok.load() == conns * roundtrips, "every round trip echoed the bytes sent");
        bench::result(double(conns * roundtrips) / (ms / 1000.0), "rt/s", "roundtrips_per_s");
        bench::result(ms, "ms", "total_ms");
      },
      gort::Config{.maxprocs = procs});
}
