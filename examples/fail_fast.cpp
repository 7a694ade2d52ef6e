// "The first error stops the program." In Go, a goroutine that hits a condition it cannot
// handle panics, and a panic nobody recovers ends the whole program: Go prints the panic and
// the goroutine's stack and exits with status 2. In gort a panic is an exception that
// escapes its goroutine, with the same report and the same exit status.
//
// When failing is expected and should be handled, use the errgroup form instead: gort::Group
// runs the goroutines, wait() returns the first error one of them returned — or rethrows the
// first exception one of them threw — and the program carries on.
//
// This program shows the errgroup form (and checks it: exit 1 if it misbehaves), then has a
// goroutine fail for real: it ends with `panic: ...` on stderr and exit status 2, by design.
// The tour runs it as a child process to show that.
#include <gort/gort.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "examples.hpp"

namespace {

// A record checker that reports what is wrong with a record as an error code.
std::error_code check_record(const std::string& record) {
  if (record.empty()) return std::make_error_code(std::errc::invalid_argument);
  return {};
}

// A record loader for which a broken record breaks an invariant: it throws.
[[gnu::noinline]] void load_record(int id) {
  if (id == 3) throw std::runtime_error("record " + std::to_string(id) + ": checksum mismatch, refusing to continue");
}

}  // namespace

int examples::fail_fast_errgroup() {
  // The first error returned by any goroutine is what wait() returns.
  const std::vector<std::string> records = {"alpha", "beta", "", "delta"};
  gort::Group checks;
  for (const auto& r : records) checks.go([&r] { return check_record(r); });
  const std::error_code err = checks.wait();
  std::printf("errgroup: 4 checks ran, wait() returned the first error: %s\n", err.message().c_str());

  // An exception thrown by one of them is the failure: wait() rethrows it.
  gort::Group loads;
  for (int id = 1; id <= 4; ++id) loads.go([id] { load_record(id); });
  std::string rethrown;
  try {
    loads.wait();
  } catch (const std::runtime_error& e) {
    rethrown = e.what();
  }
  std::printf("errgroup: 4 loads ran, wait() rethrew the first exception: %s\n", rethrown.c_str());

  const bool ok = err == std::errc::invalid_argument && rethrown.starts_with("record 3:") &&
                  checks.context().err() == gort::errc::canceled;
  if (!ok) std::printf("fail_fast: WRONG RESULT from gort::Group\n");
  return ok ? 0 : 1;
}

#ifndef GORT_TOUR
int main() {
  return gort::run([] {
    if (int rc = examples::fail_fast_errgroup(); rc != 0) return rc;

    std::printf("now the same loads without a Group to catch the failure: the program panics\n");
    std::fflush(stdout);  // a panic ends the process at once; stdio buffers are not flushed
    gort::WaitGroup wg;
    for (int id = 1; id <= 4; ++id) wg.go([id] { load_record(id); });  // record 3 throws
    wg.wait();
    std::fprintf(stderr, "fail_fast: the panic did not end the program\n");
    return 1;
  });
}
#endif
