// cpu_relax(): the spin-wait hint of the processor (PAUSE on x86, YIELD on Arm).
#pragma once

namespace knhk::concurrency::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace knhk::concurrency::detail
