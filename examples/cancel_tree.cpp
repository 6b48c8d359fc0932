// A request handler's cancellation tree: a request scope owns a token, each sub-operation gets a
// child, and a coroutine waits for cancellation. Closing the scope stops everything beneath it.
#include <knhk/concurrency.hpp>

#include <cstdio>
#include <thread>

namespace kc = knhk::concurrency;

kc::Task<const char*> wait_for_stop(kc::CancelToken token) {
  co_await token.cancelled();
  co_return "download stopped";
}

int main() {
  kc::CancelToken downloads;
  kc::CancelToken parse_token;
  kc::CancelRegistration on_stop;
  {
    const kc::CancelScope request;  // cancels its token when it closes
    downloads = request.token().child_token();
    parse_token = request.token().child_token();
    on_stop = parse_token.on_cancel([] { std::puts("parser: cancelled, releasing buffers"); });

    std::thread closer([] { std::puts("request: client went away, closing scope"); });
    closer.join();
  }  // scope closes here: downloads and parser are cancelled, the callback runs

  const char* outcome = kc::sync_wait(wait_for_stop(downloads));
  std::printf("downloads: %s; parser cancelled: %s\n", outcome, parse_token.is_cancelled() ? "yes" : "no");
  return downloads.is_cancelled() && parse_token.is_cancelled() ? 0 : 1;
}
