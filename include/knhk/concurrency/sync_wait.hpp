// sync_wait: runs a Task on the calling thread and blocks until it finishes.
//
// The task starts inline on the calling thread. If it suspends on something that another thread
// completes (a cancellation, later a join handle or a timer), it finishes on that thread and
// sync_wait's caller is woken. On an executor, prefer WorkStealingExecutor::block_on, which
// never blocks one of the executor's own workers.
//
// Thread safety: any thread may call it; the task belongs to that call.
// Blocking: yes, until the task ends.
// Happens-before: everything the task did happens before sync_wait returns.
#pragma once

#include <condition_variable>
#include <coroutine>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "knhk/concurrency/detail/executor_hooks.hpp"
#include "knhk/concurrency/detail/resume.hpp"
#include "knhk/concurrency/detail/task_result.hpp"
#include "knhk/concurrency/task.hpp"

namespace knhk::concurrency {
namespace detail {

// A one-shot event. The setter touches the event only while holding its mutex, so the waiter may
// destroy it as soon as wait() returns (POSIX allows destroying a mutex as soon as it is unlocked,
// and glibc's unlock does not touch it after letting a waiter in).
class OneShotEvent {
 public:
  void set() noexcept {
    std::lock_guard lock(mutex_);
    set_ = true;
    ready_.notify_one();
  }
  void wait() noexcept {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return set_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  bool set_ = false;
};
static_assert(address_stable<OneShotEvent>);

// The coroutine that awaits the user's task and signals the event from its final suspend point,
// once its own frame is suspended and may be destroyed by the waiting thread.
class SyncWaitDriver {
 public:
  struct promise_type {
    OneShotEvent* event = nullptr;

    SyncWaitDriver get_return_object() noexcept {
      return SyncWaitDriver{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    auto final_suspend() const noexcept {
      struct SignalOnSuspend {
        SignalOnSuspend() noexcept = default;
        SignalOnSuspend(const SignalOnSuspend&) = delete;
        SignalOnSuspend& operator=(const SignalOnSuspend&) = delete;
        [[nodiscard]] bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> self) const noexcept { self.promise().event->set(); }
        void await_resume() const noexcept {}
      };
      static_assert(address_stable<SignalOnSuspend>);
      return SignalOnSuspend{};
    }
    void return_void() const noexcept {}
    // The driver's body catches everything; nothing can reach here.
    [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
  };

  SyncWaitDriver(SyncWaitDriver&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  SyncWaitDriver(const SyncWaitDriver&) = delete;
  SyncWaitDriver& operator=(const SyncWaitDriver&) = delete;
  SyncWaitDriver& operator=(SyncWaitDriver&&) = delete;
  ~SyncWaitDriver() {
    if (handle_) handle_.destroy();
  }

  void run_to_completion() {
    OneShotEvent event;
    handle_.promise().event = &event;
    resume_inline(handle_);
    event.wait();
  }

 private:
  explicit SyncWaitDriver(std::coroutine_handle<promise_type> handle) noexcept : handle_(handle) {}
  std::coroutine_handle<promise_type> handle_;
};

template <class T>
SyncWaitDriver await_and_store(Task<T>& task, TaskResult<T>& out) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await task;
      out.set_value();
    } else {
      out.set_value(co_await task);
    }
  } catch (...) {
    out.set_exception(std::current_exception());
  }
}

}  // namespace detail

/// Runs `task` to completion, blocking the calling thread; returns its value or rethrows.
/// On the library's timer thread, and on a worker of an executor, it throws std::logic_error:
/// a task suspended there is resumed by a record queued on that very worker (or by a timer of
/// that very thread), which would wait behind the blocked thread forever. On a worker, use
/// `co_await task`, or WorkStealingExecutor::block_on (which helps instead of blocking).
template <class T>
T sync_wait(Task<T> task) {
  detail::refuse_blocking_on_timer_thread("sync_wait()");
  if (detail::current_executor_state() != nullptr) {
    throw std::logic_error(
        "knhk: sync_wait() on a worker of an executor would deadlock (the task resumes on the worker it "
        "blocks); co_await the task, or use WorkStealingExecutor::block_on");
  }
  detail::TaskResult<T> result;
  detail::await_and_store(task, result).run_to_completion();
  return result.take();
}

}  // namespace knhk::concurrency
