// The outcome of a coroutine: nothing yet, a value, or an exception. Shared by Task<T>'s promise
// and the drivers that run a Task to completion (sync_wait, later the executor's join state).
//
// Not synchronised: the writer finishes before the reader starts, and whoever hands the
// coroutine's completion to the reader provides the happens-before.
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
    if (state_.index() == 2) rethrow_moved(std::get<2>(state_));
    if (state_.index() != 1) throw std::logic_error("knhk: the task's result was read before it finished");
    if constexpr (std::is_reference_v<T>) {
      return static_cast<T>(*std::get<1>(state_));
    } else {
      return std::move(std::get<1>(state_));
    }
  }

 private:
  std::variant<std::monostate, Stored, std::exception_ptr> state_;
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
    if (error_) rethrow_moved(error_);
    if (!done_) throw std::logic_error("knhk: the task's result was read before it finished");
  }

 private:
  std::exception_ptr error_;
  bool done_ = false;
};

}  // namespace knhk::concurrency::detail
