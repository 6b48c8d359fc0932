// WithContextAwaiter: awaits a Task with another task context current while it runs (the
// context of run_until_cancelled's work, of a nursery_scope body), and puts the awaiter's own
// back when it resumes. The work starts by symmetric transfer, as with `co_await task`.
#pragma once

#include <coroutine>
#include <utility>

#include "knhk/concurrency/address_stable.hpp"
#include "knhk/concurrency/detail/resume.hpp"
#include "knhk/concurrency/detail/task_context.hpp"
#include "knhk/concurrency/task.hpp"

namespace knhk::concurrency::detail {

template <class T>
class [[nodiscard]] WithContextAwaiter {
 public:
  WithContextAwaiter(TaskContext* context, Task<T>& work) noexcept
      : context_(context), saved_(tls_task_context), inner_(std::move(work).operator co_await()) {}
  WithContextAwaiter(const WithContextAwaiter&) = delete;
  WithContextAwaiter& operator=(const WithContextAwaiter&) = delete;

  [[nodiscard]] bool await_ready() const noexcept { return inner_.await_ready(); }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    tls_task_context = context_;  // the work runs (and records at its suspensions) this context
    return inner_.await_suspend(awaiting);
  }
  T await_resume() {
    tls_task_context = saved_;  // on whichever thread the work finished
    return inner_.await_resume();
  }

 private:
  TaskContext* context_;
  TaskContext* saved_;  // the awaiting task's context, put back by await_resume
  typename Task<T>::Awaiter inner_;
};

static_assert(address_stable<WithContextAwaiter<int>>);

}  // namespace knhk::concurrency::detail
