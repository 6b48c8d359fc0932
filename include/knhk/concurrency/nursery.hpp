// Nursery: structured concurrency. No child outlives its nursery, no failure is lost, and
// cancelling a nursery stops everything under it (Trio's nurseries, Swift's task groups).
//
// A nursery owns a CancelToken (a child of the task that made it, or of a given parent) and counts
// its children. Children run on the nursery's executor like any task; their token descends from
// the nursery's, so cancelling the nursery (or anything above it) ends their cancellation-aware
// waits with Cancelled and discards the children that have not started.
//
// Failures: an exception that ends a child is a failure of the nursery, except Cancelled thrown
// while the child's token is cancelled (a cooperative stop). Under NurseryPolicy::fail_fast the
// first failure cancels the nursery. wait_all() reports every failure not reported yet, in the order
// they happened, as one NurseryError; wait_any() rethrows the first child's own failure. A failure
// that no wait reported reaches the executor's unhandled-exception handler when the nursery is
// destroyed. A spawn_value() child's failure goes to its JoinHandle as well.
//
// Thread safety: every member may be called from any thread, children included (a child may spawn
//   siblings, also while wait_all() waits). Several waits may wait at once.
// Blocking: spawn() never blocks; the waits suspend their awaiter. The destructor blocks until the
//   children have finished (after cancelling them); on a worker of the nursery's executor it runs
//   other queued work meanwhile, so it cannot deadlock a one-worker executor on its own children.
// Happens-before: everything a child did happens before the wait that sees it finish completes,
//   and before the destructor returns.
// Lifetime: the executor must outlive the nursery, and no wait on it may still be pending when it
//   is destroyed. A child must not await its own nursery's wait_all() or wait_any() (both wait
//   for every child, itself included). Destroying a nursery with children still running blocks:
//   not on the library's timer thread (it would stop the timers the children may wait for), and
//   on a worker of another executor it blocks that worker without helping, like JoinHandle::get().
#pragma once

#include <atomic>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "knhk/concurrency/address_stable.hpp"
#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/detail/executor_hooks.hpp"
#include "knhk/concurrency/detail/null_callable.hpp"
#include "knhk/concurrency/detail/task_context.hpp"
#include "knhk/concurrency/detail/trace.hpp"
#include "knhk/concurrency/detail/with_context.hpp"
#include "knhk/concurrency/errors.hpp"
#include "knhk/concurrency/executor.hpp"
#include "knhk/concurrency/join_handle.hpp"
#include "knhk/concurrency/task.hpp"

namespace knhk::concurrency {

/// fail_fast: the first failing child cancels the nursery, so its siblings stop at their next
/// cancellation-aware wait. supervise: a failure does not touch the siblings.
enum class NurseryPolicy { fail_fast, supervise };

/// How a nursery treats its children. (A bound on how many run at once is to come.)
struct NurseryOptions {
  NurseryPolicy policy = NurseryPolicy::fail_fast;
};

class Nursery;

namespace detail {

// A suspended wait on a nursery, linked in its waiter list until a child's end wakes it.
struct NurseryWaiter {
  NurseryWaiter* next = nullptr;
  std::coroutine_handle<> handle;
  ResumePoint where;
  bool any = false;  // wake once some child has ended (wait_any), else once none is left
};

// The state every child and wait shares; lives inside the Nursery (which never moves). The waiting
// protocol is described at the top of src/nursery.cpp.
class NurseryCore {
 public:
  // `lineage`: `executor` when `parent` is known to descend from its token, else null.
  NurseryCore(ExecutorState* executor, const CancelToken& parent, ExecutorState* lineage, NurseryOptions options);
  NurseryCore(const NurseryCore&) = delete;
  NurseryCore& operator=(const NurseryCore&) = delete;
  ~NurseryCore() = default;

  [[nodiscard]] ExecutorState* executor() const noexcept { return executor_; }
  [[nodiscard]] const CancelToken& token() const noexcept { return token_; }
  [[nodiscard]] ExecutorState* lineage() const noexcept { return lineage_; }
  [[nodiscard]] std::size_t task_count() const noexcept {
    return spawned_.load(std::memory_order_relaxed);  // a statistic: orders nothing
  }
  [[nodiscard]] bool idle() const noexcept;  // no child is running or queued

  // A child's token source and start rule (the executor's own rule as well, so that a fast
  // shutdown discards children of a nursery with an unrelated parent token too).
  [[nodiscard]] bool cancelled_before_start() const noexcept;

  // Around handing a child to the executor: begin_child() first, abandon_child() if that failed.
  void begin_child() noexcept;
  void abandon_child() noexcept;
  // Reports a spawn to the trace sink: it began at `start` (trace_begin()) and has just ended;
  // `children` is task_count() read before the child was published. Static: after publication
  // the child may end and the nursery go, so only its address (as an id) may be used.
  static void trace_spawn(const NurseryCore* nursery, std::int64_t start, std::size_t children) noexcept;
  // A child ended; `failure` is its exception if that is a failure of the nursery, else null.
  void child_ended(std::exception_ptr failure) noexcept;

  // True when `error` is a failure of the nursery: anything but Cancelled thrown while `observed`
  // (the child's token) is cancelled.
  [[nodiscard]] static bool is_failure(const std::exception_ptr& error, const CancelToken& observed) noexcept;

  // Registers `waiter` unless what it waits for has happened already (then returns false and the
  // caller goes on without suspending).
  bool add_waiter(NurseryWaiter* waiter);

  // After wait_all's wait: throws NurseryError with every failure not reported yet; with none,
  // Cancelled if the nursery was cancelled from outside (`waiter`: the awaiting task's token, or
  // null), since then the work did not all happen. Its own cancel(), fail-fast and wait_any are
  // no error.
  void throw_failures(const CancelToken* waiter);
  // Whether the nursery was cancelled from outside: its parent token or its executor's was (or,
  // by the waiter's forwarding, `waiter`), not only its own token.
  [[nodiscard]] bool cancelled_from_outside(const CancelToken* waiter) const noexcept;
  // nursery_scope's end when its body failed with `body_error` and the children have been waited
  // for: rethrows the body's exception as it is when no child failed, else NurseryError with the
  // body's exception first, then every child failure not reported yet.
  [[noreturn]] void throw_with_body_failure(std::exception_ptr body_error);
  // After wait_any's waits: the first ended child's failure, unless a wait reported it already.
  [[nodiscard]] std::exception_ptr take_first_failure();
  // Blocks (helping on a worker of the executor) until no child is left.
  void join_blocking() noexcept;
  // The destructor's last step: waits until no child's wake-up still touches this state, then
  // hands failures no wait reported to the executor's unhandled-exception handler.
  void settle() noexcept;

 private:
  [[nodiscard]] static bool must_wake(std::uint64_t word) noexcept;
  void leave() noexcept;
  void wake() noexcept;

  // live children << kLiveShift | wakers in flight << kWakerShift | kAnyWaiting | kAllWaiting.
  // Not over-aligned to a cache line of its own: a Nursery often lives in a coroutine frame,
  // which g++ 12 does not align beyond 16 bytes (measured: W7 got slower, not faster, with it).
  std::atomic<std::uint64_t> word_{0};
  std::atomic<bool> ended_any_{false};  // some child has ended (wait_any's condition)
  std::atomic<std::size_t> spawned_{0};
  ExecutorState* const executor_;
  ExecutorState* const lineage_;
  const NurseryPolicy policy_;
  CancelToken parent_;  // for cancelled_from_outside()
  CancelToken token_;

  std::mutex mutex_;  // guards the members below
  NurseryWaiter* waiters_ = nullptr;
  std::vector<std::exception_ptr> failures_;  // not reported by a wait yet, oldest first
  std::exception_ptr first_failure_;          // the first ended child's failure, if it failed
};
static_assert(address_stable<NurseryCore>);

// Waits on a nursery: for no child left (all), or for some child to have ended (any). While it
// waits, cancelling the awaiting task's token cancels the nursery (its children are still waited
// for: nothing is left behind by a cancelled waiter).
class [[nodiscard]] NurseryWaitAwaiter {
 public:
  NurseryWaitAwaiter(NurseryCore* core, bool any) noexcept : core_(core) { node_.any = any; }
  NurseryWaitAwaiter(const NurseryWaitAwaiter&) = delete;
  NurseryWaitAwaiter& operator=(const NurseryWaitAwaiter&) = delete;

  [[nodiscard]] bool await_ready() const noexcept { return !node_.any && core_->idle(); }
  bool await_suspend(std::coroutine_handle<> waiter);
  void await_resume() noexcept { forward_.reset(); }

 private:
  struct CancelNursery {
    NurseryCore* core;
    void operator()() const noexcept { core->token().cancel(); }
  };
  NurseryCore* core_;
  NurseryWaiter node_;
  CancelRegistration forward_;
};
static_assert(address_stable<NurseryWaitAwaiter>);

// Where a plain child's outcome goes (see executor.hpp for the sink interface).
struct NurserySink {
  NurseryCore* nursery;
  std::exception_ptr failure{};
  [[nodiscard]] ExecutorState* executor_state() const noexcept { return nursery->executor(); }

  // The nursery's token is shared by its plain children: current_token() makes a child of it on
  // first request.
  [[nodiscard]] TaskTokenSource token_source() const noexcept { return {&nursery->token(), true, nursery->lineage()}; }
  [[nodiscard]] bool cancelled_before_start() const noexcept { return nursery->cancelled_before_start(); }
  void cancelled() const noexcept { note_cancelled_before_start(nursery->executor()); }
  void value() const noexcept {}
  void error(std::exception_ptr error) noexcept {
    if (NurseryCore::is_failure(error, nursery->token())) failure = std::move(error);
  }
  void finish() noexcept { nursery->child_ended(std::move(failure)); }
};

// A spawn_value() child: its outcome goes to its JoinHandle, and its failure to the nursery too.
// The handle is complete before the nursery counts the child as ended, so after wait_all() every
// such handle is finished; its awaiter is resumed only after the child has left the nursery, since
// an awaiter resumed inline may go on to destroy the nursery, which would then wait for this child.
template <class T>
struct NurseryValueSink {
  NurseryCore* nursery;
  JoinState<T>* state;
  std::exception_ptr failure{};
  [[nodiscard]] ExecutorState* executor_state() const noexcept { return nursery->executor(); }

  [[nodiscard]] TaskTokenSource token_source() const noexcept {
    return {&state->token(), false, nursery->lineage()};  // its own, a child of the nursery's
  }
  [[nodiscard]] bool cancelled_before_start() const noexcept {
    return state->token().is_cancelled() || nursery->cancelled_before_start();
  }
  void cancelled() const {
    note_cancelled_before_start(nursery->executor());
    state->result().set_exception(std::make_exception_ptr(Cancelled{}));
  }
  template <class... V>
  void value(V&&... v) {
    state->result().set_value(std::forward<V>(v)...);
  }
  void error(std::exception_ptr error) noexcept {
    if (NurseryCore::is_failure(error, state->token())) failure = error;
    state->result().set_exception(std::move(error));
  }
  void finish() noexcept {
    const std::uint32_t before = state->publish_done();
    nursery->child_ended(std::move(failure));  // the nursery may be gone after this
    state->notify_done(before);
    state->release();
  }
};

struct NurseryAccess;

}  // namespace detail

class Nursery {
 public:
  /// A nursery whose token is a child of current_token()'s (so a nursery made inside a nursery's
  /// child is cancelled with its parent); made outside any task, a child of the executor's token.
  explicit Nursery(WorkStealingExecutor& ex, NurseryPolicy policy = NurseryPolicy::fail_fast);
  Nursery(WorkStealingExecutor& ex, NurseryOptions options);
  /// A nursery whose token is a child of `parent`. The executor's token still discards children
  /// that have not started.
  Nursery(WorkStealingExecutor& ex, const CancelToken& parent, NurseryPolicy policy = NurseryPolicy::fail_fast);
  Nursery(WorkStealingExecutor& ex, const CancelToken& parent, NurseryOptions options);
  /// Cancels the children still running and waits until all have finished (helping on a worker of
  /// the executor); then reports failures no wait reported to the executor's handler.
  ~Nursery();

  Nursery(const Nursery&) = delete;
  Nursery& operator=(const Nursery&) = delete;
  Nursery(Nursery&&) = delete;
  Nursery& operator=(Nursery&&) = delete;

  /// Spawns a child: a callable `void()`, a callable returning Task<void>, or a Task<void> (as
  /// WorkStealingExecutor::spawn). Its current_token() descends from token(). Throws
  /// ExecutorShutdown from outside the executor once it shuts down, std::invalid_argument for a
  /// null callable or an empty Task.
  template <class F>
  void spawn(F&& work);

  /// Spawns a child whose value (or exception) its handle gives; it still belongs to the nursery
  /// (counted, waited for, its failure reported). Its token is its own, a child of token(), which
  /// JoinHandle::abort() cancels; a child ended that way is not a failure.
  template <class F>
  auto spawn_value(F&& work) -> JoinHandle<typename detail::SpawnResult<std::decay_t<F>>::type>;

  /// Completes when every child has finished, children spawned while waiting included. If any
  /// failed, throws NurseryError with every failure not reported yet, oldest first. With no
  /// failure, throws Cancelled when the nursery was cancelled from outside (its parent token, the
  /// executor's token, or the task awaiting this wait was cancelled), so that the caller learns the
  /// work did not all happen; its own cancel(), a fail-fast failure and wait_any() are no error.
  [[nodiscard]] Task<void> wait_all();

  /// Completes when some child has finished (at once when one has, or when there are none), then
  /// cancels the nursery and waits until every other child has finished. Rethrows the first
  /// child's exception if that was a failure; other failures stay for wait_all() or the destructor.
  [[nodiscard]] Task<void> wait_any();

  void cancel() noexcept { core_.token().cancel(); }
  [[nodiscard]] const CancelToken& token() const noexcept { return core_.token(); }

  /// Children spawned so far (those refused by a shut-down executor are not counted).
  [[nodiscard]] std::size_t task_count() const noexcept { return core_.task_count(); }
  [[nodiscard]] bool is_empty() const noexcept { return task_count() == 0; }

  [[nodiscard]] WorkStealingExecutor& executor() const noexcept { return ex_; }

 private:
  friend struct detail::NurseryAccess;

  WorkStealingExecutor& ex_;
  detail::NurseryCore core_;
};

namespace detail {

struct NurseryAccess {
  static NurseryCore& core(Nursery& nursery) noexcept { return nursery.core_; }
  static ExecutorState* executor(WorkStealingExecutor& ex) noexcept { return ex.state_.get(); }
};

// Waits until no child is left, without reporting failures (they stay for a later wait or the
// destructor): nursery_scope()'s path when its body threw.
Task<void> join_children(NurseryCore& core);

}  // namespace detail

template <class F>
void Nursery::spawn(F&& work) {
  static_assert(std::is_void_v<typename detail::SpawnResult<std::decay_t<F>>::type>,
                "Nursery::spawn takes a callable returning void, a Task<void> or a callable returning one; "
                "use spawn_value for results");
  detail::check_work(work);
  const std::int64_t trace_start = detail::trace_begin();
  core_.begin_child();
  const std::size_t children = trace_start != 0 ? core_.task_count() : 0;
  try {
    detail::spawn_with_sink<void>(core_.executor(), std::forward<F>(work), detail::NurserySink{&core_});
  } catch (...) {
    core_.abandon_child();
    throw;
  }
  if (trace_start != 0) detail::NurseryCore::trace_spawn(&core_, trace_start, children);
}

template <class F>
auto Nursery::spawn_value(F&& work) -> JoinHandle<typename detail::SpawnResult<std::decay_t<F>>::type> {
  using R = typename detail::SpawnResult<std::decay_t<F>>::type;
  detail::check_work(work);
  const std::int64_t trace_start = detail::trace_begin();
  core_.begin_child();
  const std::size_t children = trace_start != 0 ? core_.task_count() : 0;
  try {
    auto handle = detail::spawn_joinable<R>(core_.executor(), std::forward<F>(work), core_.token().child_token(),
                                            [this](detail::JoinState<R>* join) {
                                              return detail::NurseryValueSink<R>{&core_, join};
                                            });
    if (trace_start != 0) detail::NurseryCore::trace_spawn(&core_, trace_start, children);
    return handle;
  } catch (...) {
    core_.abandon_child();
    throw;
  }
}

/// What nursery_scope() accepts: a callable taking the nursery and returning Task<void>.
template <class B>
concept NurseryBody = std::invocable<B&, Nursery&> && std::same_as<std::invoke_result_t<B&, Nursery&>, Task<void>>;

namespace detail {

template <class Body>
Task<void> nursery_scope_impl(WorkStealingExecutor& ex, NurseryOptions options, Body body) {
  Nursery nursery(ex, options);
  NurseryCore& core = NurseryAccess::core(nursery);
  // The body's current_token() is the nursery's token itself: a sleep or a nursery in the body
  // ends with the nursery (a fail-fast failure of a child stops the body too).
  TaskContext body_context(TaskTokenSource{&nursery.token(), false, core.lineage()});
  std::exception_ptr body_error;
  try {
    Task<void> work = std::invoke(body, nursery);
    co_await WithContextAwaiter<void>(&body_context, work);
  } catch (...) {
    body_error = std::current_exception();
  }
  // A Cancelled that reached the body because the nursery was cancelled is no failure of the
  // body: what the children did (or the outside cancellation) decides, by wait_all's rules.
  if (!body_error || !NurseryCore::is_failure(body_error, nursery.token())) {
    co_await nursery.wait_all();
    co_return;
  }
  nursery.cancel();
  co_await join_children(core);
  core.throw_with_body_failure(std::move(body_error));
}

}  // namespace detail

/// Opens a nursery (its token a child of current_token()'s; `options` as for a Nursery), runs
/// `body` with it, with current_token() = the nursery's token, then waits for every child by
/// wait_all()'s rules. If `body` throws, the nursery is cancelled and the children are waited
/// for; then the body's exception propagates as it is when no child failed, else NurseryError
/// with the body's exception first and the children's after it. A Cancelled that reached the body
/// because the nursery itself was cancelled is not a failure of the body. `body` (a lambda's
/// captures included) lives until this completes. A null function pointer or an empty
/// std::function throws std::invalid_argument at the call.
template <NurseryBody Body>
[[nodiscard]] Task<void> nursery_scope(WorkStealingExecutor& ex, NurseryOptions options, Body body) {
  detail::reject_null_callable(body, "nursery_scope: `body`");
  return detail::nursery_scope_impl(ex, options, std::move(body));
}

template <NurseryBody Body>
[[nodiscard]] Task<void> nursery_scope(WorkStealingExecutor& ex, Body body) {
  return nursery_scope(ex, NurseryOptions{}, std::move(body));
}

}  // namespace knhk::concurrency
