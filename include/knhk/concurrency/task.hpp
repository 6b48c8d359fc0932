// Task<T>: the library's lazy coroutine type.
//
// A Task is a coroutine that does nothing until it is awaited. `co_await task` starts it on the
// current thread by symmetric transfer; when it finishes, its final suspend point transfers back
// to the awaiter, so a chain of awaits never grows the stack (a loop awaiting a million tasks runs
// in constant stack). The awaiter receives the task's value, or its exception rethrown.
//
// Thread safety: a Task is a single-owner value, like std::unique_ptr. Awaiting it, moving it and
//   destroying it must not race with each other.
// Blocking: never. Awaiting suspends the awaiting coroutine; nothing blocks a thread.
// Lifetime: the Task owns the coroutine frame. Destroying a Task destroys the frame whether or not
//   it ran; destroying a Task while it is running (i.e. from inside itself) is undefined.
// Toolchains: g++ 12 and clang++ 14 (libstdc++). Correctness relies on the compiler not touching a
//   frame after an await_suspend that let another thread resume it, which both honour. g++ 12
//   aligns coroutine frames to 16 bytes only (GCC bug 104177), so a Task must not return or hold
//   locals of an over-aligned type (alignas above 16); spawn_with_handle of a callable returning
//   one is fine (its join state takes the type's alignment).
#pragma once

#include <coroutine>
#include <exception>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "knhk/concurrency/address_stable.hpp"
#include "knhk/concurrency/detail/block_pool.hpp"
#include "knhk/concurrency/detail/resume.hpp"
#include "knhk/concurrency/detail/task_result.hpp"

namespace knhk::concurrency {

template <class T = void>
class Task;

namespace detail {

// What every Task promise shares: lazy start, a final suspend that resumes whoever awaited, and a
// frame from the thread's block pool.
class TaskPromiseBase : public PooledAllocation {
 public:
  struct FinalAwaiter {
    FinalAwaiter() noexcept = default;
    FinalAwaiter(const FinalAwaiter&) = delete;
    FinalAwaiter& operator=(const FinalAwaiter&) = delete;
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      // The one resumption path: transfer to the continuation, or return to whoever resumed us.
      std::coroutine_handle<> next = self.promise().continuation_;
      return next ? transfer_to(self, next) : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }

  void set_continuation(std::coroutine_handle<> continuation) noexcept { continuation_ = continuation; }

 private:
  std::coroutine_handle<> continuation_;
};

template <class T>
class TaskPromise final : public TaskPromiseBase {
 public:
  Task<T> get_return_object() noexcept;

  // A reference task returns lvalues only: binding a temporary would dangle once the frame ends.
  template <class U = T>
  requires std::is_convertible_v<U&&, T> &&
      (!std::is_reference_v<T> || std::is_lvalue_reference_v<U&&>)void return_value(U&& value) noexcept(
          noexcept(std::declval<TaskResult<T>&>().set_value(std::forward<U>(value)))) {
    result_.set_value(std::forward<U>(value));
  }
  void unhandled_exception() noexcept { result_.set_exception(std::current_exception()); }

  TaskResult<T>& result() noexcept { return result_; }

 private:
  TaskResult<T> result_;
};

template <>
class TaskPromise<void> final : public TaskPromiseBase {
 public:
  Task<void> get_return_object() noexcept;

  void return_void() noexcept { result_.set_value(); }
  void unhandled_exception() noexcept { result_.set_exception(std::current_exception()); }

  TaskResult<void>& result() noexcept { return result_; }

 private:
  TaskResult<void> result_;
};

}  // namespace detail

/// A lazy, move-only coroutine returning T (T may be void or a reference).
template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using value_type = T;
  using handle_type = std::coroutine_handle<promise_type>;

  /// An empty task: owns no coroutine. Awaiting it throws std::logic_error.
  Task() noexcept = default;
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { destroy(); }

  /// True when the task owns a coroutine.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(handle_); }
  /// True when the coroutine has run to its end (its result is ready to be read).
  [[nodiscard]] bool is_ready() const noexcept { return handle_ && handle_.done(); }

  class Awaiter {
   public:
    explicit Awaiter(handle_type handle) noexcept : handle_(handle) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;

    [[nodiscard]] bool await_ready() const noexcept { return !handle_ || handle_.done(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
      handle_.promise().set_continuation(awaiting);
      return detail::transfer_to(awaiting, handle_);  // start the task by symmetric transfer
    }
    T await_resume() {
      if (!handle_) throw std::logic_error("knhk: co_await on an empty Task");
      return handle_.promise().result().take();
    }

   private:
    handle_type handle_;
  };

  /// Starts the task and resumes the awaiter with its value (moved out) or its exception.
  /// A task is awaited once: a second await (concurrent or after completion) is undefined.
  Awaiter operator co_await() && noexcept { return Awaiter{handle_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{handle_}; }

  /// For drivers (sync_wait, the executor): gives up ownership of the frame.
  [[nodiscard]] handle_type release() noexcept { return std::exchange(handle_, {}); }

 private:
  friend class detail::TaskPromise<T>;
  explicit Task(handle_type handle) noexcept : handle_(handle) {}

  void destroy() noexcept {
    if (handle_) std::exchange(handle_, {}).destroy();
  }

  handle_type handle_;
};

namespace detail {

template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>{std::coroutine_handle<TaskPromise<T>>::from_promise(*this)};
}

inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>{std::coroutine_handle<TaskPromise<void>>::from_promise(*this)};
}

}  // namespace detail

static_assert(address_stable<detail::TaskPromiseBase::FinalAwaiter>);
static_assert(address_stable<Task<void>::Awaiter> && address_stable<Task<int&>::Awaiter>);

}  // namespace knhk::concurrency
