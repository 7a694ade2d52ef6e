// sched/sanitizer — fiber annotations for AddressSanitizer and ThreadSanitizer.
//
// ASan must be told before every stack switch where the new stack is, and after it, which
// fake stack (detect_stack_use_after_return) belongs to the resumed goroutine. TSan gets
// one fiber per goroutine, switched *without* implicit synchronization, so that two
// goroutines racing on one thread are still reported; the scheduler adds the edges Go's
// memory model has (go statement → goroutine start, ready → resume) explicitly.
// In other builds everything here compiles to nothing.
#pragma once
#include <cstddef>

// The build defines GORT_ASAN / GORT_TSAN for the whole library (CMake's GORT_SANITIZE):
// files compiled without instrumentation must still annotate.
#if !defined(GORT_ASAN)
#if defined(__SANITIZE_ADDRESS__)
#define GORT_ASAN 1
#else
#define GORT_ASAN 0
#endif
#endif
#if !defined(GORT_TSAN)
#if defined(__SANITIZE_THREAD__)
#define GORT_TSAN 1
#else
#define GORT_TSAN 0
#endif
#endif

extern "C" {
#if GORT_ASAN
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, std::size_t* size_old);
#endif
#if GORT_TSAN
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
#endif
}

namespace gort::sched::san {

#if GORT_TSAN
inline constexpr bool tsan = true;
inline void* current_fiber() { return __tsan_get_current_fiber(); }
inline void* create_fiber() { return __tsan_create_fiber(0); }
inline void destroy_fiber(void* f) { __tsan_destroy_fiber(f); }
inline void switch_fiber(void* f) { __tsan_switch_to_fiber(f, 1 /* __tsan_switch_to_fiber_no_sync */); }
inline void release(void* a) { __tsan_release(a); }
inline void acquire(void* a) { __tsan_acquire(a); }
#else
inline constexpr bool tsan = false;
inline void* current_fiber() { return nullptr; }
inline void* create_fiber() { return nullptr; }
inline void destroy_fiber(void*) {}
inline void switch_fiber(void*) {}
inline void release(void*) {}
inline void acquire(void*) {}
#endif

// While alive, the current fiber's memory accesses are not checked. Wraps the runtime's own
// bookkeeping (free lists, stack caches, run queues, dumps), which different fibers of one
// thread touch with no happens-before edge TSan could see — as Go's race detector does not
// instrument its runtime either. Synchronization annotations still count inside it.
struct IgnoreAccesses {
#if GORT_TSAN
  IgnoreAccesses() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~IgnoreAccesses() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
#endif
  IgnoreAccesses(const IgnoreAccesses&) = delete;
  IgnoreAccesses& operator=(const IgnoreAccesses&) = delete;
#if !GORT_TSAN
  IgnoreAccesses() {}  // user-provided: a guard object, not an "unused variable"
#endif
};

#if GORT_ASAN
inline constexpr bool asan = true;
inline void start_switch(void** fake_save, const void* bottom, std::size_t size) {
  __sanitizer_start_switch_fiber(fake_save, bottom, size);
}
inline void finish_switch(void* fake, const void** old_bottom, std::size_t* old_size) {
  __sanitizer_finish_switch_fiber(fake, old_bottom, old_size);
}
// A goroutine that exits never returns from its frames, so their redzones stay poisoned
// on its stack: clear them before the stack runs another goroutine.
inline void unpoison(const void* p, std::size_t n) { __asan_unpoison_memory_region(p, n); }
#else
inline constexpr bool asan = false;
inline void start_switch(void**, const void*, std::size_t) {}
inline void finish_switch(void*, const void**, std::size_t*) {}
inline void unpoison(const void*, std::size_t) {}
#endif

}  // namespace gort::sched::san
