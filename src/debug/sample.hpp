// debug/sample — the stacks of goroutines running on other threads, for dumps.
//
// A parked goroutine's frames are walked from its saved registers; a running one has none
// saved, so its M is asked with a signal (SIGURG, as Go's preemption uses) to walk its own
// frame-pointer chain from the interrupted registers, and (with libdw) to copy those
// registers and its stack for the CFI unwinder, which the sampler runs afterwards: it sees
// frames the chain skips. Nothing stops: each M is interrupted for the length of one
// bounded walk and copy, and the sampler waits at most kSampleWait in all.
//
// Invariants:
// - One sampler at a time (a mutex): it owns every M's slot (M::sample) while it samples.
// - A slot goes idle -> requested (sampler) -> busy (handler) -> done (handler) -> idle
//   (sampler). Only the side that wins a CAS moves it on, so a signal that arrives after
//   the sampler gave up (requested -> idle) finds nothing to do and writes nothing.
// - The handler touches only its own M's slot (and the copy buffer lent in it) and the
//   running goroutine's stack, every read checked against that stack's bounds; it calls
//   nothing but this_m(). The sampler frees lent buffers only once no handler can write them.
// - Ms are found on Runtime::allm_head, a list that only grows while the runtime lives, so
//   sampling takes no runtime lock and works from fatal paths that hold one.
// - A SIGURG that is not a sample request goes to the handler installed before run().
#pragma once
#include <chrono>
#include <unordered_map>
#include <vector>

#include "sched/sched.hpp"

namespace gort::debug_impl {

inline constexpr std::chrono::milliseconds kSampleWait{20};

// Frames (the interrupted pc first, then return addresses) of the goroutines that run on
// Ms other than the caller's, keyed by goroutine. A goroutine missing from the result
// could not be sampled (it stopped running, or its M did not answer in time).
std::unordered_map<const sched::G*, std::vector<void*>> sample_running(sched::Runtime* rt);

// Installed and removed with the runtime's other signal handlers (sched/signals.cpp).
void install_sample_handler();
void restore_sample_handler();

}  // namespace gort::debug_impl
