// The README's third example, compiled and run by the tests: an executor spawns 1,000
// computations, then shuts down, which waits for all of them.
#include <knhk/concurrency.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>

namespace kc = knhk::concurrency;

int main() {
  std::atomic<std::uint64_t> sum{0};
  kc::WorkStealingExecutor ex(4);

  for (std::uint64_t i = 1; i <= 1000; ++i) {
    ex.spawn([&sum, i] { sum += i * i; });  // from outside: through the global queue
  }
  ex.shutdown();  // graceful: every task spawned so far has run when it returns

  const kc::ExecutorMetrics m = ex.metrics();
  std::printf("sum of squares 1..1000 = %llu; spawned %llu, completed %llu, stolen %llu\n",
              static_cast<unsigned long long>(sum.load()), static_cast<unsigned long long>(m.tasks_spawned),
              static_cast<unsigned long long>(m.tasks_completed), static_cast<unsigned long long>(m.tasks_stolen));
  return sum == 333'833'500 && m.tasks_completed == 1000 ? 0 : 1;
}
