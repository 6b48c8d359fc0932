// CancelState: one node of the cancellation tree (private to the runtime).
// The protocol that ties these fields together is described at the top of cancel_token.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <stop_token>
#include <thread>

#include "knhk/concurrency/detail/cancel_state.hpp"
#include "parking_mutex.hpp"

namespace knhk::concurrency::detail {

// The std::stop_source behind CancelToken::stop_token(), made on first use. Its callback node
// sits in the state's callback list like a user registration but holds no reference to the state
// (the state owns it; it would otherwise keep itself alive).
struct StopBridge final : CancelCallback {
  StopBridge() noexcept : CancelCallback(&StopBridge::request_stop) {}
  static void request_stop(CancelCallback* self) noexcept { static_cast<StopBridge*>(self)->source.request_stop(); }
  std::stop_source source;
};

class CancelState final : public CancelStateHeader {
 public:
  explicit CancelState(CancelState* parent) noexcept : parent_(parent) {}
  ~CancelState() { delete stop_bridge_; }

  CancelState(const CancelState&) = delete;
  CancelState& operator=(const CancelState&) = delete;

  static CancelState* from(CancelStateHeader* header) noexcept { return static_cast<CancelState*>(header); }

  // Written once by new_child_state() before the state is shared, then immutable. Holds one
  // reference to the parent; null for a root and for a child born cancelled (which never needs
  // its parent again).
  CancelState* parent_;

  // Set (release) once every state in this subtree is known to be flagged cancelled; read
  // (acquire) by cancel walks to skip finished subtrees. Invariant 3 of cancel_token.cpp.
  std::atomic<bool> subtree_flagged_{false};

  // Bumped after each callback of this state returns; a deregistering thread waits on it
  // (std::atomic::wait) while its callback runs elsewhere. Written under mutex_.
  std::atomic<std::uint32_t> callbacks_finished_{0};

  ParkingMutex mutex_;
  // --- guarded by mutex_ ---
  CancelState* first_child_ = nullptr;
  CancelCallback* first_callback_ = nullptr;
  CancelCallback* last_callback_ = nullptr;
  CancelCallback* running_ = nullptr;  // the callback being invoked now, if any
  std::thread::id running_thread_;     // the thread invoking running_
  StopBridge* stop_bridge_ = nullptr;
  // --- guarded by parent_->mutex_ ---
  CancelState* prev_sibling_ = nullptr;
  CancelState* next_sibling_ = nullptr;
};

}  // namespace knhk::concurrency::detail
