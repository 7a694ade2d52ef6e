// debug/dump — goroutine dumps shared by the panic report, fatal errors and the debug API.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <unordered_map>
#include <vector>

#include "sched/sched.hpp"

namespace gort::debug_impl {

// Symbolizes one return address ("func(args)\n\t/path/file +0xoff").
std::string describe_pc(void* pc, bool is_return_address);

// Frames that belong to the scheduler's machinery (switching, the goroutine entry) and are
// left out of dumps, as Go leaves out runtime.goexit.
bool is_scheduler_frame(const std::string& described);

// Frames of a parked goroutine, from its saved frame pointer (bounded by its stack), or
// with the CFI tables where that walk cannot be exact, into out[0..max); returns how many.
int parked_frames(const sched::G* g, void** out, int max);
inline constexpr int kMaxDumpFrames = 64;

// Whether pc returns into gort_ctx_trampoline: the outermost frame of every goroutine, so
// a walk that ends there found them all.
bool returns_to_trampoline(void* pc);

// The header line without the trailing colon: "goroutine 7 [chan receive, 2 minutes]".
std::string goroutine_header(const sched::G* g, bool running_here);

// Stacks sampled from goroutines running on other threads (debug/sample.hpp).
using Samples = std::unordered_map<const sched::G*, std::vector<void*>>;

// One goroutine in the level-2 format: header, frames (parked, or sampled in `running`),
// "created by", blank line.
void write_goroutine(std::ostream& os, const sched::G* g, const Samples& running);

// Goroutines that exist now (not idle or dead), in id order. Takes allg_lock briefly.
std::vector<const sched::G*> live_goroutines(sched::Runtime* rt);

// Writes the dump of every goroutine except `skip` (level 2 format) to fd.
void dump_all_to_fd(int fd, const sched::G* skip);

}  // namespace gort::debug_impl
