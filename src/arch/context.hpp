// arch — the machine context of a goroutine and the switch between two of them.
//
// Contract (every ABI file implements it):
//   gort_ctx_switch(save, load, pass): stores the callee-saved registers, the stack pointer and
//   the resume address of the caller into *save, then loads *load and jumps to its resume
//   address. It returns (into the code that called it) only when some later switch loads
//   *save again, and then returns that later switch's `pass` (the scheduler passes the M
//   doing the switch, which is the M the resumed goroutine now runs on). Caller-saved
//   registers need no saving: the call is an ordinary C call.
//   A fresh context (made by make_context) starts in gort_ctx_trampoline, which calls
//   entry(arg) on the new stack; entry must never return.
//   Resuming returns (x86-64: pushes the resume address and `ret`s; arm64: `ret` to lr)
//   rather than jumping, so the CPU's return-stack predictor stays in step: goroutines
//   mostly switch from one call site, so the resumed one returns where the suspended one's
//   calls were predicted to (yield ping-pong: 26.9 -> 18.9 ns a switch). The floating-point
//   control registers are written only when the two contexts' values differ.
//
// Invariants: a Context is only written by the switch that saves it and only read by the
// switch that loads it; the runtime guarantees one of them happens at a time (a G is never
// on two Ms). The offsets below are shared with the assembly and checked by static_assert.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gort::arch {

#if defined(__x86_64__)
struct Context {
  std::uint64_t sp;      // 0   stack pointer after the switch returns
  std::uint64_t fp;      // 8   rbp (frame pointer: goroutine dumps walk from here)
  std::uint64_t pc;      // 16  resume address
  std::uint64_t rbx;     // 24
  std::uint64_t r12;     // 32  (trampoline: arg)
  std::uint64_t r13;     // 40  (trampoline: entry)
  std::uint64_t r14;     // 48
  std::uint64_t r15;     // 56
  std::uint32_t mxcsr;   // 64  SSE control/status (callee-saved per the SysV ABI)
  std::uint16_t fpucw;   // 68  x87 control word (callee-saved per the SysV ABI)
  std::uint16_t pad_;
};
static_assert(offsetof(Context, sp) == 0);
static_assert(offsetof(Context, fp) == 8);
static_assert(offsetof(Context, pc) == 16);
static_assert(offsetof(Context, r12) == 32);
static_assert(offsetof(Context, r13) == 40);
static_assert(offsetof(Context, mxcsr) == 64);
static_assert(offsetof(Context, fpucw) == 68);
#elif defined(__aarch64__)
struct Context {
  std::uint64_t sp;      // 0
  std::uint64_t fp;      // 8   x29
  std::uint64_t pc;      // 16  x30 (lr) at the switch: the resume address
  std::uint64_t x19;     // 24  (trampoline: arg)
  std::uint64_t x20;     // 32  (trampoline: entry)
  std::uint64_t x21_x28[8];  // 40
  std::uint64_t d8_d15[8];   // 104 low halves of v8-v15 (callee-saved per AAPCS64)
  std::uint64_t fpcr;    // 168
};
static_assert(offsetof(Context, sp) == 0);
static_assert(offsetof(Context, fp) == 8);
static_assert(offsetof(Context, pc) == 16);
static_assert(offsetof(Context, x19) == 24);
static_assert(offsetof(Context, x20) == 32);
static_assert(offsetof(Context, x21_x28) == 40);
static_assert(offsetof(Context, d8_d15) == 104);
static_assert(offsetof(Context, fpcr) == 168);
#else
#error "gort: no context switch for this architecture (supported: x86-64 SysV, arm64 AAPCS)"
#endif

using EntryFn = void (*)(void* arg);

// Prepares `ctx` so that loading it runs entry(arg) on the stack whose highest address is
// `stack_hi` (exclusive). The caller's control/status registers are copied in.
void make_context(Context& ctx, void* stack_hi, EntryFn entry, void* arg) noexcept;

}  // namespace gort::arch

extern "C" {
// Returns, when *save is loaded again, the `pass` of the switch that loaded it.
void* gort_ctx_switch(gort::arch::Context* save, const gort::arch::Context* load, void* pass);
void gort_ctx_trampoline();
// Calls fn(arg) on the stack whose top (16-byte aligned) is `top`, then returns here.
void gort_call_on_stack(void* top, void (*fn)(void*) noexcept, void* arg) noexcept;
}
