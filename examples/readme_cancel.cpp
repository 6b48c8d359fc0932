// The README's example, compiled and run by the tests so that it stays true.
#include <knhk/concurrency.hpp>
namespace kc = knhk::concurrency;

kc::Task<const char*> wait_for_stop(kc::CancelToken token) {
  co_await token.cancelled();  // suspends; resumed when cancelled
  co_return "stopped";
}

int main() {
  kc::CancelToken downloads;
  {
    const kc::CancelScope request;              // cancels its token when it closes
    downloads = request.token().child_token();  // cancelled with its parent
  }
  return kc::sync_wait(wait_for_stop(downloads)) != nullptr ? 0 : 1;
}
