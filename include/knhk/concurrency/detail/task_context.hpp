// TaskContext: what "the task running on this thread" means, for current_token() and for the
// library's cancellation-aware waits.
//
// Each task has one context: a callable task's lives on the worker's stack while it runs, a
// coroutine task's in its driver's promise, run_until_cancelled()'s in its own frame. A thread
// points at the context of what it runs in `tls_task_context`:
//  1. A worker saves the pointer before it runs a record and restores it afterwards, so a task that
//     helps (JoinHandle::get) finds its own context again when it goes on.
//  2. Every library awaiter that suspends a coroutine records the pointer, and the resumption it
//     schedules (a resume record, or an inline resume) sets it back before the coroutine runs. So a
//     coroutine sees its task's context wherever it resumes. A coroutine resumed by user code on
//     some other thread sees that thread's context instead.
//  3. A context outlives every suspension that recorded it: it belongs to a frame or stack that
//     stays alive until the task (or run_until_cancelled's work) has ended.
//
// Thread safety: a context is used by one thread at a time, whichever runs its task.
#pragma once

#include "knhk/concurrency/address_stable.hpp"
#include "knhk/concurrency/cancel_token.hpp"

namespace knhk::concurrency::detail {

class ExecutorState;

// Where a task's token comes from. `token` outlives the task. A `shared` token belongs to others
// too (the executor's root, a nursery's token): current_token() then hands out a child of it, made
// once, on first request, so a task that never asks costs nothing. A token that is not shared is
// the task's own.
struct TaskTokenSource {
  const CancelToken* token = nullptr;
  bool shared = false;
  // The executor whose token `token` is known to descend from, or null when that is not known (a
  // nursery with a parent of its own, run_until_cancelled's linked token). A joinable task spawned
  // onto that executor by this task may then take a child of this task's token as its own.
  ExecutorState* lineage = nullptr;
};

class TaskContext {
 public:
  TaskContext() noexcept = default;
  explicit TaskContext(TaskTokenSource source) noexcept
      : token_(source.token), shared_(source.shared), lineage_(source.lineage) {}

  TaskContext(const TaskContext&) = delete;
  TaskContext& operator=(const TaskContext&) = delete;

  /// Re-points an unused context (a driver's, set up before its task starts).
  void reset(TaskTokenSource source) noexcept {
    token_ = source.token;
    shared_ = source.shared;
    lineage_ = source.lineage;
  }

  /// The task's token, as current_token() returns it.
  const CancelToken& token() {
    if (shared_) {
      own_ = token_->child_token();
      token_ = &own_;
      shared_ = false;
    }
    return *token_;
  }

  /// The token the library's waits observe: the task's own if it has one, else the shared one
  /// (cancelled whenever the task's own would be, as that is its child). Never null.
  [[nodiscard]] const CancelToken& observed() const noexcept { return *token_; }

  /// The executor whose token the task's token descends from, if known (TaskTokenSource::lineage).
  [[nodiscard]] ExecutorState* lineage() const noexcept { return lineage_; }

 private:
  const CancelToken* token_ = nullptr;
  bool shared_ = false;
  ExecutorState* lineage_ = nullptr;
  CancelToken own_ = CancelTokenAccess::empty();  // a child of the shared token, once asked for
};
static_assert(address_stable<TaskContext>);  // waits and resume records point at it

}  // namespace knhk::concurrency::detail
