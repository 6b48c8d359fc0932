// TaskRecord: one unit of work as it travels through the executor's queues.
//
// A record is an intrusive header (`next`, for the injector) plus a function pointer that runs the
// work and then frees the record. The callable is stored inline in the same block, which comes
// from the thread's block pool (detail/block_pool.hpp), so spawning a small callable allocates
// nothing in steady state.
//
// Thread safety: a record belongs to one party at a time (spawner, queue, running worker).
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "knhk/concurrency/detail/block_pool.hpp"

namespace knhk::concurrency::detail {

class ExecutorState;

struct TaskRecord {
  // Runs the work (or, if its token is already cancelled, completes it unrun) and frees the record.
  // Returns true when a task ended with it (a callable), false when it only resumed a coroutine
  // task that ends later (the coroutine reports its own end).
  using ExecuteFn = bool (*)(TaskRecord* self) noexcept;

  explicit TaskRecord(ExecuteFn fn) noexcept : execute(fn) {}

  TaskRecord* next = nullptr;  // the injector's link; unused while in a local queue
  const ExecuteFn execute;
};

// A record that owns callable F and, when executed, calls `complete(fn)`, which decides whether to
// run it (not when its token is already cancelled), where the outcome goes (a join state, or the
// executor's unhandled-exception handler), and when `fn` is destroyed: `complete` must destroy it
// (std::destroy_at) before it returns, so that the callable's captures go at a moment of its
// choosing. Every record is executed exactly once, so `fn` is always destroyed exactly once.
template <class F, class Complete>
struct CallableRecord final : TaskRecord {
  template <class G, class C>
  CallableRecord(G&& g, C&& c) : TaskRecord(&CallableRecord::execute_fn), complete(std::forward<C>(c)) {
    ::new (static_cast<void*>(std::addressof(fn))) F(std::forward<G>(g));
  }
  ~CallableRecord() {}  // `fn` was destroyed by `complete`

  CallableRecord(const CallableRecord&) = delete;
  CallableRecord& operator=(const CallableRecord&) = delete;

  static bool execute_fn(TaskRecord* self) noexcept {
    auto* record = static_cast<CallableRecord*>(self);
    record->complete(record->fn);  // runs and destroys fn
    record->~CallableRecord();
    free_for<CallableRecord>(record);
    return true;
  }

  Complete complete;
  union {
    F fn;  // constructed in the constructor, destroyed by `complete`
  };
};

template <class F, class Complete>
TaskRecord* make_callable_record(F&& fn, Complete&& complete) {
  using Record = CallableRecord<std::decay_t<F>, std::decay_t<Complete>>;
  void* block = allocate_for<Record>();
  try {
    return ::new (block) Record(std::forward<F>(fn), std::forward<Complete>(complete));
  } catch (...) {
    free_for<Record>(block);
    throw;
  }
}

}  // namespace knhk::concurrency::detail
