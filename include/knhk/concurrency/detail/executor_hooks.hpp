// The few executor entry points that lower layers need (cancellation waiters, join handles):
// which executor is running this thread, and how to resume a coroutine on it. Defined in
// src/executor.cpp; declared here so that cancel_token.hpp need not include the executor.
#pragma once

#include <coroutine>

#include "knhk/concurrency/detail/resume.hpp"

namespace knhk::concurrency::detail {

class ExecutorState;
/// The executor whose worker is calling, else nullptr.
ExecutorState* current_executor_state() noexcept;

/// Queues `handle` to be resumed by a worker of `executor` (its local queue when called on one of
/// its workers, else the injector), with `context` as the thread's task context while it runs.
/// After the executor has stopped, resumes it inline instead.
void schedule_resume(ExecutorState* executor, std::coroutine_handle<> handle, TaskContext* context) noexcept;

/// As schedule_resume(), for a coroutine that awaited a task ending right now on this thread:
/// on a worker of `executor`, it runs as that worker's next task, without a queued record or a
/// wake-up (the worker's "next" slot, after tokio's LIFO slot). Elsewhere, or with the slot
/// taken, it is schedule_resume().
void schedule_resume_next(ExecutorState* executor, std::coroutine_handle<> handle, TaskContext* context) noexcept;

/// Wakes `worker` of `executor`, which blocked in a JoinHandle::get() (see JoinState).
void wake_blocked_worker(ExecutorState* executor, void* worker) noexcept;

/// Resumes `handle` where it belongs: on `executor` if it was suspended on one, else inline; in
/// either case with `context`, the task context it was suspended with.
inline void resume_on(ExecutorState* executor, std::coroutine_handle<> handle, TaskContext* context) noexcept {
  if (executor != nullptr) {
    schedule_resume(executor, handle, context);
  } else {
    TaskContextScope scope(context);
    resume_inline(handle);
  }
}

/// Where a suspending coroutine is to be resumed: the executor whose worker suspends it (null on
/// any other thread) and the task context it runs with. Recorded by every library awaiter.
struct ResumePoint {
  ExecutorState* executor = nullptr;
  TaskContext* context = nullptr;

  static ResumePoint here() noexcept { return {current_executor_state(), current_task_context()}; }
  void resume(std::coroutine_handle<> handle) const noexcept { resume_on(executor, handle, context); }
  /// resume(), by a task that is ending (see schedule_resume_next()).
  void resume_next(std::coroutine_handle<> handle) const noexcept {
    if (executor != nullptr) {
      schedule_resume_next(executor, handle, context);
    } else {
      resume(handle);
    }
  }
};

}  // namespace knhk::concurrency::detail
