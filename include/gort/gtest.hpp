// gort/gtest.hpp — GoogleTest integration: tests whose body is a goroutine.
//
//   GORT_TEST(Suite, Name) { ... }      // body runs as the main goroutine of a fresh run()
//
// The test fails if the body leaves goroutines behind (gort::testing::verify_none). To run
// one body over several processor counts, call gort::testing::run_test(body, maxprocs)
// from a parameterized test.
#pragma once
#include <gtest/gtest.h>

#include <gort/runtime.hpp>
#include <gort/testing.hpp>

namespace gort::testing {

template <class F>
void run_test(F&& body, int maxprocs = 0) {
  gort::Config cfg;
  cfg.maxprocs = maxprocs;
  gort::run(
      [&] {
        body();
        try {
          verify_none();
        } catch (const leak_error& e) {
          ADD_FAILURE() << e.what();
        }
      },
      cfg);
}

}  // namespace gort::testing

#define GORT_TEST(Suite, Name)                                                   \
  static void gort_test_body_##Suite##_##Name();                                 \
  TEST(Suite, Name) { ::gort::testing::run_test(&gort_test_body_##Suite##_##Name); } \
  static void gort_test_body_##Suite##_##Name()
