// debug/symbolize — program counters to function names and source lines.
//
// With libdw (elfutils, when found at build time) names come from the symbol tables,
// static and anonymous-namespace functions included, and file:line from DWARF line
// tables. Without it, dladdr names exported symbols only. Thread-safe (one lock); not
// async-signal-safe (it allocates).
#pragma once
#include <string>

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

}  // namespace gort::debug_impl
