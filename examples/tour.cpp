#include <gort/gort.hpp>
#include <atomic>
#include <cstdio>
int main() {
  return gort::run([] {
    std::printf("hello from goroutine %lld on %d procs\n", (long long)gort::goroutine_id(), gort::maxprocs());
    std::atomic<int> n{0};
    for (int i = 0; i < 100000; ++i) gort::go([&n] { n.fetch_add(1); });
    while (n.load() < 100000) gort::yield();
    std::printf("ran %d goroutines; goroutines now %lld\n", n.load(), (long long)gort::num_goroutine());
  });
}
