// arch — portable half of the context switch: building a fresh context.
#include "arch/context.hpp"


namespace gort::arch {

void make_context(Context& ctx, void* stack_hi, EntryFn entry, void* arg) noexcept {
  auto top = reinterpret_cast<std::uintptr_t>(stack_hi) & ~std::uintptr_t{15};
#if defined(__x86_64__)
  // The trampoline is entered by a jump and then calls entry, so rsp must be 16-aligned
  // at that call (the SysV ABI wants rsp ≡ 8 mod 16 inside the callee). Two zero words
  // above it end frame-pointer walks; the trampoline's CFI ends unwinding.
  top -= 16;
  *reinterpret_cast<std::uint64_t*>(top) = 0;
  *reinterpret_cast<std::uint64_t*>(top + 8) = 0;
  ctx.sp = top;
  ctx.fp = 0;
  ctx.pc = reinterpret_cast<std::uint64_t>(&gort_ctx_trampoline);
  ctx.r12 = reinterpret_cast<std::uint64_t>(arg);
  ctx.r13 = reinterpret_cast<std::uint64_t>(entry);
  // A new goroutine starts with the ABI's default floating-point environment (as in Go):
  // all exceptions masked, round to nearest; x87 at double-extended precision.
  ctx.mxcsr = 0x1F80;
  ctx.fpucw = 0x037F;
#elif defined(__aarch64__)
  top -= 16;
  *reinterpret_cast<std::uint64_t*>(top) = 0;
  *reinterpret_cast<std::uint64_t*>(top + 8) = 0;
  ctx.sp = top;
  ctx.fp = 0;
  ctx.pc = reinterpret_cast<std::uint64_t>(&gort_ctx_trampoline);
  ctx.x19 = reinterpret_cast<std::uint64_t>(arg);
  ctx.x20 = reinterpret_cast<std::uint64_t>(entry);
  ctx.fpcr = 0;  // the AAPCS64 default: round to nearest, no traps
#endif
}

}  // namespace gort::arch
