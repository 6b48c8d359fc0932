// Uses the installed headers and library: a token tree, a callback and a Task.
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
  if (!child.is_cancelled() || callbacks != 1 || value != 42) {
    std::fprintf(stderr, "consumer: unexpected result (%d, %d, %d)\n", child.is_cancelled() ? 1 : 0, callbacks, value);
    return 1;
  }
  std::puts("consumer: knhk::concurrency found, linked and working");
  return 0;
}
