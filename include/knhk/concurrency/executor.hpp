// WorkStealingExecutor: a fixed pool of workers, each with a local run queue, a global injector,
// random-victim stealing, and workers that park when there is nothing to do.
//
// Thread safety: every member may be called from any thread, except that shutdown() and the
//   destructor must not be called from one of the executor's own workers (std::logic_error).
// Blocking: spawn() never blocks; shutdown() and the destructor wait for every task spawned so
//   far; JoinHandle::get() blocks outside the workers and helps on them.
// Happens-before: everything before spawn() happens before the task runs; everything the task did
//   happens before its JoinHandle::get() returns and before shutdown() returns.
// Lifetime: not copyable, not movable; tasks must not outlive it (shutdown() waits for them).
//
// How a task flows from spawn() to a worker and back is described in docs/ARCHITECTURE.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/detail/executor_hooks.hpp"
#include "knhk/concurrency/detail/null_callable.hpp"
#include "knhk/concurrency/detail/task_context.hpp"
#include "knhk/concurrency/detail/task_record.hpp"
#include "knhk/concurrency/errors.hpp"
#include "knhk/concurrency/join_handle.hpp"
#include "knhk/concurrency/task.hpp"

namespace knhk::concurrency {

struct WorkerConfig {
  /// Number of worker threads; 0 is rejected with std::invalid_argument.
  std::size_t worker_count = std::max<std::size_t>(1, std::thread::hardware_concurrency());
  /// Victims a worker tries in one search round before it considers parking.
  std::size_t max_steal_attempts = 16;
  /// A parked worker is woken by new work at once. 0 (the default, as in tokio and oneTBB): parked
  /// workers sleep until work wakes them, with no timed wake-up at all. A positive value makes one
  /// parked worker re-check the queues that often for all of them (a safety net that costs a timed
  /// wake-up each time). Negative is rejected with std::invalid_argument.
  std::chrono::milliseconds park_timeout{0};
  /// Sampled latency and depth histograms, and this executor's spans (docs/TELEMETRY.md).
  /// Counters are kept either way.
  bool enable_telemetry = true;
  std::string thread_name = "knhk-worker";
};

struct ExecutorMetrics {
  std::uint64_t tasks_spawned = 0;
  std::uint64_t tasks_completed = 0;  // ended: ran to the end (normally or not), or discarded unrun
  std::uint64_t tasks_failed = 0;     // fire-and-forget tasks and nursery children that failed
  std::uint64_t tasks_stolen = 0;     // taken from another worker's local queue
  std::uint64_t tasks_cancelled = 0;  // of those, never run: their token was cancelled before they started
  std::uint64_t steal_attempts = 0;
  std::uint64_t parks = 0;
  std::uint64_t injector_pops = 0;    // tasks taken from the global queue
  std::uint64_t local_overflows = 0;  // times a full local queue moved half to the injector
  std::size_t workers_idle = 0;       // parked right now
  double cpu_utilization = 0;         // busy time of the workers over their wall time, 0..1
};

namespace detail {

class ExecutorState;
struct NurseryAccess;
struct TelemetryAccess;

template <class T>
struct IsTask : std::false_type {};
template <class T>
struct IsTask<Task<T>> : std::true_type {};

// Out of line (src/executor.cpp).
void begin_spawn(ExecutorState* executor);             // counts the task; throws ExecutorShutdown
void abandon_spawn(ExecutorState* executor) noexcept;  // undoes begin_spawn (the record failed)
void enqueue(ExecutorState* executor, TaskRecord* record) noexcept;
bool executor_cancelled(ExecutorState* executor) noexcept;
void note_cancelled_before_start(ExecutorState* executor) noexcept;
// Counts a failure in tasks_failed (report_unhandled: and hands it to the handler).
void report_unhandled(ExecutorState* executor, std::exception_ptr error) noexcept;
void note_task_failed(ExecutorState* executor) noexcept;
// Hands `error` to the unhandled-exception handler (the default prints `what` and the message).
void hand_to_handler(ExecutorState* executor, std::exception_ptr error, const char* what) noexcept;
const CancelToken& executor_token(ExecutorState* executor) noexcept;
// Counts a task's end in tasks_completed. Called before its outcome can be observed (its join
// state done, its nursery left), so a user who saw the end through the library reads exact counts.
void note_completed(ExecutorState* executor) noexcept;
void task_ended(ExecutorState* executor) noexcept;  // a coroutine task ended (shutdown's count)
// After begin_spawn; the driver runs with `context` as its task context.
void start_coroutine_task(ExecutorState* executor, std::coroutine_handle<> driver, TaskContext* context);
void schedule_counted(ExecutorState* executor, std::coroutine_handle<> handle);  // schedule()

// What a spawned work item produces, whichever form it takes: a callable's result, or T of a
// Task<T> / of a callable returning Task<T>.
template <class R>
struct UnwrapTask {
  using type = R;
};
template <class T>
struct UnwrapTask<Task<T>> {
  using type = T;
};
template <class F>
struct SpawnResult {
  using type = typename UnwrapTask<std::invoke_result_t<F&>>::type;
};
template <class T>
struct SpawnResult<Task<T>> {
  using type = T;
};

// Rejects work that could only fail: a null function pointer, an empty std::function, an empty
// Task. Called by every spawn before anything is counted.
template <class F>
void check_work(const F& work) {
  if constexpr (IsTask<F>::value) {
    if (!work.valid()) throw std::invalid_argument("knhk: spawn: `work` is an empty Task");
  } else {
    reject_null_callable(work, "spawn: `work`");
  }
}

// The parent of a spawn_with_handle task's own token: the spawning task's token when that is known
// to descend from this executor's (fork-join trees then spread over many parents instead of all
// linking into, and contending for, the executor's root), else the executor's token. Either way
// the new token descends from the executor's, as API.md requires.
inline const CancelToken& handle_task_parent(ExecutorState* executor) noexcept {
  if (const TaskContext* context = current_task_context(); context != nullptr && context->lineage() == executor) {
    return context->observed();
  }
  return executor_token(executor);
}

// True for a Task, or a callable returning one: work that runs as a coroutine task.
template <class F>
constexpr bool is_coroutine_work() {
  if constexpr (IsTask<F>::value) {
    return true;
  } else {
    return IsTask<std::remove_cvref_t<std::invoke_result_t<F&>>>::value;
  }
}
template <class F>
inline constexpr bool kIsCoroutineWork = is_coroutine_work<F>();

// The coroutine that runs one spawned Task on the executor. It owns the work (a Task, or the
// callable that makes one, kept alive until the Task ends), reports the outcome to its sink and
// the end of the task to the executor, and frees its own frame.
class TaskDriver {
 public:
  struct promise_type : PooledAllocation {  // the frame comes from the thread's block pool
    ExecutorState* executor = nullptr;
    TaskContext context;  // the task's, for as long as the frame lives (detail/task_context.hpp)

    TaskDriver get_return_object() noexcept {
      return TaskDriver{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    // Frees the frame (the work, its captures, the sink) and only then reports the task's end,
    // so that everything the task owned is gone before shutdown() can return.
    auto final_suspend() const noexcept {
      struct EndTask {
        EndTask() noexcept = default;
        EndTask(const EndTask&) = delete;
        EndTask& operator=(const EndTask&) = delete;
        [[nodiscard]] bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> self) const noexcept {
          ExecutorState* const owner = self.promise().executor;
          tls_task_context = nullptr;  // the context dies with the promise; nothing may find it
          self.destroy();
          task_ended(owner);
        }
        void await_resume() const noexcept {}
      };
      static_assert(address_stable<EndTask>);
      return EndTask{};
    }
    void return_void() const noexcept {}
    [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }  // the body catches all
  };
  std::coroutine_handle<promise_type> handle;
};

template <class F>
decltype(auto) start_work(F& work) {
  if constexpr (IsTask<F>::value) {
    return std::move(work);
  } else {
    return work();
  }
}

template <class T, class F, class Sink>
TaskDriver drive(ExecutorState* executor, std::optional<F> work, Sink sink) {
  if (sink.cancelled_before_start()) {
    sink.cancelled();
  } else {
    try {
      if constexpr (std::is_void_v<T>) {
        co_await start_work(*work);
        sink.value();
      } else {
        sink.value(co_await start_work(*work));
      }
    } catch (...) {
      sink.error(std::current_exception());
    }
  }
  // The work (a lambda's captures, a Task's frame and parameters) goes now, while this is still
  // the running task: its destructors see the task's context, and they happen before the outcome
  // is published. Parameters outlive the promise, so it cannot be left to the frame's end.
  work.reset();
  note_completed(executor);
  sink.finish();  // shutdown() learns of the end from final_suspend, after the frame is freed
}

// Where a task's outcome goes, and the rules every task follows whatever its form: a task whose
// token is already cancelled when it would start never runs; Cancelled is not a failure of a
// detached task. Used by the coroutine driver above and by callable records (SinkCompletion).
struct DetachedSink {
  ExecutorState* executor;
  [[nodiscard]] ExecutorState* executor_state() const noexcept { return executor; }
  // The task's token: a child of the executor's, made only if the task asks for it.
  [[nodiscard]] TaskTokenSource token_source() const noexcept { return {&executor_token(executor), true, executor}; }
  [[nodiscard]] bool cancelled_before_start() const noexcept { return executor_cancelled(executor); }
  void cancelled() const noexcept { note_cancelled_before_start(executor); }
  void value() const noexcept {}
  void error(std::exception_ptr error) const noexcept {
    try {
      std::rethrow_exception(error);
    } catch (const Cancelled&) {
      // a cooperative stop, not a failure
    } catch (...) {
      report_unhandled(executor, std::current_exception());
    }
  }
  void finish() const noexcept {}
};

template <class T>
struct HandleSink {
  JoinState<T>* state;
  [[nodiscard]] ExecutorState* executor_state() const noexcept { return state->executor(); }
  // Its own token, which handle_task_parent() made a descendant of the executor's.
  [[nodiscard]] TaskTokenSource token_source() const noexcept { return {&state->token(), false, state->executor()}; }
  [[nodiscard]] bool cancelled_before_start() const noexcept { return state->token().is_cancelled(); }
  void cancelled() const {
    note_cancelled_before_start(state->executor());
    state->result().set_exception(std::make_exception_ptr(Cancelled{}));
  }
  template <class... V>
  void value(V&&... v) {
    state->result().set_value(std::forward<V>(v)...);
  }
  void error(std::exception_ptr error) const noexcept { state->result().set_exception(std::move(error)); }
  void finish() const noexcept {
    state->mark_done();
    state->release();
  }
};

template <class T, class F, class Sink>
void spawn_coroutine(ExecutorState* executor, F&& work, Sink sink) {
  begin_spawn(executor);
  std::coroutine_handle<TaskDriver::promise_type> driver;
  try {
    const TaskTokenSource source = sink.token_source();
    driver = drive<T>(executor, std::optional<std::decay_t<F>>(std::in_place, std::forward<F>(work)), std::move(sink))
                 .handle;
    driver.promise().executor = executor;
    driver.promise().context.reset(source);
  } catch (...) {
    abandon_spawn(executor);
    throw;
  }
  try {
    start_coroutine_task(executor, driver, &driver.promise().context);
  } catch (...) {
    driver.destroy();  // never started: frees the work; the caller releases any join state
    abandon_spawn(executor);
    throw;
  }
}

// Runs a callable record's work through a sink: the same steps as drive(), without a coroutine.
template <class T, class Sink>
struct SinkCompletion {
  Sink sink;

  // Runs `fn` and destroys it (CallableRecord's contract): its captures go while this is still the
  // running task (they see its context) and before the outcome is published.
  template <class F>
  void operator()(F& fn) noexcept {
    {
      TaskContext context(sink.token_source());
      const TaskContextScope scope(&context);
      if (sink.cancelled_before_start()) {
        sink.cancelled();
      } else {
        try {
          if constexpr (std::is_void_v<T>) {
            fn();
            sink.value();
          } else {
            sink.value(fn());
          }
        } catch (...) {
          sink.error(std::current_exception());
        }
      }
      std::destroy_at(std::addressof(fn));
    }
    note_completed(sink.executor_state());
    sink.finish();
  }
};

template <class F, class Completion>
void spawn_record(ExecutorState* executor, F&& work, Completion completion) {
  begin_spawn(executor);
  TaskRecord* record = nullptr;
  try {
    record = make_callable_record(std::forward<F>(work), std::move(completion));
  } catch (...) {
    abandon_spawn(executor);
    throw;
  }
  enqueue(executor, record);
}

// Every spawn, whatever its owner (the executor, a nursery) and its form: a Task or a callable
// returning one runs as a coroutine task, any other callable as a record; `sink` takes the outcome.
template <class R, class F, class Sink>
void spawn_with_sink(ExecutorState* executor, F&& work, Sink sink) {
  if constexpr (kIsCoroutineWork<std::decay_t<F>>) {
    spawn_coroutine<R>(executor, std::forward<F>(work), std::move(sink));
  } else {
    spawn_record(executor, std::forward<F>(work), SinkCompletion<R, Sink>{std::move(sink)});
  }
}

// A spawn whose outcome a JoinHandle reads: the join state (with `token` as the task's own) is
// shared by the handle and `make_sink(join)`, the task's sink; on failure both references go.
template <class R, class F, class MakeSink>
JoinHandle<R> spawn_joinable(ExecutorState* executor, F&& work, CancelToken token, MakeSink make_sink) {
  auto* join = new JoinState<R>(executor, std::move(token));
  try {
    spawn_with_sink<R>(executor, std::forward<F>(work), make_sink(join));
  } catch (...) {
    join->release();  // the task's reference: never created
    join->release();  // the handle's
    throw;
  }
  return JoinHandle<R>{join};
}

}  // namespace detail

class WorkStealingExecutor {
 public:
  explicit WorkStealingExecutor(std::size_t worker_count);
  explicit WorkStealingExecutor(WorkerConfig config = {});
  ~WorkStealingExecutor();

  WorkStealingExecutor(const WorkStealingExecutor&) = delete;
  WorkStealingExecutor& operator=(const WorkStealingExecutor&) = delete;
  WorkStealingExecutor(WorkStealingExecutor&&) = delete;
  WorkStealingExecutor& operator=(WorkStealingExecutor&&) = delete;

  /// Fire-and-forget. From a worker of this executor the task goes to that worker's local queue,
  /// from any other thread to the global queue. Throws ExecutorShutdown when called from outside
  /// once shutdown() has begun.
  template <class F>
  void spawn(F&& work) {
    static_assert(std::is_void_v<typename detail::SpawnResult<std::decay_t<F>>::type>,
                  "spawn() takes a callable returning void, a Task<void> or a callable returning one; "
                  "use spawn_with_handle for results");
    detail::check_work(work);
    detail::spawn_with_sink<void>(state_.get(), std::forward<F>(work), detail::DetachedSink{state_.get()});
  }

  /// Like spawn(); the handle gives the callable's result (or its exception). The task gets its
  /// own token, which JoinHandle::abort() cancels: a child of the spawning task's token when that
  /// descends from token() (then cancelling the spawning task cancels it too), else of token().
  template <class F>
  auto spawn_with_handle(F&& work) -> JoinHandle<typename detail::SpawnResult<std::decay_t<F>>::type> {
    using R = typename detail::SpawnResult<std::decay_t<F>>::type;
    detail::check_work(work);
    return detail::spawn_joinable<R>(state_.get(), std::forward<F>(work),
                                     detail::handle_task_parent(state_.get()).child_token(),
                                     [](detail::JoinState<R>* join) { return detail::HandleSink<R>{join}; });
  }

  /// Runs `task` on this executor and blocks until it ends, returning its value or rethrowing.
  /// Called on one of this executor's workers, it runs other queued work while it waits.
  template <class T>
  T block_on(Task<T> task) {
    return spawn_with_handle(std::move(task)).get();
  }

  /// Awaitable: `co_await ex.schedule()` continues the coroutine on a worker of this executor.
  /// The hop counts as a task (shutdown waits for it; from outside it is refused once shutdown
  /// has begun, with ExecutorShutdown).
  class [[nodiscard]] ScheduleAwaiter {
   public:
    explicit ScheduleAwaiter(detail::ExecutorState* executor) noexcept : executor_(executor) {}
    ScheduleAwaiter(const ScheduleAwaiter&) = delete;
    ScheduleAwaiter& operator=(const ScheduleAwaiter&) = delete;
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> waiter) { detail::schedule_counted(executor_, waiter); }
    void await_resume() const noexcept {}

   private:
    detail::ExecutorState* executor_;
  };
  [[nodiscard]] ScheduleAwaiter schedule() noexcept { return ScheduleAwaiter{state_.get()}; }

  /// Graceful and idempotent: refuses new work from outside (ExecutorShutdown), still accepts work
  /// spawned by running tasks, waits until every task spawned so far has finished, joins the
  /// workers. Fast shutdown: token().cancel() first, so queued tasks end without running.
  void shutdown();

  /// The executor's root token: the token of every task spawned on it descends from it.
  [[nodiscard]] const CancelToken& token() const noexcept;
  [[nodiscard]] std::size_t worker_count() const noexcept;
  [[nodiscard]] ExecutorMetrics metrics() const;

  /// Replaces the handler that receives exceptions escaping fire-and-forget tasks (default: one
  /// line on stderr). Called on the worker that ran the task; must not throw.
  void set_unhandled_exception_handler(std::function<void(std::exception_ptr)> handler);

  /// The executor whose worker is calling, else nullptr.
  [[nodiscard]] static WorkStealingExecutor* current() noexcept;

 private:
  friend struct detail::NurseryAccess;    // a nursery spawns onto the state directly
  friend struct detail::TelemetryAccess;  // telemetry::collect() reads the instruments

  std::unique_ptr<detail::ExecutorState> state_;
};

static_assert(address_stable<WorkStealingExecutor::ScheduleAwaiter>);

}  // namespace knhk::concurrency
