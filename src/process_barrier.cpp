#include "process_barrier.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <exception>

namespace knhk::concurrency::detail {
namespace {

long membarrier(int command) noexcept { return syscall(__NR_membarrier, command, 0U, 0); }

bool register_process_barrier() noexcept {
  const long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

}  // namespace

bool process_barrier_available() noexcept {
  static const bool available = register_process_barrier();
  return available;
}

void process_barrier_heavy() noexcept {
  if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
    // The kernel documents no failure once the process is registered. The other side has no
    // fence of its own, so going on would risk lost wake-ups.
    std::fputs("knhk: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration\n", stderr);
    std::terminate();
  }
}

}  // namespace knhk::concurrency::detail
