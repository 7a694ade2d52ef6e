// A user program built against the installed package: spawns, joins, checks the result.
#include <gort/gort.hpp>

#include <atomic>
#include <cstdio>

int main() {
  return gort::run([] {
    std::atomic<int> sum{0};
    gort::WaitGroup wg;
    for (int i = 1; i <= 100; ++i) wg.go([&sum, i] { sum += i; });
    wg.wait();
    std::printf("consumer: sum=%d\n", sum.load());
    return sum.load() == 5050 ? 0 : 1;
  });
}
