// Pinned<T>: one value at a fixed heap address, owned by a handle that may move.
//
// C++ has no Pin; the need behind it is an object that must never move once something may point
// into it: a coroutine frame's awaiter, a node linked in a wait list, an intrusive hook. Pinned<T>
// puts the T on the heap and hands out a move-only owner: moving the owner moves a pointer, the T
// stays put, and copying the owner does not compile (tests/compile_fail shows it).
//
// Thread safety: a Pinned is a single-owner value, like std::unique_ptr; the T is as thread-safe as
//   T is.
// Blocking: none.
// Lifetime: the T lives until the owning Pinned is destroyed (or assigned over). A moved-from
//   Pinned is empty; get() on it is undefined, like dereferencing a null unique_ptr.
#pragma once

#include <concepts>
#include <coroutine>
#include <memory>
#include <type_traits>
#include <utility>

#include "knhk/concurrency/address_stable.hpp"

namespace knhk::concurrency {

namespace detail {

template <class A>
concept HasMemberCoAwait = requires(A&& a) {
  static_cast<A&&>(a).operator co_await();
};
template <class A>
concept HasFreeCoAwait = requires(A&& a) {
  operator co_await(static_cast<A&&>(a));
};

// What `co_await a` would await: a's operator co_await if it has one, else a itself.
template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (HasMemberCoAwait<A>) {
    return static_cast<A&&>(a).operator co_await();
  } else if constexpr (HasFreeCoAwait<A>) {
    return operator co_await(static_cast<A&&>(a));
  } else {
    return static_cast<A&&>(a);  // an lvalue reference: the awaiter is the pinned object itself
  }
}

// Awaits a pinned value in place: holds its awaiter (by value when the value's operator co_await
// made one, by reference when the value is its own awaiter).
template <class A>
class PinnedAwaiter {
 public:
  explicit PinnedAwaiter(A& awaitable) : awaiter_(get_awaiter(awaitable)) {}
  PinnedAwaiter(const PinnedAwaiter&) = delete;
  PinnedAwaiter& operator=(const PinnedAwaiter&) = delete;

  bool await_ready() { return awaiter_.await_ready(); }
  template <class Promise>
  decltype(auto) await_suspend(std::coroutine_handle<Promise> awaiting) {
    return awaiter_.await_suspend(awaiting);
  }
  decltype(auto) await_resume() { return awaiter_.await_resume(); }

 private:
  decltype(get_awaiter(std::declval<A&>())) awaiter_;
};

}  // namespace detail

template <class T>
class Pinned {
  static_assert(!std::is_reference_v<T> && !std::is_array_v<T>, "Pinned holds an object");

 public:
  /// Constructs the T in place from `args`.
  template <class... A>
  explicit Pinned(std::in_place_t /*tag*/, A&&... args) : value_(std::make_unique<T>(std::forward<A>(args)...)) {}

  Pinned(Pinned&&) noexcept = default;
  Pinned& operator=(Pinned&&) noexcept = default;
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
  ~Pinned() = default;

  /// The pinned value; its address is the same for as long as it lives.
  [[nodiscard]] T& get() noexcept { return *value_; }
  [[nodiscard]] const T& get() const noexcept { return *value_; }
  [[nodiscard]] T& operator*() noexcept { return *value_; }
  [[nodiscard]] const T& operator*() const noexcept { return *value_; }
  [[nodiscard]] T* operator->() noexcept { return value_.get(); }
  [[nodiscard]] const T* operator->() const noexcept { return value_.get(); }

  /// False once moved from.
  [[nodiscard]] explicit operator bool() const noexcept { return value_ != nullptr; }

  /// `co_await pinned` awaits the pinned value where it is (a Pinned<Task<T>> starts the task and
  /// yields its value). Awaits it as an lvalue, so a Task can be awaited this way once.
  auto operator co_await() & { return detail::PinnedAwaiter<T>(*value_); }
  auto operator co_await() && { return detail::PinnedAwaiter<T>(*value_); }

 private:
  std::unique_ptr<T> value_;
};

/// Moves (or copies) `value` to a fixed heap address.
template <class T>
[[nodiscard]] Pinned<std::decay_t<T>> pin(T&& value) {
  return Pinned<std::decay_t<T>>(std::in_place, std::forward<T>(value));
}

/// Constructs a T at a fixed heap address: the way to pin a T that can be neither copied nor moved.
template <class T, class... A>
[[nodiscard]] Pinned<T> make_pinned(A&&... args) {
  return Pinned<T>(std::in_place, std::forward<A>(args)...);
}

}  // namespace knhk::concurrency
