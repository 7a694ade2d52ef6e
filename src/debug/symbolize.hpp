// debug/symbolize — program counters to function names and source lines.
//
// With libdw (elfutils, when found at build time) names come from the symbol tables,
// static and anonymous-namespace functions included, and file:line from DWARF line
// tables. Without it, dladdr names exported symbols only. Thread-safe (one lock); not
// async-signal-safe (it allocates).
//
// It also unwinds goroutines whose frames a frame-pointer walk cannot follow (code built
// without frame pointers, or interrupted in a prologue or a frameless leaf): libdw reads
// the CFI tables (.eh_frame, which every C++ object has for exceptions) from a parked
// goroutine's saved registers, or from the registers and stack copy a running one's
// signal handler took (debug/sample.hpp).
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
// found every frame: each of those functions keeps the chain, per its CFI (x86-64: finds
// its frame from the frame pointer; arm64: stored a frame record), so the saved frame
// pointer and return address are where the chain says. True where that cannot be told
// (no libdw, no CFI for a pc). Answers are cached.
bool frame_pointer_walk_exact(void* const* pcs, int n);

// A frame's registers in DWARF numbering, for the CFI unwinder: x86-64's rax..r15 (0-15),
// arm64's x0..x30 and sp (0-31). Bit i of `known` says r[i] holds a value.
struct DwarfRegisters {
  static constexpr int kCount = 32;
  std::uint64_t r[kCount]{};
  std::uint32_t known = 0;
  std::uint64_t pc = 0;  // where the frame stopped: exact, not a return address
};

// The registers a goroutine switched out at `ctx` left: the callee-saved ones, sp and pc.
DwarfRegisters registers_of(const arch::Context& ctx);

// The stack memory an unwind may read: [lo, hi), in place, or from `copy`, which holds
// [lo, hi) as it was when the registers were taken (a goroutine that was running then).
struct StackMemory {
  std::uintptr_t lo = 0, hi = 0;
  const unsigned char* copy = nullptr;

  // Whether [addr, addr + size) lies inside [lo, hi). Written so that no sum wraps: a
  // stray frame pointer of -16 read from a stack that changed under the walk must fail,
  // where `addr + size <= hi` would let it through to a non-canonical load.
  constexpr bool holds(std::uintptr_t addr, std::size_t size) const noexcept {
    return addr >= lo && addr <= hi && hi - addr >= size;
  }
};

// The frames from `regs`, unwound with the CFI tables: out[0] is regs.pc, the rest return
// addresses. Reads memory only from `stack`. Returns how many frames (0 where CFI
// unwinding is not available).
int unwind_with_cfi(const DwarfRegisters& regs, const StackMemory& stack, void** out, int max);

}  // namespace gort::debug_impl
