// The part of a cancellation state that the public handles need inline: the flag read by
// is_cancelled() and the reference count that copies of a handle share. The rest of the state
// (its lock, its place in the tree, its callbacks) is private to src/cancel_state.hpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <stop_token>

namespace knhk::concurrency::detail {

// One registration waiting for cancellation: an intrusive node in its state's callback list.
// The owner (a CancelRegistration, or an awaiter in a coroutine frame) keeps it at a fixed address
// from add_cancel_callback() until remove_cancel_callback() returns.
struct CancelCallback {
  using InvokeFn = void (*)(CancelCallback* self) noexcept;

  explicit CancelCallback(InvokeFn fn) noexcept : invoke(fn) {}

  InvokeFn invoke;
  // Guarded by the owning state's lock.
  CancelCallback* prev = nullptr;
  CancelCallback* next = nullptr;
  bool linked = false;
};

class CancelStateHeader {
 public:
  // Written (false -> true, once) only with the state's lock held; read by anyone.
  std::atomic<bool> cancelled{false};
  // Handles, registrations, awaiters, child states and in-flight cancel walks each hold one.
  std::atomic<std::uint32_t> refs{1};

 protected:
  CancelStateHeader() = default;
  ~CancelStateHeader() = default;
};

// Out of line (src/cancel_token.cpp). "State" below is a CancelStateHeader* made by these.
CancelStateHeader* new_root_state();
CancelStateHeader* new_child_state(CancelStateHeader* parent);
void destroy_state(CancelStateHeader* state) noexcept;
void cancel_state(CancelStateHeader* state) noexcept;
// Links `callback` into the state's list and returns true, or returns false without linking it
// when the state is already cancelled (the caller then runs it inline).
bool add_cancel_callback(CancelStateHeader* state, CancelCallback* callback) noexcept;
// Unlinks `callback` if it has not run. If it is running on another thread, waits for it to
// return; if it is running on this thread (it is deregistering itself), returns at once.
void remove_cancel_callback(CancelStateHeader* state, CancelCallback* callback) noexcept;
std::stop_token state_stop_token(CancelStateHeader* state);
std::size_t linked_child_count(CancelStateHeader* state) noexcept;

inline void retain_state(CancelStateHeader* state) noexcept {
  // relaxed: the caller already holds a reference, so the count cannot be zero and no data is
  // published by taking another one.
  state->refs.fetch_add(1, std::memory_order_relaxed);
}

inline void release_state(CancelStateHeader* state) noexcept {
  // acq_rel: release publishes this holder's last uses of the state; the acquire half (on the
  // thread that drops the count to zero) sees every other holder's before it destroys the state.
  if (state->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy_state(state);
}

}  // namespace knhk::concurrency::detail
