// CancelToken, CancelRegistration, CancelScope: hierarchical cooperative cancellation.
//
// A CancelToken is a cheap handle to a shared cancellation state. Tokens form a tree: a child is
// cancelled whenever its parent is, never the other way round. Cancellation is pushed down the
// tree eagerly when cancel() runs, so is_cancelled() is a single atomic load at any depth.
//
// Thread safety: every member of CancelToken may be called from any thread at any time; copies
//   share one state. CancelRegistration and CancelScope are single-owner values.
// Blocking: cancel() runs the callbacks registered on the token and its descendants on the
//   calling thread and returns after they have run (the ones another concurrent cancel() claimed
//   may still be running there). ~CancelRegistration() waits while its callback runs on another
//   thread. Nothing else blocks.
// Happens-before: everything a thread did before cancel() happens before any callback it runs,
//   and before anything that observes the cancellation (is_cancelled() returning true, a
//   cancelled() waiter resuming, a std::stop_token reporting stop_requested()).
// Lifetime: a state lives while a token, a registration, an awaiter or a child refers to it. When
//   the last reference to a child goes, it is unlinked from its parent, so creating and dropping
//   children never grows the parent.
#pragma once

#include <concepts>
#include <coroutine>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "knhk/concurrency/address_stable.hpp"
#include "knhk/concurrency/detail/cancel_state.hpp"
#include "knhk/concurrency/detail/executor_hooks.hpp"
#include "knhk/concurrency/detail/null_callable.hpp"
#include "knhk/concurrency/detail/resume.hpp"
#include "knhk/concurrency/detail/trace.hpp"

namespace knhk::concurrency {

class CancelRegistration;
class CancelledAwaiter;
class CancelToken;

/// What on_cancel() accepts: a callable `void()` that can be stored (decayed) and invoked as an
/// lvalue. It must not throw.
template <class F>
concept CancelCallbackFunction =
    std::invocable<std::add_lvalue_reference_t<std::decay_t<F>>> && std::constructible_from<std::decay_t<F>, F>;

namespace detail {
// The library's own way to the state behind a token (the executor registers waiters with it).
struct CancelTokenAccess {
  static CancelStateHeader* state(const CancelToken& token) noexcept;
  static CancelToken empty() noexcept;  // a handle to no state (a moved-from token), allocating nothing
};
}  // namespace detail

/// A handle to a node of the cancellation tree.
class CancelToken {
 public:
  /// A new root token, not cancelled.
  CancelToken() : state_(detail::new_root_state()) {}

  CancelToken(const CancelToken& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) detail::retain_state(state_);
  }
  CancelToken(CancelToken&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  CancelToken& operator=(CancelToken other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~CancelToken() {
    if (state_ != nullptr) detail::release_state(state_);
  }

  // A moved-from token behaves as a root that is never cancelled: it may be assigned to or
  // destroyed; child_token() gives a new root, cancel() and on_cancel() do nothing.

  /// A token cancelled whenever this one (or any ancestor) is. Starts cancelled if this one is.
  [[nodiscard]] CancelToken child_token() const { return CancelToken{detail::new_child_state(state_)}; }

  /// Cancels this token and every descendant; runs their callbacks; wakes their waiters.
  /// Idempotent. After it returns, every descendant reports is_cancelled().
  void cancel() const noexcept { detail::cancel_state(state_); }

  /// One acquire load, whatever the depth of the tree. A moved-from token reports false.
  [[nodiscard]] bool is_cancelled() const noexcept {
    // acquire: pairs with the release store in cancel(); the canceller's prior writes are visible.
    return state_ != nullptr && state_->cancelled.load(std::memory_order_acquire);
  }

  /// Awaitable: `co_await token.cancelled()` completes when the token is cancelled (at once if
  /// it already is). A coroutine suspended on an executor's worker is scheduled back onto that
  /// executor; one suspended elsewhere is resumed inline by cancel().
  [[nodiscard]] CancelledAwaiter cancelled() const noexcept;

  /// Runs `callback` once when the token is cancelled, on the cancelling thread; inline, before
  /// returning, if it already is. Destroying the returned registration deregisters it.
  /// The callback must not throw (if it does, the program terminates, as with std::stop_callback).
  /// A null function pointer or an empty std::function throws std::invalid_argument.
  template <CancelCallbackFunction F>
  [[nodiscard]] CancelRegistration on_cancel(F&& callback) const;

  /// A std::stop_token that reports stop_requested() once this token is cancelled.
  [[nodiscard]] std::stop_token stop_token() const { return detail::state_stop_token(state_); }

  /// True when both handles share one state.
  friend bool operator==(const CancelToken& a, const CancelToken& b) noexcept { return a.state_ == b.state_; }

 private:
  friend struct detail::CancelTokenAccess;
  explicit CancelToken(detail::CancelStateHeader* adopted) noexcept : state_(adopted) {}

  detail::CancelStateHeader* state_;
};

namespace detail {
inline CancelStateHeader* CancelTokenAccess::state(const CancelToken& token) noexcept { return token.state_; }
inline CancelToken CancelTokenAccess::empty() noexcept { return CancelToken{nullptr}; }

/// The number of children linked under `token` (for tests and the benchmark's checks). A child
/// whose last reference is being dropped on another thread may still be counted for a moment.
inline std::size_t linked_child_count(const CancelToken& token) noexcept {
  return linked_child_count(CancelTokenAccess::state(token));
}

/// True when `child`'s node was made as a child of `parent`'s (so cancelling `parent` cancels
/// it). Reads a link written before the child token was shared, never changed afterwards.
bool is_child_of(const CancelToken& child, const CancelToken& parent) noexcept;

/// Reports a CancelScope's creation (created) or drop to the installed trace sink (src/cancel_token.cpp).
void trace_cancel_scope(bool created, const CancelToken& token, bool auto_cancel, std::int64_t start) noexcept;
}  // namespace detail

/// Move-only RAII registration of an on_cancel callback. Destroying it deregisters the callback;
/// if the callback is running on another thread at that moment, the destructor waits for it.
/// A live registration keeps its token's state alive and linked to its parent.
class [[nodiscard]] CancelRegistration {
 public:
  CancelRegistration() noexcept = default;
  CancelRegistration(CancelRegistration&& other) noexcept
      : state_(std::exchange(other.state_, nullptr)), callback_(std::exchange(other.callback_, nullptr)) {}
  CancelRegistration& operator=(CancelRegistration&& other) noexcept {
    if (this != &other) {
      reset();
      state_ = std::exchange(other.state_, nullptr);
      callback_ = std::exchange(other.callback_, nullptr);
    }
    return *this;
  }
  CancelRegistration(const CancelRegistration&) = delete;
  CancelRegistration& operator=(const CancelRegistration&) = delete;
  ~CancelRegistration() { reset(); }

  /// Deregisters now (same as destruction). Afterwards the callback will not start.
  void reset() noexcept {
    if (callback_ == nullptr) return;
    detail::CancelCallback* callback = std::exchange(callback_, nullptr);
    if (detail::remove_cancel_callback(state_, callback)) {
      callback->manage(callback, detail::CancelCallback::Op::delete_node);
    }
    detail::release_state(std::exchange(state_, nullptr));
  }

  /// True while this registration holds a callback that has not been deregistered. A callback
  /// that already ran, or ran inline at registration, leaves it active until reset().
  [[nodiscard]] bool active() const noexcept { return callback_ != nullptr; }

 private:
  friend class CancelToken;
  CancelRegistration(detail::CancelStateHeader* state, detail::CancelCallback* callback) noexcept
      : state_(state), callback_(callback) {}

  detail::CancelStateHeader* state_ = nullptr;
  detail::CancelCallback* callback_ = nullptr;  // a heap node with a `manage` function
};

/// The awaitable returned by CancelToken::cancelled(). Not copyable or movable: the compiler
/// materialises it in the awaiting coroutine's frame. Suspending registers a small heap node whose
/// callback resumes the waiter; destroying the awaiter (the frame died while waiting) deregisters
/// it without ever waiting for a cancel that has not reached it.
/// Precondition: a frame suspended here is not destroyed while another thread may be cancelling
/// its token (destroying a coroutine that another thread may resume is a race in any library).
class [[nodiscard]] CancelledAwaiter {
 public:
  explicit CancelledAwaiter(detail::CancelStateHeader* state) noexcept : state_(state) {
    if (state_ != nullptr) detail::retain_state(state_);
  }
  CancelledAwaiter(const CancelledAwaiter&) = delete;
  CancelledAwaiter& operator=(const CancelledAwaiter&) = delete;
  ~CancelledAwaiter() {
    if (state_ == nullptr) return;
    if (node_ != nullptr && detail::remove_cancel_callback(state_, node_)) {
      node_->manage(node_, detail::CancelCallback::Op::delete_node);
    }
    detail::release_state(state_);
  }

  [[nodiscard]] bool await_ready() const noexcept {
    // acquire: pairs with the release store in cancel().
    return state_ == nullptr || state_->cancelled.load(std::memory_order_acquire);
  }
  bool await_suspend(std::coroutine_handle<> waiter);  // defined below
  void await_resume() const noexcept {}

 private:
  detail::CancelStateHeader* state_;
  detail::CancelCallback* node_ = nullptr;
};

static_assert(address_stable<CancelledAwaiter>);

inline CancelledAwaiter CancelToken::cancelled() const noexcept { return CancelledAwaiter{state_}; }

namespace detail {

// The heap node of an on_cancel() registration. Its payload (the user's callable) can be
// destroyed separately from its memory, so that a deregistration never waits for a cancel that
// has detached the node but not reached it yet (the memory then goes to the runner).
template <class F>
struct CancelCallbackFn final : CancelCallback {
  template <class G>
  explicit CancelCallbackFn(G&& fn)
      : CancelCallback(&CancelCallbackFn::invoke_fn, &CancelCallbackFn::manage_fn), fn_(std::forward<G>(fn)) {}

  static void invoke_fn(CancelCallback* self) noexcept { (*static_cast<CancelCallbackFn*>(self)->fn_)(); }
  static void manage_fn(CancelCallback* self, Op op) noexcept {
    auto* node = static_cast<CancelCallbackFn*>(self);
    if (op == Op::destroy_payload) {
      node->fn_.reset();
    } else {
      delete node;
    }
  }

  std::optional<F> fn_;
};

// The callback of a CancelledAwaiter: resumes the waiting coroutine on the executor it was
// suspended on, or inline on the cancelling thread if it was on none.
struct ResumeWaiter {
  std::coroutine_handle<> waiter;
  ResumePoint where;
  void operator()() const noexcept { where.resume(waiter); }
};

// Runs a callback inline; noexcept so that a throwing callback terminates here, as documented.
template <class F>
void invoke_cancel_callback(F& fn) noexcept {
  fn();
}

}  // namespace detail

static_assert(CancelCallbackFunction<detail::ResumeWaiter>, "the library's own callback models the concept");

inline bool CancelledAwaiter::await_suspend(std::coroutine_handle<> waiter) {
  auto node = std::make_unique<detail::CancelCallbackFn<detail::ResumeWaiter>>(
      detail::ResumeWaiter{waiter, detail::ResumePoint::here()});
  // Set before linking: once linked, cancel() may resume the waiter, which may destroy *this
  // before add_cancel_callback() returns; nothing of *this is touched after it.
  node_ = node.get();
  if (!detail::add_cancel_callback(state_, node.get())) {
    node_ = nullptr;  // cancelled meanwhile: nothing was linked, continue at once
    return false;
  }
  (void)node.release();  // owned through node_ now
  return true;
}

template <CancelCallbackFunction F>
CancelRegistration CancelToken::on_cancel(F&& callback) const {
  using Fn = std::decay_t<F>;
  // At the call: a null callback stored now would end the process later, on whichever thread cancels.
  detail::reject_null_callable(callback, "CancelToken::on_cancel: `callback`");
  if (state_ == nullptr) return {};  // a moved-from token is never cancelled
  if (is_cancelled()) {
    Fn fn(std::forward<F>(callback));
    detail::invoke_cancel_callback(fn);
    return {};
  }
  auto node = std::make_unique<detail::CancelCallbackFn<Fn>>(std::forward<F>(callback));
  if (!detail::add_cancel_callback(state_, node.get())) {
    detail::invoke_cancel_callback(*node->fn_);  // cancelled in between: run inline
    return {};
  }
  detail::retain_state(state_);
  return CancelRegistration{state_, node.release()};
}

/// RAII owner of a token: cancels it on destruction unless released (Trio's cancel scope,
/// tokio's DropGuard). Move-only; a moved-from scope cancels nothing.
class CancelScope {
 public:
  /// Owns a new root token.
  CancelScope() : CancelScope(detail::trace_begin(), CancelToken{}) {}
  /// Owns `parent.child_token()`.
  explicit CancelScope(const CancelToken& parent) : CancelScope(detail::trace_begin(), parent.child_token()) {}

  CancelScope(CancelScope&& other) noexcept
      : token_(std::move(other.token_)), armed_(std::exchange(other.armed_, false)) {}
  CancelScope& operator=(CancelScope&& other) noexcept {
    if (this != &other) {
      if (armed_) token_.cancel();
      token_ = std::move(other.token_);
      armed_ = std::exchange(other.armed_, false);
    }
    return *this;
  }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;
  ~CancelScope() {
    const std::int64_t start = detail::trace_begin();
    if (armed_) token_.cancel();
    if (start != 0) detail::trace_cancel_scope(false, token_, armed_, start);
  }

  [[nodiscard]] const CancelToken& token() const noexcept { return token_; }
  void cancel() const noexcept { token_.cancel(); }
  [[nodiscard]] bool is_cancelled() const noexcept { return token_.is_cancelled(); }

  /// Disarms the scope and hands back its token, not cancelled (the seed's `leak`).
  [[nodiscard]] CancelToken release() && noexcept {
    armed_ = false;
    return std::move(token_);
  }

 private:
  // `start`: of the creation span, read along with the token's making; 0 when not tracing.
  CancelScope(std::int64_t start, CancelToken token) noexcept : token_(std::move(token)) {
    if (start != 0) detail::trace_cancel_scope(true, token_, armed_, start);
  }

  CancelToken token_;
  bool armed_ = true;
};

}  // namespace knhk::concurrency
