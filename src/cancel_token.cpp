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
//     inline). The walk that sets the flag detaches the whole callback list in the same critical
//     section, turning each node from linked to pending. So a callback is either deregistered
//     while linked (it never runs) or detached exactly once, into exactly one runner's batch.
//  6. A pending node is claimed by exactly one compare-exchange: the runner's (pending ->
//     running: it runs once) or its owner's (pending -> abandoning: it never runs). A claimed
//     running callback ends with running -> done, stored by the runner unless the callback
//     deregistered itself (then the runner never touches the node again).
//  7. Nobody waits for a callback that has not started: an owner that abandons a pending node
//     destroys its payload and then either hands its memory to the runner (abandoning ->
//     abandoned) or, if the runner already went past (abandoning -> passed), frees it itself.
//     An owner waits only for a callback that is running on another thread. (So a callback may
//     block on a thread that deregisters a later callback of the same cancel: no deadlock.)
//  8. The runner reads a node's `next` before claiming it, and touches a node only through its
//     phase after that. Memory handed over (abandoned) is freed by the runner after it read `next`.
//
// Lock order: a parent's mutex before its child's. Only a cancel walk holds two (one parent and one
// child at a time); everything else holds one. No mutex is held while user code runs: callbacks,
// resumed coroutines and std::stop_callbacks all run after the walk has dropped its locks.
//
// Protocol of cancel(root):
//  1. If root's subtree is already flagged, return (a repeated cancel costs one load).
//  2. Walk the subtree depth-first with an explicit stack (no recursion: a chain of a million
//     nested tokens is fine). For each state, under its mutex: set the flag and, if this walk set
//     it, detach its callbacks into this walk's batch. Then, still under the state's mutex, do the
//     same for each child under the child's mutex; children that have children of their own are
//     pushed (with a reference) to be walked next, the others are finished on the spot. Mark each
//     state `subtree_flagged` once its children are finished (post-order).
//  3. Run the batch: parents' callbacks before children's, registration order within a state,
//     claiming each node (Invariant 6). No reference to any state is held: nodes carry all the
//     runner needs.
// Two cancels racing on overlapping subtrees both walk; each flag is set once, and each state's
// callbacks run on the thread whose walk set its flag. Either call returns with every descendant
// flagged, but the callbacks the other call claimed may still be running on its thread
// (std::stop_source::request_stop behaves the same way).
//
// Cost of cancelling a leaf child with one callback: lock and unlock the child, then one
// compare-exchange to claim and one exchange-class store to finish the callback (knhk-bench W10).
//
// References: tokio-util's CancellationToken (tree of nodes, eager propagation); the libstdc++
// std::stop_token implementation (a callback deregistering itself while it runs).
#include <array>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cancel_state.hpp"
#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/detail/trace.hpp"
#include "knhk/concurrency/telemetry.hpp"
#include "span_report.hpp"
#include "telemetry_names.hpp"

namespace knhk::concurrency::detail {
namespace {

CancelState* as_state(CancelStateHeader* header) noexcept { return CancelState::from(header); }

// The callbacks this thread is invoking now, innermost first: a callback may cancel another
// token, whose callbacks then run nested. Used to recognise a deregistration made from inside
// a callback of the same thread (Invariant 6), which must not wait.
struct Invoking {
  CancelCallback* node;
  bool destroyed;
  Invoking* outer;
};
thread_local Invoking* tls_invoking = nullptr;

Invoking* find_invoking(const CancelCallback* node) noexcept {
  for (Invoking* frame = tls_invoking; frame != nullptr; frame = frame->outer) {
    if (frame->node == node) return frame;
  }
  return nullptr;
}

void push_callback(CancelState* state, CancelCallback* callback) noexcept {
  callback->prev = state->last_callback_;
  callback->next = nullptr;
  // relaxed: kIdle/kLinked change only under the state's mutex (Invariant 5).
  callback->phase.store(CancelCallback::kLinked, std::memory_order_relaxed);
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
  // relaxed: as in push_callback().
  callback->phase.store(CancelCallback::kIdle, std::memory_order_relaxed);
}

void link_child(CancelState* parent, CancelState* child) noexcept {
  child->next_sibling_ = parent->first_child_;
  if (parent->first_child_ != nullptr) parent->first_child_->prev_sibling_ = child;
  parent->first_child_ = child;
}

void unlink_child(CancelState* parent, CancelState* child) noexcept {
  (child->prev_sibling_ != nullptr ? child->prev_sibling_->next_sibling_ : parent->first_child_) = child->next_sibling_;
  if (child->next_sibling_ != nullptr) child->next_sibling_->prev_sibling_ = child->prev_sibling_;
  child->prev_sibling_ = child->next_sibling_ = nullptr;
}

// A runner's list of detached callbacks, in the order they are to run.
struct Batch {
  CancelCallback* first = nullptr;
  CancelCallback* last = nullptr;
};

// With state->mutex_ held: sets the flag (Invariant 1) and, if this call set it, moves the
// state's callbacks into `batch` (Invariant 5).
void flag_locked(CancelState* state, Batch& batch) noexcept {
  if (state->cancelled.load(std::memory_order_relaxed)) return;  // relaxed: Invariant 1
  // release: pairs with the acquire loads in is_cancelled() and CancelledAwaiter::await_ready().
  state->cancelled.store(true, std::memory_order_release);
  CancelCallback* first = state->first_callback_;
  if (first == nullptr) return;
  for (CancelCallback* node = first; node != nullptr; node = node->next) {
    // relaxed: the owner reads kLinked/kPending under this mutex; later phases are decided by
    // compare-exchange (Invariant 6), which this store precedes in the mutex's order.
    node->phase.store(CancelCallback::kPending, std::memory_order_relaxed);
  }
  (batch.last != nullptr ? batch.last->next : batch.first) = first;
  batch.last = state->last_callback_;
  state->first_callback_ = state->last_callback_ = nullptr;
}

void invoke_claimed(CancelCallback* node) noexcept {
  Invoking frame{node, false, tls_invoking};
  tls_invoking = &frame;
  node->invoke(node);
  tls_invoking = frame.outer;
  if (frame.destroyed) return;  // it was deregistered from inside: the node may be gone (Invariant 6)
  if (node->manage == &StopBridge::manage_fn) {
    // A bridge's owner (its dying state) never waits: it may have orphaned the node meanwhile.
    // acq_rel: pairs with the compare-exchange in release_stop_bridge(); whoever moves second frees.
    if (node->phase.exchange(CancelCallback::kDone, std::memory_order_acq_rel) == CancelCallback::kOrphaned) {
      node->manage(node, CancelCallback::Op::delete_node);
    }
    return;
  }
  // release: pairs with the acquire loads of an owner waiting in abandon_or_wait(); the
  // callback's effects happen before that owner returns.
  node->phase.store(CancelCallback::kDone, std::memory_order_release);
  // The owner may free the node as soon as it sees kDone; libstdc++'s notify only hashes the
  // address and issues a futex wake, so a wake on a freed or reused address is harmless.
  node->phase.notify_all();
}

// Protocol step 3.
void run_batch(const Batch& batch) noexcept {
  CancelCallback* next = nullptr;
  for (CancelCallback* node = batch.first; node != nullptr; node = next) {
    next = node->next;  // before the claim: afterwards the node may be freed (Invariant 8)
    std::uint32_t phase = CancelCallback::kPending;
    // acquire: pairs with the owner's release (the mutex hand-off, or its abandoning CAS) so the
    // callback's payload is fully built before it runs.
    if (node->phase.compare_exchange_strong(phase, CancelCallback::kRunning, std::memory_order_acquire,
                                            std::memory_order_acquire)) {
      invoke_claimed(node);
      continue;
    }
    // acq_rel: pairs with the owner's compare-exchanges in abandon_or_wait(); whoever moves
    // second frees the node.
    if (phase == CancelCallback::kAbandoning &&
        node->phase.compare_exchange_strong(phase, CancelCallback::kPassed, std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
      continue;
    }
    // kAbandoned: the owner destroyed the payload and handed the memory over (Invariant 7).
    node->manage(node, CancelCallback::Op::delete_node);
  }
}

// The owner's side of Invariant 7 for a node that a walk detached. Returns true when the caller
// still owns the node's memory.
bool abandon_or_wait(CancelCallback* node) noexcept {
  std::uint32_t phase = CancelCallback::kPending;
  // acquire: pairs with the runner's claim; on failure we learn whether it runs or ran.
  if (node->phase.compare_exchange_strong(phase, CancelCallback::kAbandoning, std::memory_order_acquire,
                                          std::memory_order_acquire)) {
    node->manage(node, CancelCallback::Op::destroy_payload);
    phase = CancelCallback::kAbandoning;
    // acq_rel: release publishes the payload's destruction to the runner that frees the node;
    // acquire (on failure, `passed`) orders the runner's last touch before our free.
    return !node->phase.compare_exchange_strong(phase, CancelCallback::kAbandoned, std::memory_order_acq_rel,
                                                std::memory_order_acquire);
  }
  if (phase == CancelCallback::kRunning) {
    if (Invoking* frame = find_invoking(node)) {
      frame->destroyed = true;  // deregistered from inside a callback on this thread: no wait
      return true;
    }
    // Running on another thread: wait for it to return. acquire: pairs with invoke_claimed().
    while (node->phase.load(std::memory_order_acquire) == CancelCallback::kRunning) {
      node->phase.wait(CancelCallback::kRunning, std::memory_order_acquire);
    }
  }
  return true;  // done
}

struct WalkItem {
  CancelState* state;  // holds a reference
  bool expanded;
};

// The walk's explicit stack: inline up to kInline entries, so an ordinary cancel allocates
// nothing; a deeper or wider tree spills to the heap (where running out of memory ends the
// program, as in any noexcept function).
class WalkStack {
 public:
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  WalkItem& back() noexcept { return at(size_ - 1); }
  void push_back(WalkItem item) {
    if (size_ < kInline) {
      inline_[size_] = item;
    } else {
      spill_.push_back(item);
    }
    ++size_;
  }
  void pop_back() noexcept {
    --size_;
    if (size_ >= kInline) spill_.pop_back();
  }

 private:
  // Holds a walk of depth 32, or of one node with 31 children that have children of their own.
  static constexpr std::size_t kInline = 32;
  WalkItem& at(std::size_t i) noexcept { return i < kInline ? inline_[i] : spill_[i - kInline]; }

  std::array<WalkItem, kInline> inline_{};
  std::vector<WalkItem> spill_;
  std::size_t size_ = 0;
};

}  // namespace

namespace {

CancelStateHeader* make_child_state(CancelStateHeader* parent_header);
void cancel_walk(CancelStateHeader* header) noexcept;

void trace_token_create(std::int64_t start, const CancelStateHeader* state, const CancelStateHeader* parent) noexcept {
  if (parent == nullptr) {
    report_span(names::kSpanTokenCreate, start, {{names::kCancelTokenId, trace_id_of(state)}});
  } else {
    report_span(names::kSpanTokenCreate, start,
                {{names::kCancelTokenId, trace_id_of(state)}, {names::kCancelTokenParentId, trace_id_of(parent)}});
  }
}

}  // namespace

CancelStateHeader* new_root_state() {
  const std::int64_t start = trace_begin();
  CancelStateHeader* state = new CancelState(nullptr);
  if (start != 0) trace_token_create(start, state, nullptr);
  return state;
}

CancelStateHeader* new_child_state(CancelStateHeader* parent_header) {
  const std::int64_t start = trace_begin();
  CancelStateHeader* state = make_child_state(parent_header);
  if (start != 0) trace_token_create(start, state, parent_header);
  return state;
}

void cancel_state(CancelStateHeader* header) noexcept {
  if (header == nullptr) return;
  if (!tracing()) {
    cancel_walk(header);
    return;
  }
  const std::int64_t start = trace_clock_now();
  // acquire: as cancel_walk()'s first load. Whether this call found the token cancelled already.
  const bool was_cancelled = header->cancelled.load(std::memory_order_acquire);
  cancel_walk(header);
  report_span(names::kSpanTokenCancel, start,
              {{names::kCancelTokenId, trace_id_of(header)}, {names::kCancelTokenIsCancelled, was_cancelled}});
}

bool is_child_of(const CancelToken& child, const CancelToken& parent) noexcept {
  CancelStateHeader* const child_state = CancelTokenAccess::state(child);
  CancelStateHeader* const parent_state = CancelTokenAccess::state(parent);
  return child_state != nullptr && parent_state != nullptr && as_state(child_state)->parent_ == as_state(parent_state);
}

void trace_cancel_scope(bool created, const CancelToken& token, bool auto_cancel, std::int64_t start) noexcept {
  const CancelStateHeader* state = CancelTokenAccess::state(token);
  if (state == nullptr) return;  // a moved-from scope: nothing of it is left to report
  if (created) {
    report_span(names::kSpanScopeCreate, start,
                {{names::kCancelTokenId, trace_id_of(state)}, {names::kCancelScopeAutoCancel, auto_cancel}});
    return;
  }
  // acquire: pairs with the cancelling walk's release (Invariant 1).
  const bool is_cancelled = state->cancelled.load(std::memory_order_acquire);
  report_span(names::kSpanScopeDrop, start,
              {{names::kCancelTokenId, trace_id_of(state)},
               {names::kCancelScopeAutoCancel, auto_cancel},
               {names::kCancelTokenIsCancelled, is_cancelled}});
}

namespace {

CancelStateHeader* make_child_state(CancelStateHeader* parent_header) {
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

}  // namespace

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

namespace {

void cancel_walk(CancelStateHeader* header) noexcept {
  CancelState* root = as_state(header);
  // acquire: pairs with the release store that finished flagging this subtree (Protocol step 1).
  if (root->subtree_flagged_.load(std::memory_order_acquire)) return;

  WalkStack stack;
  Batch batch;
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
    flag_locked(top.state, batch);
    for (CancelState* child = top.state->first_child_; child != nullptr; child = child->next_sibling_) {
      // acquire: as above.
      if (child->subtree_flagged_.load(std::memory_order_acquire)) continue;
      bool has_children = false;
      {
        std::lock_guard child_lock(child->mutex_);  // lock order: parent, then child
        flag_locked(child, batch);
        has_children = child->first_child_ != nullptr;
        // Its children hold references to it, and none can unlink while we hold its mutex, so it
        // is not dying (Invariant 2). Once the mutex is released that no longer holds.
        if (has_children) retain_state(child);
      }
      if (has_children) {
        stack.push_back({child, false});
      } else {
        // Flagged and childless; later children are born cancelled (Invariant 3).
        // release: pairs with the acquire loads of subtree_flagged_.
        child->subtree_flagged_.store(true, std::memory_order_release);
      }
    }
  }
  run_batch(batch);
}

}  // namespace

bool add_cancel_callback(CancelStateHeader* header, CancelCallback* callback) noexcept {
  CancelState* state = as_state(header);
  std::lock_guard lock(state->mutex_);
  if (state->cancelled.load(std::memory_order_relaxed)) return false;  // relaxed: Invariant 1
  push_callback(state, callback);
  return true;
}

bool remove_cancel_callback(CancelStateHeader* header, CancelCallback* callback) noexcept {
  CancelState* state = as_state(header);
  {
    std::lock_guard lock(state->mutex_);
    // relaxed: kIdle and kLinked change only under this mutex (Invariant 5).
    const std::uint32_t phase = callback->phase.load(std::memory_order_relaxed);
    if (phase == CancelCallback::kLinked) {
      unlink_callback(state, callback);  // it will never run
      return true;
    }
    if (phase == CancelCallback::kIdle) return true;  // never linked: it ran inline, or never was added
  }
  return abandon_or_wait(callback);  // a walk detached it (Invariants 6, 7)
}

namespace {

// A dying state lets go of its stop bridge without ever waiting (a std::stop_callback may be
// blocked on the very thread that drops the last token): the runner frees a node it still holds.
void release_stop_bridge(StopBridge* bridge) noexcept {
  // acquire: pairs with the runner's claim and its final exchange.
  std::uint32_t phase = bridge->phase.load(std::memory_order_acquire);
  for (;;) {
    switch (phase) {
      case CancelCallback::kIdle:
      case CancelCallback::kLinked:  // refs are zero: no walk can reach the list any more
      case CancelCallback::kDone:
        delete bridge;
        return;
      case CancelCallback::kPending:
        // acquire: as in abandon_or_wait(). On failure the runner claimed it: look again.
        if (bridge->phase.compare_exchange_weak(phase, CancelCallback::kAbandoning, std::memory_order_acquire,
                                                std::memory_order_acquire)) {
          phase = CancelCallback::kAbandoning;
          // acq_rel: as in abandon_or_wait(); on failure the runner went past and we free it.
          if (!bridge->phase.compare_exchange_strong(phase, CancelCallback::kAbandoned, std::memory_order_acq_rel,
                                                     std::memory_order_acquire)) {
            delete bridge;
          }
          return;
        }
        continue;
      case CancelCallback::kRunning:
        if (Invoking* frame = find_invoking(bridge)) {
          frame->destroyed = true;  // a stop callback on this thread dropped the last token
          delete bridge;            // request_stop() runs on its own copy of the source
          return;
        }
        // acq_rel: pairs with the runner's exchange in invoke_claimed().
        if (bridge->phase.compare_exchange_weak(phase, CancelCallback::kOrphaned, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
          return;  // the runner frees it after request_stop() returns
        }
        continue;  // it finished meanwhile (or a spurious failure): look again
      default:
        return;  // unreachable: a bridge is never abandoned by anyone but us
    }
  }
}

}  // namespace

CancelState::~CancelState() {
  if (stop_bridge_ != nullptr) release_stop_bridge(stop_bridge_);
}

std::stop_token state_stop_token(CancelStateHeader* header) {
  if (header == nullptr) return {};
  CancelState* state = as_state(header);
  auto fresh = std::make_unique<StopBridge>(StopRequester{});  // allocated outside the lock; usually used
  std::stop_token token;
  bool cancelled = false;
  {
    std::lock_guard lock(state->mutex_);
    cancelled = state->cancelled.load(std::memory_order_relaxed);  // relaxed: Invariant 1
    if (state->stop_bridge_ == nullptr) {
      state->stop_bridge_ = fresh.release();
      if (!cancelled) push_callback(state, state->stop_bridge_);
    }
    token = state->stop_bridge_->fn_->source.get_token();
  }
  // Outside the lock: request_stop() runs the std::stop_callbacks registered on the source.
  // Every caller that saw the flag asks (idempotent), so no caller returns an unstopped token
  // for a cancelled state.
  if (cancelled) state->stop_bridge_->fn_->source.request_stop();
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
