// The part of a cancellation state that the public handles need inline: the flag read by
// is_cancelled() and the reference count that copies of a handle share. The rest of the state
// (its lock, its place in the tree, its callbacks) is private to src/cancel_state.hpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <stop_token>

namespace knhk::concurrency::detail {

// One registration waiting for cancellation: an intrusive node in its state's callback list.
//
// Life of a node (`phase`; protocol in src/cancel_token.cpp, Invariants 5-7):
//   idle --add--> linked --cancel walk detaches it--> pending --runner claims--> running --> done
//   linked --owner deregisters--> idle
//   pending --owner deregisters--> abandoning --> abandoned (runner frees the node) or
//                                               --> passed (runner went by; owner frees it)
//   running --a stop bridge's dying state lets go--> orphaned (runner frees it after invoking)
// Every node lives on the heap, and `manage` destroys its payload or frees it, so that an owner
// deregistering a node a runner has not reached yet can hand the memory over instead of waiting.
struct CancelCallback {
  enum class Op { destroy_payload, delete_node };
  using InvokeFn = void (*)(CancelCallback* self) noexcept;
  using ManageFn = void (*)(CancelCallback* self, Op op) noexcept;

  enum Phase : std::uint32_t { kIdle, kLinked, kPending, kRunning, kDone, kAbandoning, kAbandoned, kPassed, kOrphaned };

  CancelCallback(InvokeFn invoke_fn, ManageFn manage_fn) noexcept : invoke(invoke_fn), manage(manage_fn) {}

  const InvokeFn invoke;
  const ManageFn manage;
  // Guarded by the state's lock while linked; after detaching, `next` chains the runner's batch
  // and is written and read only by the runner's thread.
  CancelCallback* prev = nullptr;
  CancelCallback* next = nullptr;
  // kIdle/kLinked change only under the state's lock; the later phases by compare-exchange
  // between the runner and the owner. Waited on (std::atomic::wait) by an owner that must wait.
  std::atomic<std::uint32_t> phase{kIdle};
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
// Deregisters `callback`: afterwards it will not start. If it is running on another thread, waits
// for it to return; if it is running on this thread (deregistering itself), returns at once.
// Returns true when the caller still owns the node's memory (it frees it with manage), false when
// the memory was handed to the runner (the payload is destroyed before returning).
bool remove_cancel_callback(CancelStateHeader* state, CancelCallback* callback) noexcept;
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
