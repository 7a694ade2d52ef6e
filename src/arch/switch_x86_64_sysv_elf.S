/* Context switch, x86-64 System V ABI, ELF (GNU as).
 *
 * Saved frame (struct gort::arch::Context, offsets checked in context.hpp):
 *   0 rsp   8 rbp   16 rip   24 rbx   32 r12   40 r13   48 r14   56 r15   64 mxcsr   68 x87 cw
 * Only callee-saved state is kept: the switch is an ordinary call, so the caller has
 * already spilled everything else.
 */
    .text
    .globl  gort_ctx_switch
    .type   gort_ctx_switch, @function
    .p2align 4
gort_ctx_switch:            /* rdi = save, rsi = load, rdx = pass (returned in rax) */
    .cfi_startproc
    stmxcsr 64(%rdi)        /* first: the slowest stores, compared against below */
    fnstcw  68(%rdi)
    movq    (%rsp), %rax    /* our return address becomes the resume address */
    leaq    8(%rsp), %rcx   /* rsp as it will be after that return */
    movq    %rcx,  0(%rdi)
    movq    %rbp,  8(%rdi)
    movq    %rax, 16(%rdi)
    movq    %rbx, 24(%rdi)
    movq    %r12, 32(%rdi)
    movq    %r13, 40(%rdi)
    movq    %r14, 48(%rdi)
    movq    %r15, 56(%rdi)

    movq     0(%rsi), %rsp
    movq     8(%rsi), %rbp
    movq    24(%rsi), %rbx
    movq    32(%rsi), %r12
    movq    40(%rsi), %r13
    movq    48(%rsi), %r14
    movq    56(%rsi), %r15
    /* The floating-point controls change rarely: load them only when they differ from
     * what we just saved. Each is compared at its own width, so that the loads of the
     * saved values forward from the two stores above (one load spanning both would wait
     * for them to retire). */
    movl    64(%rsi), %eax
    cmpl    64(%rdi), %eax
    jne     1f
    movzwl  68(%rsi), %eax
    cmpw    68(%rdi), %ax
    jne     1f
    /* Resume through `ret`, not an indirect jump: the return-stack predictor then pops the
     * entry our caller's call pushed. Goroutines usually switch from the same call site, so
     * that entry, and the ones under it, match where the resumed goroutine returns; a jump
     * would leave it there and make each of the resumed goroutine's returns mispredict.
     * A new goroutine's first entry, the trampoline, is no return: jump there. */
2:  movq    %rdx, %rax
    leaq    .Ltrampoline(%rip), %rcx
    cmpq    %rcx, 16(%rsi)
    je      3f
    pushq   16(%rsi)
    ret
3:  jmpq    *%rcx
1:  ldmxcsr 64(%rsi)
    fldcw   68(%rsi)
    jmp     2b
    .cfi_endproc
    .size   gort_ctx_switch, .-gort_ctx_switch

/* First code a new goroutine runs: entry(arg) with r13 = entry, r12 = arg. The return
 * address slot above is zero and rip is marked undefined, so unwinding stops here. */
    .globl  gort_ctx_trampoline
    .type   gort_ctx_trampoline, @function
    .p2align 4
gort_ctx_trampoline:
.Ltrampoline:               /* local: no PLT or GOT in a shared library */
    .cfi_startproc
    .cfi_undefined rip
    xorl    %ebp, %ebp
    movq    %r12, %rdi
    callq   *%r13
    ud2                     /* entry never returns */
    .cfi_endproc
    .size   gort_ctx_trampoline, .-gort_ctx_trampoline

/* gort_call_on_stack(top, fn, arg): calls fn(arg) with the stack pointer at `top` (16-byte
 * aligned) and returns on the caller's stack. rbp links fn's frames back to the caller's,
 * so frame-pointer walks and the unwinder cross the switch. */
    .globl  gort_call_on_stack
    .type   gort_call_on_stack, @function
    .p2align 4
gort_call_on_stack:         /* rdi = top, rsi = fn, rdx = arg */
    .cfi_startproc
    pushq   %rbp
    .cfi_def_cfa_offset 16
    .cfi_offset rbp, -16
    movq    %rsp, %rbp
    .cfi_def_cfa_register rbp
    movq    %rdi, %rsp
    movq    %rdx, %rdi
    callq   *%rsi
    movq    %rbp, %rsp
    .cfi_def_cfa_register rsp
    popq    %rbp
    .cfi_def_cfa_offset 8
    ret
    .cfi_endproc
    .size   gort_call_on_stack, .-gort_call_on_stack

    .section .note.GNU-stack,"",@progbits
