// address_stable: the types whose objects never change address.
//
// An object that others may point into once it exists (a suspended coroutine's awaiter, linked in a
// wait list or holding a timer entry; an operation state) must stay where it was made. A type that
// can be neither copy- nor move-constructed cannot be relocated by any code path, so the compiler
// enforces what would otherwise be a comment. The library's own awaiters and operation states
// check it with static_assert next to their definitions; Pinned<T> (pin.hpp) gives the same
// guarantee to a value of any type.
#pragma once

#include <type_traits>

namespace knhk::concurrency {

template <class T>
concept address_stable = !std::is_copy_constructible_v<T> && !std::is_move_constructible_v<T>;

}  // namespace knhk::concurrency
