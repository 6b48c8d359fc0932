// Uses the installed headers and library: a token tree, a callback, a Task, an executor running a
// callable and a coroutine task, and a nursery that sleeps in one child.
#include <knhk/concurrency.hpp>

#include <cstdio>

namespace kc = knhk::concurrency;

static kc::Task<int> answer() { co_return 42; }

int main() {
  kc::CancelToken root;
  const kc::CancelToken child = root.child_token();
  int callbacks = 0;
  const kc::CancelRegistration registration = child.on_cancel([&callbacks] { ++callbacks; });
  root.cancel();
  const int value = kc::sync_wait(answer());
  kc::WorkStealingExecutor ex(2);
  const int doubled = ex.spawn_with_handle([] { return 21 * 2; }).get();
  const int awaited = ex.block_on(answer());
  int children = 0;
  ex.block_on(kc::nursery_scope(ex, [&children](kc::Nursery& nursery) -> kc::Task<void> {
    nursery.spawn([&children] { ++children; });
    co_await kc::sleep_for(std::chrono::milliseconds(1));
    co_return;
  }));
  ex.shutdown();
  if (!child.is_cancelled() || callbacks != 1 || value != 42 || doubled != 42 || awaited != 42 || children != 1) {
    std::fprintf(stderr, "consumer: unexpected result (%d, %d, %d, %d, %d, %d)\n", child.is_cancelled() ? 1 : 0,
                 callbacks, value, doubled, awaited, children);
    return 1;
  }
  std::puts("consumer: knhk::concurrency found, linked and working");
  return 0;
}
