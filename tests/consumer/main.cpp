// Uses the installed headers and library: a token tree, a callback, a Task, and an executor
// running a callable and a coroutine task.
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
  ex.shutdown();
  if (!child.is_cancelled() || callbacks != 1 || value != 42 || doubled != 42 || awaited != 42) {
    std::fprintf(stderr, "consumer: unexpected result (%d, %d, %d, %d, %d)\n", child.is_cancelled() ? 1 : 0, callbacks,
                 value, doubled, awaited);
    return 1;
  }
  std::puts("consumer: knhk::concurrency found, linked and working");
  return 0;
}
