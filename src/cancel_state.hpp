// CancelState: one node of the cancellation tree (private to the runtime).
// The protocol that ties these fields together is described at the top of cancel_token.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <stop_token>

#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/detail/block_pool.hpp"
#include "knhk/concurrency/detail/cancel_state.hpp"
#include "parking_mutex.hpp"

namespace knhk::concurrency::detail {

// The std::stop_source behind CancelToken::stop_token(), made on first use: an ordinary heap
// callback node in the state's list, owned by the state, which lets go of it like any owner when
// it dies (it holds no reference to the state, or the state would keep itself alive).
struct StopRequester {
  std::stop_source source;
  // Runs on a copy of the source: a std::stop_callback may drop the last token and with it the
  // bridge while request_stop() is still running.
  void operator()() const noexcept {
    std::stop_source running = source;
    running.request_stop();
  }
};
using StopBridge = CancelCallbackFn<StopRequester>;

class CancelState final : public CancelStateHeader, public PooledAllocation {
 public:
  explicit CancelState(CancelState* parent) noexcept : parent_(parent) {}
  ~CancelState();  // in cancel_token.cpp: deregisters the stop bridge

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

  ParkingMutex mutex_;
  // --- guarded by mutex_ ---
  CancelState* first_child_ = nullptr;
  CancelCallback* first_callback_ = nullptr;
  CancelCallback* last_callback_ = nullptr;
  StopBridge* stop_bridge_ = nullptr;
  // --- guarded by parent_->mutex_ ---
  CancelState* prev_sibling_ = nullptr;
  CancelState* next_sibling_ = nullptr;
};

}  // namespace knhk::concurrency::detail
