// A coroutine type for tests that drive coroutines by hand: it starts suspended, and the test
// resumes it through `handle` (it is not a Task, so nothing resumes it behind the test's back).
#pragma once

#include <coroutine>
#include <exception>
#include <utility>

namespace knhk::concurrency::testing {

struct ManualCoroutine {
  struct promise_type {
    ManualCoroutine get_return_object() {
      return ManualCoroutine{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };

  explicit ManualCoroutine(std::coroutine_handle<promise_type> h) : handle(h) {}
  ManualCoroutine(ManualCoroutine&& other) noexcept : handle(std::exchange(other.handle, {})) {}
  ManualCoroutine(const ManualCoroutine&) = delete;
  ManualCoroutine& operator=(const ManualCoroutine&) = delete;
  ManualCoroutine& operator=(ManualCoroutine&&) = delete;
  ~ManualCoroutine() {
    if (handle) handle.destroy();
  }

  std::coroutine_handle<promise_type> handle;
};

}  // namespace knhk::concurrency::testing
