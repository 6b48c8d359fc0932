// The cancellation tree behind CancelToken.
//
// Each CancelToken points at a CancelState. A child state holds a reference to its parent and is
// linked into the parent's intrusive child list; the parent does not own its children. cancel()
// pushes the flag down the tree eagerly, so is_cancelled() is one acquire load at any depth.
//
// Invariants:
//  1. `cancelled` goes from false to true once, and only with the state's own mutex held. So a
//     thread holding the mutex reads it exactly (relaxed is enough there).
//  2. A state is in its parent's child list from its creation until destroy_state() unlinks it,
//     with the parent's mutex held, after its reference count reached zero. Hence a thread that
//     holds a parent's mutex may touch any child in the list: its memory stays valid. A child whose
//     count is zero is dying: it has no handles, registrations or children left.
//  3. `subtree_flagged` is set only after the state and every descendant linked under it have
//     `cancelled` set. A child created after its parent is cancelled is born cancelled and is not
//     linked (Invariant 4), so a flagged subtree stays flagged forever.
//  4. new_child_state() reads the parent's flag and links the child under the parent's mutex. A
//     cancel walk sets the flag and reads the child list under that same mutex. So every child is
//     either in the list the walk reads, or born cancelled: no child is ever missed.
//  5. Once `cancelled` is set, add_cancel_callback() refuses (the caller runs the callback
//     inline), so the callback list only shrinks. A callback leaves the list under the mutex
//     either by deregistration (it will never run) or by the runner, which records it in
//     `running_` in the same critical section. Hence each callback runs exactly once or never.
//  6. `running_` is cleared and `callbacks_finished_` bumped, under the mutex, after the callback
//     returns. A deregistration that finds its callback in `running_` on another thread waits for
//     that bump; on its own thread (a callback dropping its own registration) it returns at once.
//
// Lock order: a parent's mutex before its child's. Only a cancel walk holds two (one parent and one
// child at a time); everything else holds one. No mutex is held while user code runs: callbacks,
// resumed coroutines and std::stop_callbacks all run after the walk has dropped its locks.
//
// Protocol of cancel(root):
//  1. If root's subtree is already flagged, return (a repeated cancel costs one load).
//  2. Walk the subtree depth-first with an explicit stack (no recursion: a chain of a million
//     nested tokens is fine). For each state, under its mutex: set the flag; if this walk set it
//     and callbacks wait, remember the state (with a reference). Then, still under the state's
//     mutex, flag each child under the child's mutex; children that have children of their own are
//     pushed (with a reference) to be walked next, the others are finished on the spot. Mark each
//     state `subtree_flagged` once its children are finished (post-order).
//  3. Run the remembered states' callbacks, parents before children, registration order within a
//     state.
// Two cancels racing on overlapping subtrees both walk; each flag is set once, and each state's
// callbacks run on the thread whose walk set its flag. Either call returns with every descendant
// flagged, but the callbacks the other call claimed may still be running on its thread
// (std::stop_source::request_stop behaves the same way).
//
// References: tokio-util's CancellationToken (tree of nodes, eager propagation); the libstdc++
// std::stop_token implementation (a callback deregistering itself while it runs).
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cancel_state.hpp"
#include "knhk/concurrency/cancel_token.hpp"

namespace knhk::concurrency::detail {
namespace {

CancelState* as_state(CancelStateHeader* header) noexcept { return CancelState::from(header); }

// Takes a reference unless the count already reached zero (the state is dying; Invariant 2).
bool try_retain(CancelState* state) noexcept {
  // relaxed: the caller holds the parent's mutex, which keeps the memory valid; no data is
  // published by taking a reference.
  std::uint32_t count = state->refs.load(std::memory_order_relaxed);
  while (count != 0) {
    if (state->refs.compare_exchange_weak(count, count + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

// --- intrusive lists; all with the owning state's mutex held ---

void push_callback(CancelState* state, CancelCallback* callback) noexcept {
  callback->prev = state->last_callback_;
  callback->next = nullptr;
  callback->linked = true;
  if (state->last_callback_ != nullptr) {
    state->last_callback_->next = callback;
  } else {
    state->first_callback_ = callback;
  }
  state->last_callback_ = callback;
}

void unlink_callback(CancelState* state, CancelCallback* callback) noexcept {
  (callback->prev != nullptr ? callback->prev->next : state->first_callback_) = callback->next;
  (callback->next != nullptr ? callback->next->prev : state->last_callback_) = callback->prev;
  callback->prev = callback->next = nullptr;
  callback->linked = false;
}

CancelCallback* pop_callback(CancelState* state) noexcept {
  CancelCallback* first = state->first_callback_;
  if (first != nullptr) unlink_callback(state, first);
  return first;
}

void link_child(CancelState* parent, CancelState* child) noexcept {
  child->next_sibling_ = parent->first_child_;
  if (parent->first_child_ != nullptr) parent->first_child_->prev_sibling_ = child;
  parent->first_child_ = child;
}

void unlink_child(CancelState* parent, CancelState* child) noexcept {
  (child->prev_sibling_ != nullptr ? child->prev_sibling_->next_sibling_ : parent->first_child_) =
      child->next_sibling_;
  if (child->next_sibling_ != nullptr) child->next_sibling_->prev_sibling_ = child->prev_sibling_;
  child->prev_sibling_ = child->next_sibling_ = nullptr;
}

// With state->mutex_ held: sets the flag (Invariant 1). Returns true, with a reference taken,
// when this call set it and callbacks are waiting for this walk to run them.
bool flag_locked(CancelState* state) noexcept {
  if (state->cancelled.load(std::memory_order_relaxed)) return false;  // relaxed: Invariant 1
  // release: pairs with the acquire loads in is_cancelled() and CancelledAwaiter::await_ready().
  state->cancelled.store(true, std::memory_order_release);
  // A dying state can only hold a stop bridge nobody can observe any more: skip it.
  return state->first_callback_ != nullptr && try_retain(state);
}

// Runs the state's callbacks one by one, none with the mutex held (Invariants 5 and 6).
void run_callbacks(CancelState* state) noexcept {
  const std::thread::id self = std::this_thread::get_id();
  std::unique_lock lock(state->mutex_);
  while (CancelCallback* callback = pop_callback(state)) {
    state->running_ = callback;
    state->running_thread_ = self;
    lock.unlock();
    callback->invoke(callback);  // may free `callback` (self-deregistration): not touched again
    lock.lock();
    state->running_ = nullptr;
    // release: pairs with the acquire wait in remove_cancel_callback(); the callback's effects
    // happen before the deregistering thread returns. Written only under the mutex.
    state->callbacks_finished_.store(state->callbacks_finished_.load(std::memory_order_relaxed) + 1,
                                     std::memory_order_release);
    state->callbacks_finished_.notify_all();
  }
}

struct WalkItem {
  CancelState* state;  // holds a reference
  bool expanded;
};

}  // namespace

CancelStateHeader* new_root_state() { return new CancelState(nullptr); }

CancelStateHeader* new_child_state(CancelStateHeader* parent_header) {
  auto* child = new CancelState(nullptr);
  if (parent_header == nullptr) return child;  // child of a moved-from token: a new root
  CancelState* parent = as_state(parent_header);
  std::lock_guard lock(parent->mutex_);
  if (parent->cancelled.load(std::memory_order_relaxed)) {  // relaxed: Invariant 1
    // Born cancelled and unlinked (Invariants 3, 4). relaxed: the child is not shared yet; the
    // handle reaches other threads only through a synchronising hand-off.
    child->cancelled.store(true, std::memory_order_relaxed);
    child->subtree_flagged_.store(true, std::memory_order_relaxed);
    return child;
  }
  retain_state(parent);
  child->parent_ = parent;
  link_child(parent, child);
  return child;
}

void destroy_state(CancelStateHeader* header) noexcept {
  CancelState* state = as_state(header);
  // Iterative: dropping the last leaf of a long chain frees the whole chain without recursion.
  for (;;) {
    CancelState* parent = state->parent_;
    if (parent != nullptr) {
      std::lock_guard lock(parent->mutex_);
      unlink_child(parent, state);  // Invariant 2
    }
    delete state;
    if (parent == nullptr) return;
    // acq_rel: as release_state().
    if (parent->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    state = parent;
  }
}

void cancel_state(CancelStateHeader* header) noexcept {
  if (header == nullptr) return;
  CancelState* root = as_state(header);
  // acquire: pairs with the release store that finished flagging this subtree (Protocol step 1).
  if (root->subtree_flagged_.load(std::memory_order_acquire)) return;

  std::vector<WalkItem> stack;
  std::vector<CancelState*> with_callbacks;  // each holds a reference
  retain_state(root);
  stack.push_back({root, false});
  while (!stack.empty()) {
    const WalkItem top = stack.back();
    // acquire: as above; another walk may have finished this subtree meanwhile.
    if (top.expanded || top.state->subtree_flagged_.load(std::memory_order_acquire)) {
      // release: pairs with the acquire loads above and in Protocol step 1 (Invariant 3).
      if (top.expanded) top.state->subtree_flagged_.store(true, std::memory_order_release);
      stack.pop_back();
      release_state(top.state);
      continue;
    }
    stack.back().expanded = true;

    std::lock_guard lock(top.state->mutex_);
    if (flag_locked(top.state)) with_callbacks.push_back(top.state);
    for (CancelState* child = top.state->first_child_; child != nullptr; child = child->next_sibling_) {
      // acquire: as above.
      if (child->subtree_flagged_.load(std::memory_order_acquire)) continue;
      bool has_children = false;
      {
        std::lock_guard child_lock(child->mutex_);  // lock order: parent, then child
        if (flag_locked(child)) with_callbacks.push_back(child);
        has_children = child->first_child_ != nullptr;
      }
      if (has_children) {
        // Its children hold references to it, so it is not dying (Invariant 2).
        retain_state(child);
        stack.push_back({child, false});
      } else {
        // Flagged and childless; later children are born cancelled (Invariant 3).
        // release: pairs with the acquire loads of subtree_flagged_.
        child->subtree_flagged_.store(true, std::memory_order_release);
      }
    }
  }

  for (CancelState* state : with_callbacks) {
    run_callbacks(state);
    release_state(state);
  }
}

bool add_cancel_callback(CancelStateHeader* header, CancelCallback* callback) noexcept {
  CancelState* state = as_state(header);
  std::lock_guard lock(state->mutex_);
  if (state->cancelled.load(std::memory_order_relaxed)) return false;  // relaxed: Invariant 1
  push_callback(state, callback);
  return true;
}

void remove_cancel_callback(CancelStateHeader* header, CancelCallback* callback) noexcept {
  CancelState* state = as_state(header);
  std::unique_lock lock(state->mutex_);
  if (callback->linked) {
    unlink_callback(state, callback);  // it will never run (Invariant 5)
    return;
  }
  if (state->running_ == callback && state->running_thread_ == std::this_thread::get_id()) {
    return;  // the callback is deregistering itself (Invariant 6)
  }
  while (state->running_ == callback) {
    // relaxed: read under the mutex, which orders it with the runner's bump.
    const std::uint32_t seen = state->callbacks_finished_.load(std::memory_order_relaxed);
    lock.unlock();
    // acquire: pairs with the release bump in run_callbacks().
    state->callbacks_finished_.wait(seen, std::memory_order_acquire);
    lock.lock();
  }
}

std::stop_token state_stop_token(CancelStateHeader* header) {
  if (header == nullptr) return {};
  CancelState* state = as_state(header);
  auto fresh = std::make_unique<StopBridge>();  // allocated outside the lock; usually used
  std::stop_token token;
  bool cancelled = false;
  {
    std::lock_guard lock(state->mutex_);
    cancelled = state->cancelled.load(std::memory_order_relaxed);  // relaxed: Invariant 1
    if (state->stop_bridge_ == nullptr) {
      state->stop_bridge_ = fresh.release();
      if (!cancelled) push_callback(state, state->stop_bridge_);
    }
    token = state->stop_bridge_->source.get_token();
  }
  // Outside the lock: request_stop() runs the std::stop_callbacks registered on the source.
  // Every caller that saw the flag asks (idempotent), so no caller returns an unstopped token
  // for a cancelled state.
  if (cancelled) state->stop_bridge_->source.request_stop();
  return token;
}

std::size_t linked_child_count(CancelStateHeader* header) noexcept {
  if (header == nullptr) return 0;
  CancelState* state = as_state(header);
  std::lock_guard lock(state->mutex_);
  std::size_t count = 0;
  for (const CancelState* child = state->first_child_; child != nullptr; child = child->next_sibling_) ++count;
  return count;
}

}  // namespace knhk::concurrency::detail
