/* Context switch, AArch64 AAPCS64, ELF (GNU as).
 *
 * Saved frame (struct gort::arch::Context, offsets checked in context.hpp):
 *   0 sp   8 x29(fp)   16 x30(lr = resume pc)   24 x19   32 x20   40..96 x21-x28
 *   104..160 d8-d15   168 fpcr
 * Only callee-saved state is kept: the switch is an ordinary call.
 */
    .text
    .globl  gort_ctx_switch
    .type   gort_ctx_switch, %function
    .p2align 4
gort_ctx_switch:            /* x0 = save, x1 = load, x2 = pass (returned in x0) */
    .cfi_startproc
    mov     x9, sp
    stp     x9,  x29, [x0, #0]
    stp     x30, x19, [x0, #16]
    stp     x20, x21, [x0, #32]
    stp     x22, x23, [x0, #48]
    stp     x24, x25, [x0, #64]
    stp     x26, x27, [x0, #80]
    str     x28,      [x0, #96]
    stp     d8,  d9,  [x0, #104]
    stp     d10, d11, [x0, #120]
    stp     d12, d13, [x0, #136]
    stp     d14, d15, [x0, #152]
    mrs     x10, fpcr
    str     x10,      [x0, #168]

    ldp     x9,  x29, [x1, #0]
    mov     sp, x9
    ldp     x30, x19, [x1, #16]
    ldp     x20, x21, [x1, #32]
    ldp     x22, x23, [x1, #48]
    ldp     x24, x25, [x1, #64]
    ldp     x26, x27, [x1, #80]
    ldr     x28,      [x1, #96]
    ldp     d8,  d9,  [x1, #104]
    ldp     d10, d11, [x1, #120]
    ldp     d12, d13, [x1, #136]
    ldp     d14, d15, [x1, #152]
    /* Write fpcr only when it differs from what we saved (x10): the write can serialize. */
    ldr     x11,      [x1, #168]
    cmp     x10, x11
    b.eq    1f
    msr     fpcr, x11
1:  mov     x0, x2
    ret
    .cfi_endproc
    .size   gort_ctx_switch, .-gort_ctx_switch

/* First code a new goroutine runs: entry(arg) with x20 = entry, x19 = arg. */
    .globl  gort_ctx_trampoline
    .type   gort_ctx_trampoline, %function
    .p2align 4
gort_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    blr     x20
    brk     #0              /* entry never returns */
    .cfi_endproc
    .size   gort_ctx_trampoline, .-gort_ctx_trampoline

/* gort_call_on_stack(top, fn, arg): calls fn(arg) with sp at `top` (16-byte aligned) and
 * returns on the caller's stack. x29 links fn's frames back to the caller's. */
    .globl  gort_call_on_stack
    .type   gort_call_on_stack, %function
    .p2align 4
gort_call_on_stack:         /* x0 = top, x1 = fn, x2 = arg */
    .cfi_startproc
    stp     x29, x30, [sp, #-16]!
    .cfi_def_cfa_offset 16
    .cfi_offset x29, -16
    .cfi_offset x30, -8
    mov     x29, sp
    .cfi_def_cfa_register x29
    mov     sp, x0
    mov     x0, x2
    blr     x1
    mov     sp, x29
    .cfi_def_cfa_register sp
    ldp     x29, x30, [sp], #16
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size   gort_call_on_stack, .-gort_call_on_stack

    .section .note.GNU-stack,"",%progbits
