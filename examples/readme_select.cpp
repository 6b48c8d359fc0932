// The README's second example, compiled and run by the tests: a parent token cancels a child task
// that runs some work under run_until_cancelled (tokio's select! on a token and a future).
#include <knhk/concurrency.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

namespace kc = knhk::concurrency;
using namespace std::chrono_literals;

kc::Task<int> do_work() {
  co_await kc::sleep_for(1h);  // cancellation-aware: ends with Cancelled when its token is
  co_return 42;
}

int main() {
  kc::WorkStealingExecutor ex(2);
  const kc::CancelToken token;
  const kc::CancelToken child = token.child_token();

  auto task = ex.spawn_with_handle([child]() -> kc::Task<bool> {
    const std::optional<int> result = co_await kc::run_until_cancelled(child, do_work());
    std::puts(result ? "completed" : "cancelled");
    co_return !result.has_value();
  });
  std::this_thread::sleep_for(10ms);
  token.cancel();  // cancels every child: the work stops at its sleep, promptly

  return task.get() ? 0 : 1;
}
