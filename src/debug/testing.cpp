// debug/testing — verify_none: goroutine leak checks for tests.
#include <gort/testing.hpp>

#include <sched.h>

#include <gort/debug.hpp>
#include <gort/runtime.hpp>
#include <sstream>

#include "debug/dump.hpp"
#include "debug/sample.hpp"
#include "sched/sanitizer.hpp"
#include "sched/sched.hpp"

namespace gort::testing {

using namespace gort::sched;

namespace {

bool ignored(const G* g, const VerifyOptions& o) {
  if (o.ignore.empty()) return false;
  std::string site = g->created_pc ? debug_impl::describe_pc(g->created_pc, true) : "";
  for (const std::string& s : o.ignore) {
    if (g->name.find(s) != std::string::npos || site.find(s) != std::string::npos) return true;
  }
  return false;
}

// Live goroutines other than the caller, minus ignored ones.
std::vector<const G*> others(Runtime* rt, const G* self, const VerifyOptions& o) {
  san::IgnoreAccesses ignore;  // reads other goroutines' descriptors while they run
  std::vector<const G*> out;
  RuntimeLockGuard l(rt->allg_lock);
  for (const G* g : rt->allgs) {
    GStatus s = g->status.load(std::memory_order_acquire);
    if (g != self && s != GStatus::idle && s != GStatus::dead && !ignored(g, o)) out.push_back(g);
  }
  return out;
}

}  // namespace

void verify_none(std::chrono::milliseconds grace) {
  VerifyOptions o;
  o.grace = grace;
  verify_none(o);
}

void verify_none(const VerifyOptions& o) {
  Runtime* rt = runtime();
  G* self = current_g();
  if (!rt || !self) throw std::logic_error("gort::testing::verify_none: call it from a goroutine inside gort::run");
  const std::int64_t deadline = monotonic_ns() + std::chrono::nanoseconds(o.grace).count();
  for (;;) {
    std::vector<const G*> left = others(rt, self, o);
    if (left.empty()) return;
    if (monotonic_ns() >= deadline) {
      std::ostringstream os;
      san::IgnoreAccesses ignore;
      os << "found unexpected goroutines:\n";
      const debug_impl::Samples running = debug_impl::sample_running(rt);
      for (const G* g : left) debug_impl::write_goroutine(os, g, running);
      throw leak_error(os.str());
    }
    // Let them finish: run others here, and give other threads a moment.
    gort::yield();
    sched_yield();
  }
}

}  // namespace gort::testing
