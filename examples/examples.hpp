// The examples' entry points, so that the tour (tour.cpp) can run each one as a section.
//
// Each example file is a standalone program: built on its own it has a main() that calls
// its entry point inside gort::run. The tour compiles the same files with GORT_TOUR defined
// (which leaves those main()s out) and calls the entry points from its own main goroutine.
// Each entry point runs in a goroutine, prints what it shows, checks its own results, and
// returns 0 on success, non-zero on a wrong result.
#pragma once

namespace examples {

int worker_pool();         // worker_pool.cpp: jobs -> N workers -> results, closed by a WaitGroup
int pipeline();            // pipeline.cpp: generate -> square (fan-out) -> merge (fan-in), canceled by a Context
int prime_sieve();         // prime_sieve.cpp: Go's concurrent prime sieve, a goroutine per prime
int fail_fast_errgroup();  // fail_fast.cpp: the errgroup half (its main() then panics for real)
int supervisor();          // supervisor.cpp: the first error cancels every other worker
int echo_server();         // echo_server.cpp: a TCP echo server, a goroutine per connection (gort::net)
int http_hello();          // http_hello.cpp: HTTP/1.1 hello world: keep-alive, pipelining, 400s (libhttp-parser)
int fetch_all();           // fetch_all.cpp: fetch URLs concurrently, results over a channel, a Context's timeout

}  // namespace examples
