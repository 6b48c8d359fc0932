// Recognising a callable that holds nothing to call: a null function pointer, an empty
// std::function (or std::move_only_function, when the library has it). Every API that stores a
// user's callable rejects these with std::invalid_argument at the call, where the mistake is,
// instead of failing later on whichever thread would have invoked it.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace knhk::concurrency::detail {

template <class F>
struct IsStdFunction : std::false_type {};
template <class S>
struct IsStdFunction<std::function<S>> : std::true_type {};
#if defined(__cpp_lib_move_only_function)
template <class S>
struct IsStdFunction<std::move_only_function<S>> : std::true_type {};
#endif

/// True when `fn` is a null (member) function pointer or an empty std::function.
template <class F>
[[nodiscard]] bool is_null_callable(const F& fn) noexcept {
  using D = std::remove_cvref_t<F>;
  if constexpr (std::is_pointer_v<D> || std::is_member_pointer_v<D>) {
    return fn == nullptr;
  } else if constexpr (IsStdFunction<D>::value) {
    return !static_cast<bool>(fn);
  } else {
    return false;
  }
}

/// Throws std::invalid_argument naming `what` (the function and its argument) for a null callable.
template <class F>
void reject_null_callable(const F& fn, const char* what) {
  if (is_null_callable(fn)) throw std::invalid_argument(std::string("knhk: ") + what + " is a null callable");
}

}  // namespace knhk::concurrency::detail
