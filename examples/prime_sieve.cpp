// Go's classic concurrent prime sieve (from the Go tour and the spec's examples): a
// generator sends 2, 3, 4, ...; each prime found starts a filter goroutine that drops its
// multiples, chained in front of the next:
//
//   func Generate(ch chan<- int)                    { for i := 2; ; i++ { ch <- i } }
//   func Filter(in <-chan int, out chan<- int, p int) { for { i := <-in; if i%p != 0 { out <- i } } }
//
// Go's version leaves its goroutines blocked when main returns; here a Context cancels the
// chain so every goroutine returns. Prints the first 100 primes and checks them against a
// plain sieve of Eratosthenes.
#include <gort/gort.hpp>

#include <cstdio>
#include <vector>

#include "examples.hpp"

namespace {

// Sends v on out unless ctx is canceled first; false if it was.
bool send(const gort::Context& ctx, const gort::send_chan<int>& out, int v) {
  return gort::select(gort::send_case(out, v), gort::recv_case(ctx.done())) == 0;
}

// Sends 2, 3, 4, ... to ch until canceled.
void generate(gort::Context ctx, gort::send_chan<int> ch) {
  for (int i = 2; send(ctx, ch, i); ++i) {}
  ch.close();
}

// Copies the values from in to out, removing those divisible by prime.
void filter(gort::Context ctx, gort::recv_chan<int> in, gort::send_chan<int> out, int prime) {
  for (int i : in) {
    if (i % prime != 0 && !send(ctx, out, i)) break;
  }
  out.close();  // the next filter's range loop ends
}

std::vector<int> eratosthenes(int count) {
  for (int limit = 64;; limit *= 2) {
    std::vector<bool> composite(limit, false);
    std::vector<int> primes;
    for (int n = 2; n < limit && int(primes.size()) < count; ++n) {
      if (composite[n]) continue;
      primes.push_back(n);
      for (long m = long(n) * n; m < limit; m += n) composite[m] = true;
    }
    if (int(primes.size()) == count) return primes;
  }
}

}  // namespace

int examples::prime_sieve() {
  constexpr int kPrimes = 100;
  auto [ctx, cancel] = gort::with_cancel(gort::background());
  gort::WaitGroup wg;

  gort::chan<int> ch = gort::make_chan<int>();
  // (ctx = ctx: lambdas may name structured bindings only from Clang 16 on.)
  wg.go([ctx = ctx, ch] { generate(ctx, ch); });  // go Generate(ch)
  std::vector<int> primes;
  for (int i = 0; i < kPrimes; ++i) {
    const int prime = *ch.recv();
    primes.push_back(prime);
    auto ch1 = gort::make_chan<int>();
    wg.go([ctx = ctx, ch, ch1, prime] { filter(ctx, ch, ch1, prime); });  // go Filter(ch, ch1, prime)
    ch = ch1;
  }
  cancel();  // unwinds the chain: the generator stops, each filter's input closes in turn
  wg.wait();

  for (int i = 0; i < kPrimes; ++i) std::printf("%4d%s", primes[i], i % 20 == 19 ? "\n" : "");
  const bool ok = primes == eratosthenes(kPrimes);
  std::printf("%d primes from a chain of %d goroutines (a generator and a filter per prime): %s\n", kPrimes,
              kPrimes + 1, ok ? "the same as the sieve of Eratosthenes" : "WRONG, not what Eratosthenes finds");
  return ok ? 0 : 1;
}

#ifndef GORT_TOUR
int main() {
  return gort::run([] { return examples::prime_sieve(); });
}
#endif
