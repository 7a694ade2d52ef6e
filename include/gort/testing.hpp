// gort/testing.hpp — leak checks for tests (uber-go/goleak's VerifyNone).
#pragma once
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace gort::testing {

// Thrown by verify_none; what() lists the leaked goroutines in the dump format.
class leak_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct VerifyOptions {
  std::chrono::milliseconds grace = std::chrono::seconds(1);
  // Goroutines whose name (Spawn::name) or creation site's function contains one of these
  // strings are not counted as leaks (goleak's IgnoreTopFunction / IgnoreAnyFunction).
  std::vector<std::string> ignore;
};

// Call inside a goroutine (normally at the end of main): waits up to `grace` for every other
// goroutine to end, then throws leak_error naming those still alive.
void verify_none(std::chrono::milliseconds grace = std::chrono::seconds(1));
void verify_none(const VerifyOptions& options);

}  // namespace gort::testing
