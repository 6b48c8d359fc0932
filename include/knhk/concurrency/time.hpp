// Time and cancellation-aware waiting: current_token, sleep_for, sleep_until, yield_now,
// cancel_after, run_until_cancelled.
//
// Every task has a token (current_token()); the waits here observe it, so cancelling a task's
// scope (its nursery, its JoinHandle::abort(), the executor's token) ends its sleeps at once with
// Cancelled. Timers are served by the library's own timer thread (one hierarchical wheel for the
// process, docs/ARCHITECTURE.md): a sleeping task holds no thread, and a fired sleep resumes on a
// worker of the executor it was suspended on (on the timer thread if it was on none).
//
// The timer thread: a sleep awaited off any executor continues there, and a cancel_after()
// deadline runs the token's callbacks (and resumes its off-executor waiters) there. Keep such code
// short; the blocking waits (sync_wait, JoinHandle::get, block_on) throw std::logic_error there,
// since they would stop every timer. `co_await ex.schedule()` moves onto an executor.
//
// Thread safety: every function may be called from any thread.
// Blocking: none of them blocks a thread; the Tasks suspend their awaiter.
// Happens-before: cancel() happens before the Cancelled it causes is thrown.
// Lifetime: a sleeping coroutine's frame must not be destroyed while it sleeps (as for any
//   coroutine that another thread may resume); Tasks returned here copy the tokens they are given.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/detail/executor_hooks.hpp"
#include "knhk/concurrency/detail/task_context.hpp"
#include "knhk/concurrency/detail/with_context.hpp"
#include "knhk/concurrency/errors.hpp"
#include "knhk/concurrency/task.hpp"

namespace knhk::concurrency {

/// The token of the task running on this thread: a nursery child's descends from its nursery's, a
/// spawn_with_handle task has its own (JoinHandle::abort() cancels it), any other task gets a child
/// of its executor's token, and work run by run_until_cancelled() gets one linked to that call's
/// token. Outside any task: a new token that nothing cancels.
[[nodiscard]] CancelToken current_token();

/// Suspends for `d` (at least: timers tick every 250 us and never fire early) without blocking a thread. Throws
/// Cancelled as soon as the token is cancelled: `token`, or current_token() of the task awaiting
/// it. An already cancelled token throws at once, even when `d <= 0`; otherwise `d <= 0`
/// completes at once. The sleep starts when the Task is awaited.
[[nodiscard]] Task<void> sleep_for(std::chrono::nanoseconds d);
[[nodiscard]] Task<void> sleep_for(std::chrono::nanoseconds d, const CancelToken& token);

/// Suspends until `deadline`; otherwise as sleep_for().
[[nodiscard]] Task<void> sleep_until(std::chrono::steady_clock::time_point deadline);
[[nodiscard]] Task<void> sleep_until(std::chrono::steady_clock::time_point deadline, const CancelToken& token);

/// Cancels `token` once `d` has passed, unless it was cancelled earlier (Trio's move_on_after).
/// Cancelling the token earlier releases the timer at once. The timer keeps the token alive until
/// then. `d <= 0` cancels it now, on this thread.
void cancel_after(const CancelToken& token, std::chrono::nanoseconds d);

/// Timers linked in the library's timer service right now (sleeps and cancel_after deadlines).
/// For tests and monitoring: a cancelled sleep leaves none behind.
[[nodiscard]] std::size_t pending_timers() noexcept;

namespace detail {

// Queues `handle` on `executor`'s global queue, behind the work already waiting there.
void schedule_yield(ExecutorState* executor, std::coroutine_handle<> handle, TaskContext* context) noexcept;

}  // namespace detail

/// The awaitable of yield_now().
class [[nodiscard]] YieldAwaiter {
 public:
  YieldAwaiter() noexcept = default;
  YieldAwaiter(const YieldAwaiter&) = delete;
  YieldAwaiter& operator=(const YieldAwaiter&) = delete;

  [[nodiscard]] bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) noexcept;
  void await_resume() const;
};
static_assert(address_stable<YieldAwaiter>);

/// `co_await yield_now()`: on a worker, re-queues the task behind the work already waiting (on the
/// executor's global queue, which every worker reads after its own), so a task that polls a flag
/// in a loop lets its siblings run, even on one worker. Elsewhere it yields the thread. Then, like
/// every wait here, it throws Cancelled if the task's token is cancelled (Trio's checkpoint): a
/// polling loop ends with the task's scope.
[[nodiscard]] inline YieldAwaiter yield_now() noexcept { return {}; }

inline bool YieldAwaiter::await_suspend(std::coroutine_handle<> waiter) noexcept {
  detail::ExecutorState* const executor = detail::current_executor_state();
  if (executor == nullptr) {
    std::this_thread::yield();
    return false;
  }
  detail::schedule_yield(executor, waiter, detail::current_task_context());
  return true;
}

inline void YieldAwaiter::await_resume() const {
  if (const detail::TaskContext* context = detail::current_task_context(); context != nullptr) {
    if (context->observed().is_cancelled()) throw Cancelled();
  }
}

namespace detail {

// What run_until_cancelled can hand back in a std::optional (void has its own overload).
template <class T>
concept OptionalValue = !std::is_void_v<T> && !std::is_reference_v<T>;

// The token of run_until_cancelled's work: a child of the caller's token, also cancelled when the
// enclosing task's token is (so cancelling the enclosing scope still stops the work).
class LinkedToken {
 public:
  explicit LinkedToken(const CancelToken& token) : token_(token.child_token()) {
    if (outer_ != nullptr) link_ = outer_->on_cancel(CancelInner{&token_});
  }
  LinkedToken(const LinkedToken&) = delete;
  LinkedToken& operator=(const LinkedToken&) = delete;

  TaskContext* context() noexcept { return &context_; }

  /// Whether the enclosing task's token (the scope around this call) is cancelled: then a
  /// Cancelled is not this call's to absorb, even if its own token is cancelled too.
  [[nodiscard]] bool outer_cancelled() const noexcept { return outer_ != nullptr && outer_->is_cancelled(); }

 private:
  struct CancelInner {
    const CancelToken* inner;
    void operator()() const noexcept { inner->cancel(); }
  };
  // The enclosing task's token (it outlives this call: it belongs to the awaiting task's context).
  const CancelToken* outer_ = current_task_context() != nullptr ? &current_task_context()->observed() : nullptr;
  CancelToken token_;
  CancelRegistration link_;  // declared after token_: deregistered before token_ dies
  TaskContext context_{TaskTokenSource{&token_, false}};
};

static_assert(address_stable<LinkedToken>);

// Absorbs a Cancelled only when `token` was cancelled and the enclosing scope was not (Trio's
// rule for nested cancel scopes): else the code after this call would run on in a cancelled scope.
inline void rethrow_unless_absorbed(const CancelToken& token, const LinkedToken& linked) {
  if (!token.is_cancelled() || linked.outer_cancelled()) throw;
}

template <class T>
Task<std::optional<T>> run_until_cancelled_impl(CancelToken token, Task<T> work) {
  LinkedToken linked(token);
  if (token.is_cancelled()) {  // never started: nothing to cancel
    if (linked.outer_cancelled()) throw Cancelled();
    co_return std::nullopt;
  }
  try {
    co_return co_await WithContextAwaiter<T>(linked.context(), work);
  } catch (const Cancelled&) {
    rethrow_unless_absorbed(token, linked);
  }
  co_return std::nullopt;
}

inline Task<bool> run_until_cancelled_void(CancelToken token, Task<void> work) {
  LinkedToken linked(token);
  if (token.is_cancelled()) {
    if (linked.outer_cancelled()) throw Cancelled();
    co_return false;
  }
  try {
    co_await WithContextAwaiter<void>(linked.context(), work);
    co_return true;
  } catch (const Cancelled&) {
    rethrow_unless_absorbed(token, linked);
  }
  co_return false;
}

}  // namespace detail

/// Runs `work` (tokio's `select!` on a token and a future) with current_token() linked to `token`:
/// cancelled when `token` is, or when the enclosing task's token is. Returns the value whenever
/// `work` completes normally (even if `token` was cancelled meanwhile); empty when `work` ended with
/// Cancelled and `token` is cancelled; any other exception of `work` propagates (Cancelled too, when
/// it came from the enclosing task rather than `token`). If `token` is already cancelled, `work`
/// never starts. Either way `work` has finished when this completes: nothing is left running.
template <detail::OptionalValue T>
[[nodiscard]] Task<std::optional<T>> run_until_cancelled(const CancelToken& token, Task<T> work) {
  return detail::run_until_cancelled_impl<T>(token, std::move(work));
}

/// For work without a value: true when `work` finished, false when `token` cancelled it.
[[nodiscard]] inline Task<bool> run_until_cancelled(const CancelToken& token, Task<void> work) {
  return detail::run_until_cancelled_void(token, std::move(work));
}

}  // namespace knhk::concurrency
