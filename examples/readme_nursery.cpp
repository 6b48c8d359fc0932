// The README's first example, compiled and run by the tests so that it stays true: a nursery with
// two tasks, and wait_all, which returns once both have finished.
#include <knhk/concurrency.hpp>

#include <atomic>
#include <cstdio>

namespace kc = knhk::concurrency;

int main() {
  kc::WorkStealingExecutor ex(2);
  std::atomic<int> finished{0};

  ex.block_on([&]() -> kc::Task<void> {
    kc::Nursery nursery(ex);  // no child outlives it
    nursery.spawn([&] {
      std::puts("task 1 ran");
      ++finished;
    });
    nursery.spawn([&]() -> kc::Task<void> {
      co_await kc::sleep_for(std::chrono::milliseconds(10));  // suspends; holds no thread
      std::puts("task 2 ran");
      ++finished;
    });
    co_await nursery.wait_all();  // throws NurseryError if a child failed
    std::printf("wait_all: %d of %zu tasks finished\n", finished.load(), nursery.task_count());
  }());
  return finished == 2 ? 0 : 1;
}
