// The outcome of a coroutine: nothing yet, a value, or an exception. Shared by Task<T>'s promise
// and the drivers that run a Task to completion (sync_wait, later the executor's join state).
//
// Not synchronised: the writer finishes before the reader starts, and whoever hands the
// coroutine's completion to the reader provides the happens-before.
//
// Read once: take() moves the outcome out and leaves the result "taken", so a second read (a
// second JoinHandle::get() or co_await) throws std::logic_error instead of rethrowing a null
// exception_ptr (which crashes), handing out a moved-from value, or succeeding silently.
#pragma once

#include <exception>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace knhk::concurrency::detail {

[[noreturn]] inline void rethrow_moved(std::exception_ptr& stored) {
  const std::exception_ptr error = std::move(stored);
  std::rethrow_exception(error);
}

[[noreturn]] inline void throw_read_twice() {
  throw std::logic_error("knhk: a task's result was read twice (a second get() or co_await of one handle)");
}
[[noreturn]] inline void throw_read_early() {
  throw std::logic_error("knhk: the task's result was read before it finished");
}

// The alternative a read leaves behind.
struct TakenResult {};

template <class T>
class TaskResult {
  // References are stored as pointers so that Task<T&> costs nothing to offer.
  using Stored = std::conditional_t<std::is_reference_v<T>, std::add_pointer_t<T>, T>;

 public:
  template <class U>
  void set_value(U&& value) noexcept(std::is_nothrow_constructible_v<Stored, U&&>) {
    if constexpr (std::is_reference_v<T>) {
      state_.template emplace<1>(std::addressof(value));
    } else {
      state_.template emplace<1>(std::forward<U>(value));
    }
  }

  void set_exception(std::exception_ptr error) noexcept { state_.template emplace<2>(std::move(error)); }

  [[nodiscard]] bool has_exception() const noexcept { return state_.index() == 2; }
  [[nodiscard]] const std::exception_ptr* exception() const noexcept { return std::get_if<2>(&state_); }

  /// Moves the value out, or rethrows the exception. Call once. The exception is moved out too:
  /// the reader's thread then holds the only reference, so the writer's side (a join state the
  /// worker frees later) never drops the last one behind the reader's back.
  T take() {
    switch (state_.index()) {
      case 1: {
        if constexpr (std::is_reference_v<T>) {
          Stored pointer = std::get<1>(state_);
          state_.template emplace<3>();
          return static_cast<T>(*pointer);
        } else {
          // Moved into the return value before the slot is marked taken (guaranteed elision of
          // the returned prvalue: nothing is left to destroy in the slot but a moved-from T).
          Stored value(std::move(std::get<1>(state_)));
          state_.template emplace<3>();
          return value;
        }
      }
      case 2: {
        std::exception_ptr error = std::move(std::get<2>(state_));
        state_.template emplace<3>();
        std::rethrow_exception(error);
      }
      case 3:
        throw_read_twice();
      default:
        throw_read_early();
    }
  }

 private:
  std::variant<std::monostate, Stored, std::exception_ptr, TakenResult> state_;
};

template <>
class TaskResult<void> {
 public:
  void set_value() noexcept { done_ = true; }
  void set_exception(std::exception_ptr error) noexcept {
    error_ = std::move(error);
    done_ = true;
  }

  [[nodiscard]] bool has_exception() const noexcept { return error_ != nullptr; }
  [[nodiscard]] const std::exception_ptr* exception() const noexcept { return error_ ? &error_ : nullptr; }

  void take() {
    if (taken_) throw_read_twice();
    if (!done_) throw_read_early();
    taken_ = true;
    if (error_) rethrow_moved(error_);
  }

 private:
  std::exception_ptr error_;
  bool done_ = false;
  bool taken_ = false;
};

}  // namespace knhk::concurrency::detail
