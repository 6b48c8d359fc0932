// The work-stealing executor: workers, spawning, searching, parking, shutdown, metrics.
//
// Life of a task: spawn() counts it in `outstanding_` (begin_spawn), wraps the callable in a
// TaskRecord and enqueues it: on the calling worker's local queue when the caller is one of our
// workers, else on the injector. notify_work() then wakes a parked worker if nobody is searching.
// A worker takes work in this order: every kInjectorInterval-th task from the injector (so
// injected work is never starved by a worker that keeps spawning locally), else its own queue
// (newest first), else a search: random victims' queues (oldest first, half of a victim's queue
// per steal), then the injector. When a search finds nothing, the worker parks. A record runs,
// frees itself, and the worker counts it done in `outstanding_`.
//
// Idle protocol (after tokio's idle/searching scheme):
//  1. `searching_` counts workers looking for work; `sleepers_` lists parked workers. A spawner
//     wakes a parked worker only when no worker is searching, so a burst of spawns wakes one
//     worker, not all (no thundering herd). A worker woken this way starts out searching.
//  2. A worker that finds work while searching stops searching; if it was the last searcher and
//     work is still visible, it wakes one more parked worker, so parallelism ramps up in a chain.
//  3. No wake-up is lost: a spawner publishes its task, then (after a seq_cst fence) reads
//     `searching_` and the sleeper count. A worker going to park first stops searching and
//     registers as a sleeper, then (after a seq_cst fence) re-checks every queue. By the two
//     fences, either the spawner sees the worker searching or registered (and a searcher will
//     re-check, or the spawner wakes a sleeper), or the worker's re-check sees the task.
//     3a. A worker pushing onto its own queue skips the fence where membarrier(2) is available
//         (process_barrier.hpp): it only reads the sleeper count, and returns if it is zero. The
//         parker pays instead, with a process-wide barrier between registering and re-checking,
//         so either the spawner's read sees it registered or its re-check sees the task. The
//         searching-worker half of 3 then only serves parallelism (a searcher that misses the
//         task still parks through this check, and the spawner runs its own queue anyway).
//  4. With a positive `park_timeout` (the default 0 turns all of this off: no timed wake-up, as
//     in tokio and oneTBB, which rests on 3 alone), while any worker is parked, the queues are
//     re-checked at least every `park_timeout`, which bounds the cost of any wake-up this
//     reasoning missed. One sleeper, the watcher, does the
//     checking for all; the others sleep until woken. A timed wake-up costs 40-80 us of CPU on
//     this VM (W8), so an idle executor pays for one per park_timeout, not one per worker. The
//     watcher is appointed under `sleepers_mutex_` when a worker parks and there is none, and a
//     watcher that leaves the list hands the role to the longest sleeper (a wake-up, only then).
//     Invariant: `w.watching == (watcher_ == &w)`, both changed under `sleepers_mutex_`.
//
// Shutdown protocol:
//  1. Refuse outside spawns: set `refusing_` (seq_cst). A spawn increments `outstanding_` first
//     and then reads `refusing_` (seq_cst both), so either it sees the flag and backs out with
//     ExecutorShutdown, or shutdown sees its increment and waits for the task.
//  2. Spawns from running tasks are still accepted: they are counted before their parent ends.
//  3. Wait until `outstanding_` is zero: every task spawned so far has finished.
//     3a. Spawns add to `outstanding_` at once; a worker subtracts its completions in batches
//         (every kCompletionBatch tasks, whenever it starts searching, and on every task once
//         `refusing_` is set). So `outstanding_` is never below the true number of unfinished
//         tasks, and it reaches zero only after every completion has been subtracted.
//     3b. A spawn from one of our workers first cancels against a completion that worker has not
//         subtracted yet (one task ended, one begins: the count already holds it), and only
//         increments `outstanding_` when it has none. 3a's bound still holds, and a fork-join
//         task that spawns as often as tasks end touches the shared count only once per batch.
//         A spawn inside a counted task finds the count above zero and need not read `refusing_`
//         (step 2): relaxed suffices. Code on a worker outside any counted task (a coroutine that
//         hopped here with schedule() and was resumed after suspending again) may find it at zero:
//         the increment from zero then takes step 1's seq_cst path (fence, read `refusing_`).
//     3c. A worker with nothing to cancel against adds kSpawnCredit to `outstanding_` at once
//         and keeps the unused part in the same balance as its unsubtracted completions: both
//         are counted in `outstanding_` beyond the truth, and both go back at the same flushes
//         (3a). So a worker that only spawns (W1's producer) touches the shared count once per
//         kSpawnCredit spawns, and the one that only completes once per kCompletionBatch.
//  4. Set `stopping_`, wake every worker; a worker with no task left exits; join them all.
//  5. Idempotent: a second call (or the destructor) finds the workers joined and returns.
//  6. Threads that are not our workers also call in on behalf of tasks we wait for: the timer
//     thread or a cancelling thread resuming a suspended task, a task that ended elsewhere, a
//     waker of a worker blocked in get(). The task they act for may run to its end as soon as
//     their record is published, so shutdown could return while they still touch us (the wake
//     after the enqueue). Each such call holds an `ExternalCall` for its whole length, and both
//     shutdown() and the destructor wait, after joining the workers, until none is held.
#include "knhk/concurrency/executor.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include "cpu_relax.hpp"
#include "executor_telemetry.hpp"
#include "injector.hpp"
#include "knhk/concurrency/detail/trace.hpp"
#include "knhk/concurrency/telemetry.hpp"
#include "knhk/concurrency/time.hpp"
#include "local_queue.hpp"
#include "log2_histogram.hpp"
#include "parking_mutex.hpp"
#include "process_barrier.hpp"
#include "span_report.hpp"
#include "telemetry_names.hpp"
#include "timer_service.hpp"

namespace knhk::concurrency::detail {
namespace {

// How often a worker looks at the injector before its own queue: a prime, so it does not beat in
// step with periodic spawning patterns (tokio uses 61 for the same reason).
constexpr std::uint32_t kInjectorInterval = 61;
// Completions a worker subtracts from `outstanding_` at once (Shutdown protocol 3a). From W1 at
// T = 2: one shared decrement per task cost a cache-line transfer per task.
constexpr std::uint64_t kCompletionBatch = 64;
// Spawns a worker pays for in `outstanding_` at once (Shutdown protocol 3c); below the batch, so
// that the credit left after a payment does not reach a flush at the next completion.
constexpr std::uint64_t kSpawnCredit = 32;
// Telemetry samples (docs/TELEMETRY.md): one spawn in kSpawnSampleEvery is timed for the
// spawn-latency histogram and records its queue's depth; one steal search in kStealSampleEvery is
// timed for steal latency. A sample reads steady_clock twice, 27 ns a read on the 2-core VM's
// kvm-clock: at one spawn in 64 that was 0.9 ns of a 35 ns spawn (TEL at T = 1: 1.05), at one in
// 128 it is half that. Still about 8,000 samples a second per million spawns.
constexpr std::uint32_t kSpawnSampleEvery = 128;
constexpr std::uint32_t kStealSampleEvery = 16;

using Clock = std::chrono::steady_clock;

// Counters written only by their worker (a relaxed load and store, no read-modify-write) and read
// by metrics() (relaxed: a snapshot needs no ordering with the tasks).
struct alignas(64) WorkerCounters {
  std::atomic<std::uint64_t> spawned{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> stolen{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> steal_attempts{0};
  std::atomic<std::uint64_t> parks{0};
  std::atomic<std::uint64_t> injector_pops{0};
  std::atomic<std::uint64_t> overflows{0};
  std::atomic<std::int64_t> busy_ns{0};     // finished busy stretches
  std::atomic<std::int64_t> busy_since{0};  // start of the current stretch, 0 while parked

  static void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
};

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::uint64_t elapsed_since(std::int64_t start) noexcept {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ns() - start));
}

// A worker's sampled histograms: written only by the worker (record_owned), read by snapshots.
struct alignas(64) WorkerHistograms {
  Log2Histogram spawn_latency_ns;
  Log2Histogram steal_latency_ns;
  Log2Histogram steal_attempts;
  Log2Histogram depth_local;
  Log2Histogram depth_stolen;
};

// Spawn sampling (telemetry): a countdown per worker, or per thread for spawns from outside. The
// spawn that brings it to zero is timed, from begin_spawn() to the end of enqueue(). A worker of
// an executor without telemetry starts its countdown at the maximum and re-arms it there, so its
// spawns pay the same decrement and never sample, and no spawn tests the flag. From TEL at T = 1
// (callgrind): a flag test, a tracing test and span code inlined into the spawn path came to 19
// instructions per spawn, 14-20 % of a 35 ns spawn.
constexpr std::uint32_t kNeverSample = ~std::uint32_t{0};

struct SpawnProbe {
  std::uint32_t countdown;
  std::int64_t sample_start = 0;  // steady clock; 0: this spawn is not sampled

  explicit SpawnProbe(bool enabled) noexcept : countdown(enabled ? kSpawnSampleEvery : kNeverSample) {}

  void begin(bool enabled) noexcept {
    if (--countdown == 0) [[unlikely]] {
      start_sample(enabled);
    }
  }
  [[gnu::noinline]] void start_sample(bool enabled) noexcept {
    countdown = enabled ? kSpawnSampleEvery : kNeverSample;
    if (enabled) sample_start = now_ns();
  }
};

// A worker's "next" slot (after tokio's LIFO slot): a coroutine that awaited a task which has
// just ended on this worker, and is this worker's next task. It takes no record, no queue
// traffic and no wake-up of another worker: queued, it would have been the next local pop
// anyway, and a thief would only have moved the parent away from its children's data. Owner
// only: filled by a task ending on the worker, emptied by the worker's next look for work.
struct NextSlot final : TaskRecord {
  NextSlot() noexcept : TaskRecord(&NextSlot::execute_fn) {}

  static bool execute_fn(TaskRecord* self) noexcept {
    auto* slot = static_cast<NextSlot*>(self);
    const std::coroutine_handle<> handle = std::exchange(slot->handle, {});  // free again
    tls_task_context = slot->context;  // run_task() restores it (detail/task_context.hpp rule 1)
    resume_inline(handle);
    return false;  // a step of a coroutine task, which reports its own end
  }

  std::coroutine_handle<> handle;  // empty while the slot is free
  TaskContext* context = nullptr;
};

}  // namespace

struct Worker {
  Worker(std::size_t i, bool telemetry) : index(i), spawn_probe(telemetry), rng(0x9E3779B97F4A7C15ULL * (i + 1)) {}

  const std::size_t index;
  LocalQueue<TaskRecord> queue;
  WorkerCounters counters;
  WorkerHistograms histograms;
  SpawnProbe spawn_probe;     // telemetry; owner only
  NextSlot next;              // owner only
  std::uint32_t helping = 0;  // nested JoinHandle::get() waits running on this worker; owner only

  // Owner-only state.
  std::uint64_t rng;
  std::uint32_t tick = 0;
  bool searching = false;
  bool ran_since_park = false;              // only a worker that just had work spins before parking (W8)
  std::uint64_t unflushed_completions = 0;  // Shutdown protocol 3a, 3c: counted beyond the truth
  std::uint32_t steal_countdown = kStealSampleEvery;

  // Parking: `woken` is set by a waker under `park_mutex`.
  std::mutex park_mutex;
  std::condition_variable park_cv;
  bool woken = false;     // guarded by park_mutex
  bool watching = false;  // guarded by park_mutex (and set under sleepers_mutex_): Idle protocol 4

  std::thread thread;

  std::size_t random_below(std::size_t n) noexcept {  // xorshift64; owner only
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
  }
};

namespace {
thread_local Worker* tls_worker = nullptr;
thread_local ExecutorState* tls_executor = nullptr;
thread_local SpawnProbe tls_spawn_probe{true};  // spawns from threads that are not our workers
}  // namespace

class ExecutorState {
 public:
  ExecutorState(WorkStealingExecutor* owner, WorkerConfig config) : owner_(owner), config_(std::move(config)) {
    if (config_.worker_count == 0) throw std::invalid_argument("knhk: WorkerConfig::worker_count must be at least 1");
    if (config_.park_timeout < std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("knhk: WorkerConfig::park_timeout must not be negative (0 means no timed wake-up)");
    }
    if (config_.max_steal_attempts == 0) config_.max_steal_attempts = 1;
    workers_.reserve(config_.worker_count);
    sleepers_.reserve(config_.worker_count);  // park() never allocates
    for (std::size_t i = 0; i < config_.worker_count; ++i)
      workers_.push_back(std::make_unique<Worker>(i, config_.enable_telemetry));
    started_ns_ = now_ns();
    started_unix_ns_ = trace_clock_now();
    try {
      for (auto& worker : workers_) {
        worker->thread = std::thread([this, w = worker.get()] { run_worker(w); });
        name_thread(*worker);
      }
    } catch (...) {
      stop_and_join();
      throw;
    }
  }

  ~ExecutorState() { stop_and_join(); }

  // Shutdown protocol 6: marks a call from a thread that is not one of our workers.
  class ExternalCall {
   public:
    explicit ExternalCall(ExecutorState& executor) noexcept : executor_(executor) {
      // relaxed: made visible to the waiter by the chain through the record it publishes (or the
      // count it subtracts) and shutdown()'s acquire of a zero `outstanding_`.
      executor_.external_calls_.fetch_add(1, std::memory_order_relaxed);
    }
    ~ExternalCall() {
      // release: the call's last touch of the executor happens before the waiter's acquire.
      executor_.external_calls_.fetch_sub(1, std::memory_order_release);
    }
    ExternalCall(const ExternalCall&) = delete;
    ExternalCall& operator=(const ExternalCall&) = delete;

   private:
    ExecutorState& executor_;
  };

  ExecutorState(const ExecutorState&) = delete;
  ExecutorState& operator=(const ExecutorState&) = delete;

  // --- spawning ---

  [[nodiscard]] bool on_own_worker() const noexcept { return tls_executor == this && tls_worker != nullptr; }

  void begin_spawn() {
    if (on_own_worker()) {
      Worker* self = tls_worker;
      // Shutdown protocol 3b. relaxed: inside a counted task the count is above zero; from zero
      // (outside any counted task), step 1's seq_cst pair instead: the fence, then the load.
      if (self->unflushed_completions != 0) {
        --self->unflushed_completions;
      } else {
        // 3c: kSpawnCredit at once; this spawn takes one, the rest wait in the worker's balance.
        if (outstanding_.fetch_add(kSpawnCredit, std::memory_order_relaxed) == 0) {
          std::atomic_thread_fence(std::memory_order_seq_cst);
          if (refusing_.load(std::memory_order_seq_cst)) {
            finish(kSpawnCredit);
            throw ExecutorShutdown();
          }
        }
        self->unflushed_completions = kSpawnCredit - 1;
      }
      WorkerCounters::bump(self->counters.spawned);
      self->spawn_probe.begin(telemetry_);
      return;
    }
    // seq_cst increment then seq_cst load: Shutdown protocol step 1.
    outstanding_.fetch_add(1, std::memory_order_seq_cst);
    if (refusing_.load(std::memory_order_seq_cst)) {
      finish_one();
      throw ExecutorShutdown();
    }
    outside_spawned_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a metric
    if (telemetry_) tls_spawn_probe.begin(true);               // shared by every executor this thread spawns on
  }

  // undoes begin_spawn(): the record could not be made.
  void abandon_spawn() noexcept {
    probe_of(on_own_worker() ? tls_worker : nullptr).sample_start = 0;
    finish_one();
  }

  // Publishes a record: a spawn's (`spawn`), or a suspended coroutine's resumption.
  [[gnu::always_inline]] void enqueue(TaskRecord* record, bool spawn) noexcept {
    Worker* const self = on_own_worker() ? tls_worker : nullptr;
    // A spawn's span covers its publication. Its task id is read first: once published, the
    // record may run and be freed at once.
    std::int64_t trace_start = 0;
    std::int64_t traced_id = 0;
    if (tracing() && spawn && telemetry_) [[unlikely]] {
      trace_start = trace_clock_now();
      traced_id = task_id_of(record);
    }
    if (self != nullptr) {
      auto owner = self->queue.owner();
      while (!owner.push(record)) overflow(*self);
      notify_work_local();
    } else {
      injector_.push(record);
      notify_work();
    }
    if ((probe_of(self).sample_start | trace_start) != 0) [[unlikely]] {
      end_spawn_probe(self, trace_start, traced_id);
    }
  }

  static SpawnProbe& probe_of(Worker* self) noexcept { return self != nullptr ? self->spawn_probe : tls_spawn_probe; }

  // A spawn's telemetry once its task is published: the sampled latency (which includes the
  // wake-up of a parked worker, a cost the spawner pays), its queue's depth, and its span.
  [[gnu::noinline]] void end_spawn_probe(Worker* self, std::int64_t trace_start, std::int64_t traced_id) noexcept {
    SpawnProbe& probe = probe_of(self);
    if (probe.sample_start != 0) {
      const std::uint64_t latency = elapsed_since(std::exchange(probe.sample_start, 0));
      if (self != nullptr) {
        self->histograms.spawn_latency_ns.record_owned(latency);
        self->histograms.depth_local.record_owned(self->queue.size_hint());
      } else {
        outside_spawn_latency_ns_.record_shared(latency);
        depth_global_.record_shared(injector_.size_hint());
      }
    }
    if (trace_start != 0) {
      report_span(names::kSpanTaskSpawn, trace_start,
                  {{names::kTaskId, traced_id},
                   {names::kQueueType, self != nullptr ? names::kQueueLocal : names::kQueueGlobal}});
    }
  }

  void finish_one() noexcept { finish(1); }
  void finish(std::uint64_t n) noexcept {
    // acq_rel: the last task's effects happen before shutdown() sees zero (acquire there).
    if (outstanding_.fetch_sub(n, std::memory_order_acq_rel) == n) outstanding_.notify_all();
  }

  // --- outcomes ---

  [[nodiscard]] bool cancelled() const noexcept { return token_.is_cancelled(); }
  [[nodiscard]] const CancelToken& token() const noexcept { return token_; }

  // The outcome counters are exact at the moment a user can observe the task's end: each is
  // bumped before the end is published (a join state's release, a nursery's CAS, the handler
  // call), so whoever acquires that end reads the bump. A worker of ours bumps its own counter
  // (plain store); any other thread (the timer thread, a canceller, another executor's worker)
  // the shared one. relaxed: ordered by that publication, not by the counter.
  void note_completed() noexcept {
    if (on_own_worker()) {
      WorkerCounters::bump(tls_worker->counters.completed);
    } else {
      ended_elsewhere_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void note_cancelled() noexcept {
    if (on_own_worker()) {
      WorkerCounters::bump(tls_worker->counters.cancelled);
    } else {
      cancelled_elsewhere_.fetch_add(1, std::memory_order_relaxed);  // relaxed: as note_completed()
    }
  }

  void note_failed() noexcept {
    if (on_own_worker()) {
      WorkerCounters::bump(tls_worker->counters.failed);
    } else {
      failed_elsewhere_.fetch_add(1, std::memory_order_relaxed);  // relaxed: as note_completed()
    }
  }

  void report_unhandled(std::exception_ptr error) noexcept {
    note_failed();
    hand_to_handler(std::move(error), "a fire-and-forget task failed");
  }

  void hand_to_handler(std::exception_ptr error, const char* what) noexcept {
    std::function<void(std::exception_ptr)> handler;
    {
      std::lock_guard lock(handler_mutex_);
      handler = handler_;
    }
    if (handler) {
      try {
        handler(error);
        return;
      } catch (...) {
        std::fputs("knhk: the unhandled-exception handler threw; falling back to stderr\n", stderr);
      }
    }
    std::fprintf(stderr, "knhk: %s: %s\n", what, describe_exception(error).c_str());
  }

  void set_handler(std::function<void(std::exception_ptr)> handler) {
    std::lock_guard lock(handler_mutex_);
    handler_ = std::move(handler);
  }

  // --- helping wait (JoinHandle::get) ---

  void wait_for(std::atomic<std::uint32_t>& done, void*& blocked_worker) noexcept {
    using State = JoinDone;
    if (!on_own_worker()) {
      // acquire (all three): pairs with JoinState::publish_done()'s release.
      std::uint32_t seen = done.load(std::memory_order_acquire);
      while (seen != State::kDone) {
        // Announce the sleeper first: the task's end notifies only a word it finds in kSleeping.
        if (seen == State::kPending && !done.compare_exchange_weak(seen, State::kSleeping, std::memory_order_acquire)) {
          continue;  // `seen` was reloaded
        }
        done.wait(State::kSleeping, std::memory_order_acquire);
        seen = done.load(std::memory_order_acquire);
      }
      return;
    }
    Worker* self = tls_worker;
    // While helping, a task's end must not fill the "next" slot: get() may return with it full,
    // and its caller run on for long, or block, while no other worker can reach the slot.
    ++self->helping;
    while (done.load(std::memory_order_acquire) != State::kDone) {  // acquire: as above
      if (TaskRecord* task = find_local_or_injected(*self)) {
        run_task(*self, task);
        continue;
      }
      if (TaskRecord* stolen = steal_from_others(*self)) {
        run_task(*self, stolen);
        continue;
      }
      // Nothing to run. The awaited task may be running elsewhere, or suspended and later resumed
      // by a record queued here: park as a sleeper (new work wakes us, Idle protocol), published
      // in the join state so that the task's end wakes us too.
      clear_woken(*self);  // before publishing ourselves: a wake from now on is kept
      blocked_worker = self;
      std::uint32_t expected = State::kPending;
      // acq_rel: release publishes blocked_worker to mark_done(); acquire (on failure) sees kDone.
      if (!done.compare_exchange_strong(expected, State::kBlocked, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        continue;
      }
      flush_completions(*self);
      park(*self);
      if (self->searching) stop_searching(*self);  // woken for new work: we run it as a helper
      expected = State::kBlocked;
      // acq_rel: back to pending unless the task ended meanwhile (then it reads kDone).
      done.compare_exchange_strong(expected, State::kPending, std::memory_order_acq_rel, std::memory_order_acquire);
    }
    --self->helping;
  }

  void wake(Worker* worker) noexcept {
    std::optional<ExternalCall> call;
    if (!on_own_worker()) call.emplace(*this);  // Shutdown protocol 6
    {
      std::lock_guard lock(worker->park_mutex);
      worker->woken = true;
    }
    worker->park_cv.notify_one();
  }

  // --- shutdown ---

  void shutdown() {
    if (on_own_worker()) {
      throw std::logic_error(
          "knhk: shutdown() called from one of the executor's own workers (it would wait for itself)");
    }
    if (tls_timer_thread) {
      throw std::logic_error(
          "knhk: shutdown() on the library's timer thread would wait for sleepers only that thread wakes; "
          "call it from another thread (or let the destructor, which hands the timers over, do it)");
    }
    drain_and_join();
  }

  // The destructor's shutdown (API.md): cancel the root token first, so that tasks which have not
  // started never run and sleeping ones end at their wait, then the graceful drain. On the timer
  // thread the wheel is handed to a new thread first (timer_service.hpp, Protocol 4), so the
  // tasks waited for still get their timers.
  void cancel_and_join() noexcept {
    token_.cancel();
    TimerService::hand_off();
    drain_and_join();
  }

 private:
  void drain_and_join() noexcept {
    std::lock_guard lock(shutdown_mutex_);
    if (joined_) return;  // Shutdown protocol step 5
    const std::int64_t trace_start = telemetry_ ? trace_begin() : 0;
    refusing_.store(true, std::memory_order_seq_cst);  // step 1
    // step 3. seq_cst: the load half of step 1's store-load pair (it also acquires what
    // finish_one() released); later loads only acquire.
    for (std::uint64_t n = outstanding_.load(std::memory_order_seq_cst); n != 0;
         n = outstanding_.load(std::memory_order_acquire)) {
      outstanding_.wait(n, std::memory_order_acquire);
    }
    stop_and_join();  // step 4
    if (trace_start != 0) {
      report_span(names::kSpanShutdown, trace_start,
                  {{names::kWorkerCount, static_cast<std::int64_t>(workers_.size())}});
    }
  }

 public:
  ExecutorMetrics metrics() const {
    ExecutorMetrics m;
    // relaxed: counters are independent snapshot values (see WorkerCounters).
    m.tasks_spawned = outside_spawned_.load(std::memory_order_relaxed);
    m.tasks_completed = ended_elsewhere_.load(std::memory_order_relaxed);
    m.tasks_failed = failed_elsewhere_.load(std::memory_order_relaxed);
    m.tasks_cancelled = cancelled_elsewhere_.load(std::memory_order_relaxed);
    std::int64_t busy = 0;
    const std::int64_t now = now_ns();
    for (const auto& w : workers_) {
      const WorkerCounters& c = w->counters;
      m.tasks_spawned += c.spawned.load(std::memory_order_relaxed);
      m.tasks_completed += c.completed.load(std::memory_order_relaxed);
      m.tasks_failed += c.failed.load(std::memory_order_relaxed);
      m.tasks_stolen += c.stolen.load(std::memory_order_relaxed);
      m.tasks_cancelled += c.cancelled.load(std::memory_order_relaxed);
      m.steal_attempts += c.steal_attempts.load(std::memory_order_relaxed);
      m.parks += c.parks.load(std::memory_order_relaxed);
      m.injector_pops += c.injector_pops.load(std::memory_order_relaxed);
      m.local_overflows += c.overflows.load(std::memory_order_relaxed);
      busy += c.busy_ns.load(std::memory_order_relaxed);
      const std::int64_t since = c.busy_since.load(std::memory_order_relaxed);
      if (since != 0) busy += std::max<std::int64_t>(0, now - since);
    }
    {
      std::lock_guard lock(sleepers_mutex_);
      m.workers_idle = sleepers_.size();
    }
    const double wall = static_cast<double>(now - started_ns_) * static_cast<double>(workers_.size());
    m.cpu_utilization = wall > 0 ? std::clamp(static_cast<double>(busy) / wall, 0.0, 1.0) : 0.0;
    return m;
  }

  // relaxed loads throughout: as metrics().
  void read_telemetry(ExecutorTelemetryData& out) const {
    const ExecutorMetrics m = metrics();
    out.start_unix_ns = started_unix_ns_;
    out.tasks_spawned = m.tasks_spawned;
    out.tasks_failed = m.tasks_failed;
    out.workers_idle = m.workers_idle;
    out.cpu_utilization = m.cpu_utilization;
    out.completed_elsewhere = ended_elsewhere_.load(std::memory_order_relaxed);
    out.histograms_enabled = telemetry_;
    const auto read = [](const Log2Histogram& histogram, HistogramCounts& into) {
      histogram.add_to(into.counts, into.sum);
    };
    read(outside_spawn_latency_ns_, out.spawn_latency_ns);
    read(depth_global_, out.depth_global);
    for (const auto& w : workers_) {
      out.completed_per_worker.push_back(w->counters.completed.load(std::memory_order_relaxed));
      out.stolen_per_worker.push_back(w->counters.stolen.load(std::memory_order_relaxed));
      read(w->histograms.spawn_latency_ns, out.spawn_latency_ns);
      read(w->histograms.steal_latency_ns, out.steal_latency_ns);
      read(w->histograms.steal_attempts, out.steal_attempts);
      read(w->histograms.depth_local, out.depth_local);
      read(w->histograms.depth_stolen, out.depth_stolen);
    }
  }

  [[nodiscard]] std::size_t worker_count() const noexcept { return workers_.size(); }
  [[nodiscard]] WorkStealingExecutor* owner() const noexcept { return owner_; }

 private:
  // --- the worker loop ---

  void run_worker(Worker* self) noexcept {
    tls_worker = self;
    tls_executor = this;
    self->counters.busy_since.store(now_ns(), std::memory_order_relaxed);
    for (;;) {
      TaskRecord* task = find_local_or_injected(*self);
      if (task == nullptr) task = search(*self);
      if (task == nullptr && self->searching && self->ran_since_park) task = keep_searching(*self);
      if (task != nullptr) {
        if (self->searching) stop_searching(*self);
        run_task(*self, task);
        continue;
      }
      if (self->searching) stop_searching(*self);
      if (stopping_.load(std::memory_order_acquire)) break;  // acquire: pairs with stop_and_join()
      clear_woken(*self);
      park(*self);  // search() flushed our completions before we got here
    }
    end_busy_stretch(*self);
    tls_worker = nullptr;
    tls_executor = nullptr;
  }

  TaskRecord* find_local_or_injected(Worker& self) noexcept {
    // The "next" slot first, even before the injector's fairness tick: a task taken instead could
    // run long or block, and the slot is out of every other worker's reach meanwhile. The slot
    // holds one step at a time, so the tick still comes round (61 is odd: it lands on both the
    // slot's turns and the others' in a ping-pong of two tasks).
    if (self.next.handle) return &self.next;
    if (++self.tick % kInjectorInterval == 0) {
      if (TaskRecord* task = pop_injector(self)) return task;
    }
    if (TaskRecord* task = self.queue.owner().pop()) return task;
    return pop_injector(self);
  }

  TaskRecord* pop_injector(Worker& self) noexcept {
    TaskRecord* task = injector_.pop();
    if (task != nullptr) WorkerCounters::bump(self.counters.injector_pops);
    return task;
  }

  void run_task(Worker& self, TaskRecord* task) noexcept {
    self.ran_since_park = true;
    TaskContextScope restore(tls_task_context);  // a helping task finds its own context again
    if (tracing() && telemetry_) [[unlikely]] {
      run_task_traced(self, task);
      return;
    }
    if (task->execute(task)) task_ended(self);
  }

  [[gnu::noinline]] void run_task_traced(Worker& self, TaskRecord* task) noexcept {
    // Read before execute(), which frees the record. A coroutine task runs in steps between
    // suspensions (it may wait on timers, tokens, other tasks: io_bound); a callable runs once to
    // its end (cpu_bound).
    bool is_step = false;
    ResumeRecord::context_of_step(task, is_step);
    const std::int64_t id = task_id_of(task);
    const std::int64_t start = trace_clock_now();
    if (task->execute(task)) task_ended(self);
    report_span(names::kSpanTaskExecute, start,
                {{names::kTaskId, id},
                 {names::kWorkerId, static_cast<std::int64_t>(self.index)},
                 {names::kTaskType, is_step ? names::kTaskIoBound : names::kTaskCpuBound}});
  }

  // A task's id in spans: a coroutine task's context (the same for each of its steps and for its
  // spawn), else the record's address.
  static std::int64_t task_id_of(const TaskRecord* record) noexcept {
    bool is_step = false;
    if (const TaskContext* context = ResumeRecord::context_of_step(record, is_step)) return trace_id_of(context);
    return trace_id_of(record);
  }

 public:
  // A task ended: a callable record ran, or a coroutine task's driver finished (on any thread).
  void task_ended() noexcept {
    if (on_own_worker()) {
      task_ended(*tls_worker);
    } else {
      const ExternalCall call(*this);  // Shutdown protocol 6
      finish_one();
    }
  }

  // Queues a resumption of `handle` (see executor_hooks.hpp). `counted` hops (schedule()) are
  // tasks of their own: refused from outside after shutdown began, waited for by shutdown.
  // `spawn`: the first resumption of a new coroutine task (start_coroutine_task), a spawn too.
  void resume_later(std::coroutine_handle<> handle, bool counted, TaskContext* context, bool spawn = false) {
    std::optional<ExternalCall> call;
    if (!on_own_worker()) call.emplace(*this);  // Shutdown protocol 6
    if (counted) begin_spawn();
    if (!counted && stopping_.load(std::memory_order_acquire)) {  // acquire: pairs with stop_and_join()
      call.reset();                                               // done with us: what follows may run for long
      TaskContextScope scope(context);
      resume_inline(handle);  // nothing would run it: a coroutine that is no task of ours
      return;
    }
    void* block = nullptr;
    try {
      block = pool_allocate(sizeof(ResumeRecord));
    } catch (...) {
      if (counted) abandon_spawn();
      throw;
    }
    enqueue(::new (block) ResumeRecord(handle, counted, context), spawn || counted);
  }

  // yield_now(): the global queue, behind what waits there and after what waits locally (every
  // worker looks at its own queue first), so a polling task lets the others run.
  void resume_yielded(std::coroutine_handle<> handle, TaskContext* context) {
    void* block = pool_allocate(sizeof(ResumeRecord));
    injector_.push(::new (block) ResumeRecord(handle, false, context));
    notify_work();
  }

 private:
  // Resumes one coroutine on the worker that runs it.
  struct ResumeRecord final : TaskRecord {
    ResumeRecord(std::coroutine_handle<> h, bool is_task, TaskContext* task_context) noexcept
        : TaskRecord(&ResumeRecord::execute_fn), handle(h), context(task_context), counted(is_task) {}
    static bool is_resume(const TaskRecord* record) noexcept { return record->execute == &execute_fn; }
    // A record that resumes a coroutine step, either way (telemetry: io_bound, its task's id).
    static TaskContext* context_of_step(const TaskRecord* record, bool& is_step) noexcept {
      is_step = true;
      if (is_resume(record)) return static_cast<const ResumeRecord*>(record)->context;
      if (record->execute == &NextSlot::execute_fn) return static_cast<const NextSlot*>(record)->context;
      is_step = false;
      return nullptr;
    }
    static bool execute_fn(TaskRecord* self) noexcept {
      auto* record = static_cast<ResumeRecord*>(self);
      const std::coroutine_handle<> handle = record->handle;
      const bool counted = record->counted;
      tls_task_context = record->context;  // run_task() restores it (detail/task_context.hpp rule 1)
      record->~ResumeRecord();
      pool_free(record, sizeof(ResumeRecord));
      resume_inline(handle);
      // A schedule() hop is a task of its own, ended once the coroutine suspends or finishes here.
      if (counted) WorkerCounters::bump(tls_worker->counters.completed);
      return counted;
    }
    std::coroutine_handle<> handle;
    TaskContext* context;
    bool counted;
  };

  // Shutdown's count only: tasks_completed was bumped before the task's end was published.
  void task_ended(Worker& self) noexcept {
    // Shutdown protocol 3a: completions are subtracted in batches, so the other workers do not
    // bounce `outstanding_`'s cache line once per task. relaxed: a hint; flush() orders.
    if (++self.unflushed_completions >= kCompletionBatch || refusing_.load(std::memory_order_relaxed)) {
      flush_completions(self);
    }
  }

  void flush_completions(Worker& self) noexcept {
    if (self.unflushed_completions == 0) return;
    finish(std::exchange(self.unflushed_completions, 0));
  }

  // Moves the older half of a full local queue to the injector in one batch.
  void overflow(Worker& self) noexcept {
    TaskRecord* first = nullptr;
    TaskRecord* last = nullptr;
    const std::size_t moved = self.queue.owner().take_older_half([&](TaskRecord* task) {
      task->next = nullptr;
      (last != nullptr ? last->next : first) = task;
      last = task;
    });
    if (moved != 0) {
      injector_.push_batch(first, last, moved);
      WorkerCounters::bump(self.counters.overflows);
    }
  }

  // --- searching (Idle protocol 1, 2) ---

  TaskRecord* search(Worker& self) noexcept {
    flush_completions(self);  // running out of local work: let shutdown see our completions
    if (!self.searching) {
      // At most half of the workers search at once (plus one): more only burn CPU on misses.
      // relaxed: a heuristic bound; correctness rests on the fences of Idle protocol 3.
      if (2 * searching_.load(std::memory_order_relaxed) > workers_.size()) return nullptr;
      searching_.fetch_add(1, std::memory_order_seq_cst);
      self.searching = true;
    }
    if (TaskRecord* task = steal_from_others(self)) return task;
    return pop_injector(self);
  }

  // A searcher that found nothing keeps looking for a short while before it parks: work often
  // arrives a moment later (a spawner in a loop), and while it still counts as searching no
  // spawner pays for a futex wake (Idle protocol 1). Bounded, so an idle executor still parks
  // within microseconds: kSearchRounds rounds of kRelaxPerRound pauses plus one search each.
  // From W1/W3 at T = 2: parking after the first failed search cost one wake-up per spawn. Only
  // after running work: a worker waking from a park timeout goes straight back to sleep (W8).
  TaskRecord* keep_searching(Worker& self) noexcept {
    constexpr int kSearchRounds = 32;
    constexpr int kRelaxPerRound = 64;
    for (int round = 0; round < kSearchRounds; ++round) {
      for (int i = 0; i < kRelaxPerRound; ++i) cpu_relax();
      if (TaskRecord* task = self.queue.owner().pop()) return task;
      if (TaskRecord* task = pop_injector(self)) return task;
      if (TaskRecord* task = steal_from_others(self)) return task;
      if (stopping_.load(std::memory_order_acquire)) return nullptr;  // acquire: as in run_worker()
    }
    return nullptr;
  }

  TaskRecord* steal_from_others(Worker& self) noexcept {
    const std::size_t n = workers_.size();
    if (n < 2) return nullptr;
    std::int64_t sample_start = 0;
    std::int64_t trace_start = 0;
    if (telemetry_) {
      if (--self.steal_countdown == 0) {
        self.steal_countdown = kStealSampleEvery;
        sample_start = now_ns();
      }
      trace_start = trace_begin();
    }
    for (std::size_t attempt = 0; attempt < config_.max_steal_attempts; ++attempt) {
      Worker& victim = *workers_[(self.index + 1 + self.random_below(n - 1)) % n];
      WorkerCounters::bump(self.counters.steal_attempts);
      auto thief = victim.queue.stealer();
      TaskRecord* first = nullptr;
      StealResult result = thief.steal(first);
      if (result != StealResult::success) continue;
      // Take up to half of what is left too, into our own queue: one search feeds many runs.
      std::size_t taken = 1;
      const std::size_t extra = thief.size_hint() / 2;
      auto owner = self.queue.owner();
      for (std::size_t i = 0; i < extra; ++i) {
        TaskRecord* more = nullptr;
        if (thief.steal(more) != StealResult::success) break;
        if (!owner.push(more)) {  // cannot happen while we search (our queue is empty); be safe
          injector_.push(more);
          break;
        }
        ++taken;
      }
      WorkerCounters::bump(self.counters.stolen, taken);
      if (telemetry_) note_steal(self, attempt + 1, 2 * extra + 1, sample_start, trace_start);
      return first;
    }
    return nullptr;
  }

  // A search that stole: how many victims it tried, how deep the victim's queue was (about: the
  // half it left plus what it took), and, when sampled or traced, how long the search took.
  [[gnu::noinline]] void note_steal(Worker& self, std::size_t attempts, std::size_t victim_depth,
                                    std::int64_t sample_start, std::int64_t trace_start) noexcept {
    self.histograms.steal_attempts.record_owned(attempts);
    if (sample_start != 0) {
      self.histograms.steal_latency_ns.record_owned(elapsed_since(sample_start));
      self.histograms.depth_stolen.record_owned(victim_depth);
    }
    if (trace_start != 0) {
      report_span(names::kSpanTaskSteal, trace_start,
                  {{names::kWorkerId, static_cast<std::int64_t>(self.index)},
                   {names::kStealAttempts, static_cast<std::int64_t>(attempts)},
                   {names::kQueueType, names::kQueueStolen}});
    }
  }

  void stop_searching(Worker& self) noexcept {
    self.searching = false;
    // seq_cst: Idle protocol 3 (the decrement precedes the re-check or the wake below).
    if (searching_.fetch_sub(1, std::memory_order_seq_cst) == 1 && work_visible()) wake_one();  // protocol 2
  }

  // --- parking (Idle protocol 3, 4) ---

  void notify_work() noexcept {
    // seq_cst fence: orders the task's publication before the loads below (Idle protocol 3).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (searching_.load(std::memory_order_seq_cst) != 0) return;
    if (sleeping_.load(std::memory_order_seq_cst) == 0) return;
    wake_one();
  }

  // notify_work() after a push by a worker onto its own queue (W4: the seq_cst fence of every
  // spawn was 7-10 % of fib's time at T = 1). With the process barrier, no fence: while no worker
  // sleeps, nobody needs waking, and a worker that is going to sleep pays for the store-load
  // order instead (park(): process_barrier_heavy() between registering and re-checking). So
  // either this load sees it registered, or its re-check sees the task (Idle protocol 3).
  void notify_work_local() noexcept {
    if (asymmetric_) {
      std::atomic_signal_fence(std::memory_order_seq_cst);  // compiler only: the load stays after the push
      // relaxed: ordered by the process barrier above, not by this load.
      if (sleeping_.load(std::memory_order_relaxed) == 0) return;
    }
    notify_work();
  }

  bool work_visible() const noexcept {
    // seq_cst fence: the loads below follow this thread's seq_cst decrement of searching_ or
    // increment of sleeping_ in the fence order, so they see any task published before a
    // spawner's fence that read the old value (Idle protocol 3).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!injector_.empty_hint()) return true;
    return std::any_of(workers_.begin(), workers_.end(), [](const auto& w) { return w->queue.size_hint() != 0; });
  }

  void wake_one() noexcept {
    Worker* sleeper = nullptr;
    {
      std::lock_guard lock(sleepers_mutex_);
      if (sleepers_.empty()) return;
      sleeper = sleepers_.back();
      sleepers_.pop_back();
      // The woken worker counts as searching from now on, so further spawns do not wake more
      // (protocol 1). Under the lock: the sleeper learns it was taken off the list only under it,
      // and may stop searching at once. seq_cst: ordered with notify_work()'s load.
      searching_.fetch_add(1, std::memory_order_seq_cst);
    }
    {
      std::lock_guard lock(sleeper->park_mutex);
      sleeper->woken = true;
    }
    sleeper->park_cv.notify_one();
  }

  // A worker clears `woken` before it publishes itself to any waker (the sleepers list here, a
  // join state in wait_for()), so that no waker's signal is erased; park() only consumes it.
  void clear_woken(Worker& self) noexcept {
    std::lock_guard lock(self.park_mutex);
    self.woken = false;
  }

  // Whether parked workers re-check the queues on a timer at all (park_timeout > 0, Idle protocol 4).
  [[nodiscard]] bool timed_watch() const noexcept { return config_.park_timeout.count() > 0; }

  // Makes `sleeper` the watcher (Idle protocol 4) and wakes it to start its timed waits.
  // Lock order: sleepers_mutex_ (held by the caller), then the sleeper's park_mutex.
  void appoint_watcher(Worker& sleeper) noexcept {
    watcher_ = &sleeper;
    {
      std::lock_guard lock(sleeper.park_mutex);
      sleeper.watching = true;
    }
    sleeper.park_cv.notify_one();
  }

  void park(Worker& self) noexcept {
    {
      std::lock_guard lock(sleepers_mutex_);
      sleepers_.push_back(&self);
      if (watcher_ == nullptr && timed_watch()) appoint_watcher(self);
    }
    sleeping_.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: read by notify_work() (Idle protocol 3)
    if (asymmetric_) process_barrier_heavy();           // pairs with notify_work_local()'s unfenced load
    bool slept = false;
    std::int64_t trace_start = 0;
    if (!work_visible() && !stopping_.load(std::memory_order_acquire)) {
      if (telemetry_) trace_start = trace_begin();
      self.ran_since_park = false;
      end_busy_stretch(self);
      WorkerCounters::bump(self.counters.parks);
      std::unique_lock lock(self.park_mutex);
      const auto called = [&] { return self.woken || stopping_.load(std::memory_order_acquire); };
      while (!called()) {
        if (!self.watching) {
          self.park_cv.wait(lock, [&] { return called() || self.watching; });
          continue;
        }
        // The watcher's timeout only re-checks the queues, still registered as a sleeper: an idle
        // executor pays one wake-up per park_timeout for a few loads, not a search (W8).
        if (self.park_cv.wait_for(lock, config_.park_timeout, called)) break;
        lock.unlock();
        const bool work = work_visible();
        lock.lock();
        if (work) break;
      }
      slept = true;
    }
    bool woken_by_waker = false;
    {
      std::lock_guard lock(sleepers_mutex_);
      auto it = std::find(sleepers_.begin(), sleepers_.end(), &self);
      if (it != sleepers_.end()) {
        sleepers_.erase(it);  // nobody woke us (timeout, stop, or work seen before sleeping)
      } else {
        woken_by_waker = true;  // wake_one() took us off the list and counted us as searching
      }
      if (watcher_ == &self) {
        {
          std::lock_guard park_lock(self.park_mutex);
          self.watching = false;
        }
        watcher_ = nullptr;
        if (!sleepers_.empty()) appoint_watcher(*sleepers_.front());  // the longest sleeper (timed_watch())
      }
    }
    sleeping_.fetch_sub(1, std::memory_order_seq_cst);
    if (woken_by_waker) self.searching = true;  // wake_one() already incremented searching_
    if (slept) self.counters.busy_since.store(now_ns(), std::memory_order_relaxed);
    if (trace_start != 0) {
      report_span(names::kSpanWorkerPark, trace_start, {{names::kWorkerId, static_cast<std::int64_t>(self.index)}});
    }
  }

  // relaxed loads and stores: owner-written metric fields (see WorkerCounters).
  void end_busy_stretch(Worker& self) noexcept {
    const std::int64_t since = self.counters.busy_since.load(std::memory_order_relaxed);
    if (since == 0) return;
    self.counters.busy_ns.store(self.counters.busy_ns.load(std::memory_order_relaxed) + (now_ns() - since),
                                std::memory_order_relaxed);
    self.counters.busy_since.store(0, std::memory_order_relaxed);
  }

  void stop_and_join() noexcept {
    // release: pairs with the workers' acquire loads; they exit once nothing is left to run.
    stopping_.store(true, std::memory_order_release);
    for (auto& worker : workers_) {
      {
        std::lock_guard lock(worker->park_mutex);
        worker->woken = true;
      }
      worker->park_cv.notify_one();
    }
    for (auto& worker : workers_) {
      if (worker->thread.joinable()) worker->thread.join();
    }
    // Shutdown protocol 6. acquire: pairs with ~ExternalCall's release. Such a call has already
    // published what it came for, so it only has a few instructions left.
    while (external_calls_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    joined_ = true;
  }

  void name_thread(Worker& worker) noexcept {
    std::string name = config_.thread_name + "-" + std::to_string(worker.index);
    if (name.size() > 15) name.resize(15);  // the kernel's limit
    pthread_setname_np(worker.thread.native_handle(), name.c_str());
  }

  WorkStealingExecutor* const owner_;
  WorkerConfig config_;
  CancelToken token_;
  std::vector<std::unique_ptr<Worker>> workers_;
  Injector<TaskRecord> injector_;
  std::int64_t started_ns_ = 0;
  std::int64_t started_unix_ns_ = 0;
  const bool telemetry_ = config_.enable_telemetry;      // histograms and spans (docs/TELEMETRY.md)
  const bool asymmetric_ = process_barrier_available();  // notify_work_local() needs no fence
  Log2Histogram outside_spawn_latency_ns_;               // spawns from outside (record_shared)
  Log2Histogram depth_global_;

  alignas(64) std::atomic<std::uint64_t> outstanding_{0};  // spawned and not yet finished
  std::atomic<bool> refusing_{false};                      // shutdown has begun
  std::atomic<bool> stopping_{false};                      // workers exit when idle
  std::atomic<std::uint64_t> outside_spawned_{0};
  std::atomic<std::uint64_t> ended_elsewhere_{0};      // tasks whose last step ran off our workers
  std::atomic<std::uint64_t> failed_elsewhere_{0};     // failures counted off our workers
  std::atomic<std::uint64_t> cancelled_elsewhere_{0};  // discarded unrun off our workers
  std::atomic<std::uint32_t> external_calls_{0};       // Shutdown protocol 6

  alignas(64) std::atomic<std::size_t> searching_{0};  // Idle protocol 1
  std::atomic<std::size_t> sleeping_{0};               // registered sleepers (mirrors sleepers_.size())
  mutable std::mutex sleepers_mutex_;
  std::vector<Worker*> sleepers_;  // guarded by sleepers_mutex_
  Worker* watcher_ = nullptr;      // guarded by sleepers_mutex_: the sleeper that re-checks (Idle protocol 4)

  std::mutex handler_mutex_;
  std::function<void(std::exception_ptr)> handler_;  // guarded by handler_mutex_

  std::mutex shutdown_mutex_;
  bool joined_ = false;  // guarded by shutdown_mutex_ (and set by stop_and_join)
};

void begin_spawn(ExecutorState* executor) { executor->begin_spawn(); }
void abandon_spawn(ExecutorState* executor) noexcept { executor->abandon_spawn(); }
void enqueue(ExecutorState* executor, TaskRecord* record) noexcept { executor->enqueue(record, true); }
bool executor_cancelled(ExecutorState* executor) noexcept { return executor->cancelled(); }
void note_cancelled_before_start(ExecutorState* executor) noexcept { executor->note_cancelled(); }
void report_unhandled(ExecutorState* executor, std::exception_ptr error) noexcept {
  executor->report_unhandled(std::move(error));
}
void note_task_failed(ExecutorState* executor) noexcept { executor->note_failed(); }
void note_completed(ExecutorState* executor) noexcept { executor->note_completed(); }
void hand_to_handler(ExecutorState* executor, std::exception_ptr error, const char* what) noexcept {
  executor->hand_to_handler(std::move(error), what);
}
const CancelToken& executor_token(ExecutorState* executor) noexcept { return executor->token(); }
void wait_for_completion(ExecutorState* executor, std::atomic<std::uint32_t>& done, void*& blocked_worker) noexcept {
  executor->wait_for(done, blocked_worker);
}
void wake_blocked_worker(ExecutorState* executor, void* worker) noexcept {
  executor->wake(static_cast<Worker*>(worker));
}
void task_ended(ExecutorState* executor) noexcept { executor->task_ended(); }
void start_coroutine_task(ExecutorState* executor, std::coroutine_handle<> driver, TaskContext* context) {
  executor->resume_later(driver, false, context, true);
}
void schedule_counted(ExecutorState* executor, std::coroutine_handle<> handle) {
  executor->resume_later(handle, true, tls_task_context);
}
void schedule_yield(ExecutorState* executor, std::coroutine_handle<> handle, TaskContext* context) noexcept {
  try {
    executor->resume_yielded(handle, context);
  } catch (...) {
    TaskContextScope scope(context);
    resume_inline(handle);  // no memory for a record: go on at once
  }
}
void read_telemetry(const ExecutorState* executor, ExecutorTelemetryData& out) { executor->read_telemetry(out); }
ExecutorState* current_executor_state() noexcept { return tls_worker != nullptr ? tls_executor : nullptr; }
void schedule_resume_next(ExecutorState* executor, std::coroutine_handle<> handle, TaskContext* context) noexcept {
  if (executor->on_own_worker() && !tls_worker->next.handle && tls_worker->helping == 0) {
    tls_worker->next.handle = handle;
    tls_worker->next.context = context;
    return;
  }
  schedule_resume(executor, handle, context);
}
void schedule_resume(ExecutorState* executor, std::coroutine_handle<> handle, TaskContext* context) noexcept {
  try {
    executor->resume_later(handle, false, context);
  } catch (...) {
    TaskContextScope scope(context);
    resume_inline(handle);  // no memory for a record: run it here rather than lose it
  }
}

}  // namespace knhk::concurrency::detail

namespace knhk::concurrency {

namespace {
WorkerConfig with_workers(std::size_t worker_count) {
  WorkerConfig config;
  config.worker_count = worker_count;
  return config;
}
}  // namespace

WorkStealingExecutor::WorkStealingExecutor(std::size_t worker_count)
    : WorkStealingExecutor(with_workers(worker_count)) {}

WorkStealingExecutor::WorkStealingExecutor(WorkerConfig config)
    : state_(std::make_unique<detail::ExecutorState>(this, std::move(config))) {}

WorkStealingExecutor::~WorkStealingExecutor() {
  if (state_->on_own_worker()) {
    std::fputs("knhk: a WorkStealingExecutor was destroyed by one of its own workers\n", stderr);
    std::terminate();
  }
  state_->cancel_and_join();
}

void WorkStealingExecutor::shutdown() { state_->shutdown(); }
const CancelToken& WorkStealingExecutor::token() const noexcept { return state_->token(); }
std::size_t WorkStealingExecutor::worker_count() const noexcept { return state_->worker_count(); }
ExecutorMetrics WorkStealingExecutor::metrics() const { return state_->metrics(); }

void WorkStealingExecutor::set_unhandled_exception_handler(std::function<void(std::exception_ptr)> handler) {
  state_->set_handler(std::move(handler));
}

WorkStealingExecutor* WorkStealingExecutor::current() noexcept {
  return detail::tls_executor != nullptr ? detail::tls_executor->owner() : nullptr;
}

}  // namespace knhk::concurrency
