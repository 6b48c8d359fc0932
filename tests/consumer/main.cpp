// Uses the installed headers and library: a token tree, a callback, a Task, an executor running a
// callable and a coroutine task, and a nursery that sleeps in one child.
//
// check_install.cmake also builds this file with -fsanitize=address against the uninstrumented
// package. The loop below makes the pool's inline code (compiled here) and the library's code
// free and reuse the same blocks many times, so that both must agree on poisoning them.
#include <knhk/concurrency.hpp>

#include <cstdio>

namespace kc = knhk::concurrency;

static kc::Task<int> answer() { co_return 42; }

static kc::Task<int> add_one(int x) { co_return x + 1; }

// Two awaited child frames per call: each is allocated, freed and allocated again.
static kc::Task<int> plus_two(int x) {
  const int once = co_await add_one(x);
  co_return co_await add_one(once);
}

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
  constexpr int kRounds = 1000;
  long long pooled = 0;
  for (int i = 0; i < kRounds; ++i) {
    pooled += ex.spawn_with_handle(plus_two(i)).get();
    pooled += ex.block_on(plus_two(i));
    pooled += kc::sync_wait(plus_two(i));
  }
  ex.shutdown();
  // Each round adds 3 * (i + 2).
  constexpr long long kExpectedPooled = 3LL * (kRounds * (kRounds - 1LL) / 2 + 2LL * kRounds);
  if (!child.is_cancelled() || callbacks != 1 || value != 42 || doubled != 42 || awaited != 42 || children != 1 ||
      pooled != kExpectedPooled) {
    std::fprintf(stderr, "consumer: unexpected result (%d, %d, %d, %d, %d, %d, %lld)\n", child.is_cancelled() ? 1 : 0,
                 callbacks, value, doubled, awaited, children, pooled);
    return 1;
  }
  std::puts("consumer: knhk::concurrency found, linked and working");
  return 0;
}
