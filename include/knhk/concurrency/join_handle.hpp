// JoinHandle<T>: the handle to one task spawned with WorkStealingExecutor::spawn_with_handle.
//
// Thread safety: a JoinHandle is a single-owner value; the task completes it from a worker.
// Blocking: get() blocks the calling thread until the task ends, except on a worker of the same
//   executor, where it runs other queued work while it waits (so one worker never deadlocks on
//   itself). That helping is not isolated: a task run meanwhile that waits for the waiting task
//   deadlocks with it. Inside tasks prefer `co_await handle`, which suspends instead.
// Happens-before: everything the task did happens before get() returns.
// Lifetime: destroying the handle detaches the task, which still runs to completion.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <stdexcept>
#include <utility>

#include "knhk/concurrency/address_stable.hpp"
#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/detail/block_pool.hpp"
#include "knhk/concurrency/detail/executor_hooks.hpp"
#include "knhk/concurrency/detail/task_context.hpp"
#include "knhk/concurrency/detail/task_result.hpp"

namespace knhk::concurrency {

class WorkStealingExecutor;

namespace detail {

class ExecutorState;

// Runs other work of `executor` until `done` reads JoinState's kDone, or blocks when the calling
// thread is not one of its workers (src/executor.cpp). A worker with nothing to run publishes
// itself in `blocked_worker` (state kBlocked) and parks, so that the task's end wakes it.
void wait_for_completion(ExecutorState* executor, std::atomic<std::uint32_t>& done, void*& blocked_worker) noexcept;

// The states of a join state's `done_` word (the same for every T):
// kPending -> kDone; kPending -> kAwaited (a coroutine waits) -> kDone;
// kPending <-> kBlocked (a worker in get() parked with nothing to run) -> kDone; and
// kPending -> kSleeping (a thread outside the executor blocks on the word) -> kDone.
// Only kSleeping makes the task's end call notify_all(): a futex wake (a system call with
// libstdc++'s shared waiter table) on every task's end cost fork-join workloads half their time.
struct JoinDone {
  static constexpr std::uint32_t kPending = 0;
  static constexpr std::uint32_t kDone = 1;
  static constexpr std::uint32_t kAwaited = 2;
  static constexpr std::uint32_t kBlocked = 3;
  static constexpr std::uint32_t kSleeping = 4;
};

// Shared by a JoinHandle and its task record; freed by whichever lets go last.
template <class T>
class JoinState : public JoinDone, public PooledAllocation {
 public:
  JoinState(ExecutorState* executor, CancelToken token) : executor_(executor), token_(std::move(token)) {}
  JoinState(const JoinState&) = delete;
  JoinState& operator=(const JoinState&) = delete;

  void release() noexcept {
    // acq_rel: the last owner must see the other's writes before destroying the state.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  TaskResult<T>& result() noexcept { return result_; }
  const CancelToken& token() const noexcept { return token_; }
  ExecutorState* executor() const noexcept { return executor_; }

  void mark_done() noexcept { notify_done(publish_done()); }

  // mark_done() in two steps, for a caller that must do something between the result becoming
  // visible and the waiter running (a nursery child leaves its nursery in between). The caller
  // keeps its reference until notify_done() has returned.
  [[nodiscard]] std::uint32_t publish_done() noexcept {
    // acq_rel: release publishes the result to is_done()/wait()/the awaiter; acquire sees the
    // awaiter's waiter_ fields written before its compare-exchange.
    return done_.exchange(kDone, std::memory_order_acq_rel);
  }
  void notify_done(std::uint32_t before) noexcept {
    if (before == kSleeping) done_.notify_all();
    // On the awaiter's executor; its next task when this worker is one of its (the task whose
    // end this is returns to its worker's loop at once).
    if (before == kAwaited) waiter_where_.resume_next(waiter_);
    if (before == kBlocked) wake_blocked_worker(executor_, blocked_worker_);
  }
  [[nodiscard]] bool is_done() const noexcept { return done_.load(std::memory_order_acquire) == kDone; }

  // For `co_await handle`: registers the waiting coroutine; false if the task is already done
  // (then the coroutine continues at once).
  bool set_waiter(std::coroutine_handle<> waiter) noexcept {
    waiter_ = waiter;
    waiter_where_ = ResumePoint::here();
    std::uint32_t expected = kPending;
    // acq_rel: release publishes waiter_ to mark_done(); acquire (on failure) sees the result.
    return done_.compare_exchange_strong(expected, kAwaited, std::memory_order_acq_rel, std::memory_order_acquire);
  }
  void wait() noexcept { wait_for_completion(executor_, done_, blocked_worker_); }

 private:
  std::atomic<std::uint32_t> refs_{2};  // the handle and the task record
  std::atomic<std::uint32_t> done_{kPending};
  std::coroutine_handle<> waiter_;  // written before done_ becomes kAwaited
  ResumePoint waiter_where_;        // where the waiter was suspended
  void* blocked_worker_ = nullptr;  // written before done_ becomes kBlocked
  ExecutorState* executor_;
  CancelToken token_;  // the task's own token (abort() cancels it)
  TaskResult<T> result_;
};

}  // namespace detail

template <class T>
class [[nodiscard]] JoinHandle {
 public:
  JoinHandle() noexcept = default;
  explicit JoinHandle(detail::JoinState<T>* state) noexcept : state_(state) {}
  JoinHandle(JoinHandle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& other) noexcept {
    if (this != &other) {
      reset();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  ~JoinHandle() { reset(); }

  /// True once the task has ended (normally, with an exception, or cancelled before it started).
  [[nodiscard]] bool is_finished() const noexcept { return state_ != nullptr && state_->is_done(); }

  /// Waits for the task and returns its value or rethrows its exception. Call once. On the
  /// library's timer thread it throws std::logic_error instead of blocking every timer.
  T get() {
    if (state_ == nullptr) throw std::logic_error("knhk: get() on an empty JoinHandle");
    detail::refuse_blocking_on_timer_thread("JoinHandle::get()");
    state_->wait();
    return state_->result().take();
  }

  class [[nodiscard]] Awaiter {
   public:
    explicit Awaiter(detail::JoinState<T>* state) noexcept : state_(state) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    [[nodiscard]] bool await_ready() const {
      if (state_ == nullptr) throw std::logic_error("knhk: co_await on an empty JoinHandle");
      return state_->is_done();
    }
    bool await_suspend(std::coroutine_handle<> waiter) {
      // Cancelling the awaiting task aborts the awaited one, and the awaiter still waits for its
      // end: no task is left behind by a cancelled waiter. Registered before the waiter is
      // published, since the task's end may resume the waiter (and reset this) at once. Not
      // needed when the awaited task's token is a child of the token the awaiter observes (a
      // task awaiting its own child: fork-join), as cancelling the parent cancels it anyway.
      // From W4 (perf): the registration and its removal were 7 % of fib(30).
      if (detail::TaskContext* context = detail::current_task_context()) {
        if (!detail::is_child_of(state_->token(), context->observed())) {
          forward_ = context->observed().on_cancel(Abort{state_});
        }
      }
      return state_->set_waiter(waiter);
    }
    T await_resume() {
      forward_.reset();
      return state_->result().take();
    }

   private:
    struct Abort {
      detail::JoinState<T>* state;
      void operator()() const noexcept { state->token().cancel(); }
    };
    detail::JoinState<T>* state_;
    CancelRegistration forward_;
  };

  /// Suspends the awaiting coroutine (no thread is blocked) until the task ends, then resumes it
  /// on a worker of the executor it was suspended on (inline on the finishing worker if it was on
  /// none) with the task's value or exception. Await once. If the awaiting task's token is
  /// cancelled meanwhile, the awaited task is aborted and still awaited: the outcome is then
  /// whatever it ended with (Cancelled if it had not started or stopped at a cancellation-aware
  /// wait; its value if it finished anyway).
  Awaiter operator co_await() & noexcept { return Awaiter{state_}; }
  Awaiter operator co_await() && noexcept { return Awaiter{state_}; }

  /// Cancels the task's token: a task that has not started never runs and its handle ends with
  /// Cancelled; a running one sees its token cancelled (cooperative).
  void abort() noexcept {
    if (state_ != nullptr) state_->token().cancel();
  }

 private:
  void reset() noexcept {
    if (state_ != nullptr) std::exchange(state_, nullptr)->release();
  }

  detail::JoinState<T>* state_ = nullptr;
};

static_assert(address_stable<detail::JoinState<int>> && address_stable<JoinHandle<int>::Awaiter>);

}  // namespace knhk::concurrency
