/* Dispatch: one assembly file per ABI; unknown targets stop the build. */
#if defined(__x86_64__) && defined(__ELF__)
#include "switch_x86_64_sysv_elf.S"
#elif defined(__aarch64__) && defined(__ELF__)
#include "switch_arm64_aapcs_elf.S"
#else
#error "gort: no context switch for this target (supported: x86-64 SysV ELF, arm64 AAPCS ELF)"
#endif
