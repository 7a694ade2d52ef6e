// debug/symbolize — program counters to function names and source lines.
//
// With libdw (elfutils, when found at build time) names come from the symbol tables,
// static and anonymous-namespace functions included, and file:line from DWARF line
// tables. Without it, dladdr names exported symbols only. Thread-safe (one lock); not
// async-signal-safe (it allocates).
//
// It also unwinds parked goroutines whose frames a frame-pointer walk cannot follow (code
// built without frame pointers): libdw reads the CFI tables (.eh_frame, which every C++
// object has for exceptions) from the goroutine's saved registers.
#pragma once
#include <cstdint>
#include <string>

#include "arch/context.hpp"

namespace gort::debug_impl {

struct Symbol {
  std::string function;  // demangled; empty when unknown
  std::string file;      // source file; empty without debug info
  int line = 0;
  std::string module;    // the executable or shared object
  std::size_t offset = 0;  // pc minus the function's start
};

// `is_return_address`: pc is a return address, so look up pc-1 (the call instruction).
Symbol symbolize(void* pc, bool is_return_address);

// Whether a frame-pointer walk through pcs[0..n) (pcs[0] exact, the rest return addresses)
// found every frame: each of those functions finds its frame from the frame pointer, per
// its CFI, so the saved frame pointer and return address are where the chain says. True
// where that cannot be told (no libdw, no CFI for a pc, or not x86-64). Answers are cached.
bool frame_pointer_walk_exact(void* const* pcs, int n);

// The frames of a goroutine switched out at `ctx`, unwound with the CFI tables: out[0] is
// ctx.pc, the rest return addresses. Reads memory only inside [lo, hi), its stack. Returns
// how many frames (0 where CFI unwinding is not available).
int unwind_with_cfi(const arch::Context& ctx, std::uintptr_t lo, std::uintptr_t hi, void** out, int max);

}  // namespace gort::debug_impl
