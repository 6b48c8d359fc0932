// WorkStealingExecutor: spawning, stealing, failures, shutdown, metrics. Built twice: with the
// normal queue capacity and with tiny queues (overflow and steal paths run constantly).
#include "knhk/concurrency/executor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "knhk/concurrency/sync_wait.hpp"
#include "knhk/concurrency/time.hpp"

namespace kc = knhk::concurrency;
using namespace std::chrono_literals;

namespace {
#if defined(KNHK_SANITIZED)
constexpr std::size_t kMany = 200'000;
#else
constexpr std::size_t kMany = 1'000'000;
#endif

// Waits (bounded) until `done()` holds; returns whether it did. For conditions that the runtime
// makes true eventually (a worker parks), never for speed.
template <class Pred>
bool eventually(Pred done, std::chrono::seconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}
}  // namespace

TEST(Executor, ZeroWorkersIsRejected) {
  EXPECT_THROW(kc::WorkStealingExecutor ex(std::size_t{0}), std::invalid_argument);
  kc::WorkerConfig config;
  config.worker_count = 0;
  EXPECT_THROW(kc::WorkStealingExecutor ex(config), std::invalid_argument);
}

TEST(Executor, StartsTheConfiguredWorkers) {
  kc::WorkerConfig config;
  config.worker_count = 3;
  config.thread_name = "test";
  kc::WorkStealingExecutor ex(config);
  EXPECT_EQ(ex.worker_count(), 3U);
  EXPECT_EQ(kc::WorkStealingExecutor::current(), nullptr);
}

TEST(Executor, RunsOneTaskAndReturnsItsValue) {
  kc::WorkStealingExecutor ex(2);
  auto handle = ex.spawn_with_handle([] { return std::string("done"); });
  EXPECT_EQ(handle.get(), "done");
  EXPECT_TRUE(handle.is_finished());
}

TEST(Executor, CurrentNamesTheExecutorOnItsWorkersOnly) {
  kc::WorkStealingExecutor ex(1);
  auto handle = ex.spawn_with_handle([] { return kc::WorkStealingExecutor::current(); });
  EXPECT_EQ(handle.get(), &ex);
  EXPECT_EQ(kc::WorkStealingExecutor::current(), nullptr);
}

TEST(Executor, AMillionTasksFromOutsideAllRunWithExactCounts) {
  std::atomic<std::size_t> ran{0};
  kc::WorkStealingExecutor ex(2);
  for (std::size_t i = 0; i < kMany; ++i) ex.spawn([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
  ex.shutdown();
  EXPECT_EQ(ran.load(), kMany);
  const kc::ExecutorMetrics m = ex.metrics();
  EXPECT_EQ(m.tasks_spawned, kMany);
  EXPECT_EQ(m.tasks_completed, kMany);
  EXPECT_EQ(m.tasks_failed, 0U);
}

TEST(Executor, ATaskFanningOutIsStolenFromAndCountsStayExact) {
  constexpr std::size_t kBatch = 100;  // below the local queue's capacity: no overflow
  constexpr std::size_t kBatches = 20;
  std::atomic<std::size_t> ran{0};
  kc::WorkStealingExecutor ex(2);
  auto parent = ex.spawn_with_handle([&] {
    for (std::size_t batch = 1; batch <= kBatches; ++batch) {
      for (std::size_t i = 0; i < kBatch; ++i) ex.spawn([&ran] { ran.fetch_add(1); });
      // This worker stays busy here, so only the other worker can run the batch: by stealing it
      // (or, with tiny queues, from the injector the overflow fed).
      if (!eventually([&] { return ran.load() == batch * kBatch; })) return false;
    }
    return true;
  });
  EXPECT_TRUE(parent.get());
  ex.shutdown();
  EXPECT_EQ(ran.load(), kBatch * kBatches);
  const kc::ExecutorMetrics m = ex.metrics();
#if defined(KNHK_TEST_SMALL_QUEUES)
  EXPECT_GT(m.tasks_stolen + m.local_overflows, 0U);
#else
  EXPECT_GT(m.tasks_stolen, 0U);
#endif
  EXPECT_EQ(m.tasks_spawned, kBatch * kBatches + 1);
  EXPECT_EQ(m.tasks_completed, kBatch * kBatches + 1);
}

TEST(Executor, ACpuBoundBatchReturnsEveryResultThroughItsHandle) {
  kc::WorkStealingExecutor ex(2);
  std::vector<kc::JoinHandle<std::uint64_t>> handles;
  for (std::uint64_t n = 0; n < 200; ++n) {
    handles.push_back(ex.spawn_with_handle([n] {
      std::uint64_t sum = 0;
      for (std::uint64_t k = 0; k <= n * 1000; ++k) sum += k;
      return sum;
    }));
  }
  for (std::uint64_t n = 0; n < handles.size(); ++n) {
    const std::uint64_t top = n * 1000;
    EXPECT_EQ(handles[n].get(), top * (top + 1) / 2);
  }
}

TEST(Executor, AnExceptionReachesTheHandle) {
  kc::WorkStealingExecutor ex(2);
  auto handle = ex.spawn_with_handle([]() -> int { throw std::runtime_error("task failed"); });
  EXPECT_THROW(handle.get(), std::runtime_error);
  EXPECT_EQ(ex.metrics().tasks_failed, 0U);  // observed through the handle: not unhandled
}

TEST(Executor, ExceptionsFromDetachedTasksAreCountedReportedAndNeverKillAWorker) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<int> reported{0};
  ex.set_unhandled_exception_handler([&reported](std::exception_ptr error) {
    if (kc::describe_exception(error) == "detached failure") reported.fetch_add(1);
  });
  for (int i = 0; i < 100; ++i) ex.spawn([] { throw std::runtime_error("detached failure"); });
  ex.spawn([] { throw kc::Cancelled(); });  // a cooperative stop, not a failure
  std::atomic<int> later{0};
  for (int i = 0; i < 100; ++i) ex.spawn([&later] { later.fetch_add(1); });
  ex.shutdown();
  EXPECT_EQ(reported.load(), 100);
  EXPECT_EQ(later.load(), 100);
  EXPECT_EQ(ex.metrics().tasks_failed, 100U);
}

TEST(Executor, SpawningAfterShutdownThrowsExecutorShutdown) {
  kc::WorkStealingExecutor ex(2);
  ex.shutdown();
  EXPECT_THROW(ex.spawn([] {}), kc::ExecutorShutdown);
  EXPECT_THROW((void)ex.spawn_with_handle([] { return 1; }), kc::ExecutorShutdown);
}

TEST(Executor, ShutdownWaitsForChildrenSpawnedDuringShutdown) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<int> children{0};
  std::latch started(1);
  ex.spawn([&] {
    started.count_down();
    std::this_thread::sleep_for(20ms);  // shutdown() begins meanwhile
    for (int i = 0; i < 1000; ++i) ex.spawn([&children] { children.fetch_add(1); });
  });
  started.wait();
  ex.shutdown();
  EXPECT_EQ(children.load(), 1000);
}

TEST(Executor, ShutdownIsIdempotentAndTheDestructorAfterItIsSafe) {
  kc::WorkStealingExecutor ex(2);
  ex.spawn([] {});
  ex.shutdown();
  ex.shutdown();
  std::thread other([&ex] { ex.shutdown(); });
  other.join();
}

TEST(Executor, ShutdownFromAWorkerThrowsLogicError) {
  kc::WorkStealingExecutor ex(1);
  auto handle = ex.spawn_with_handle([&ex] {
    try {
      ex.shutdown();
    } catch (const std::logic_error&) {
      return true;
    }
    return false;
  });
  EXPECT_TRUE(handle.get());
}

TEST(Executor, AbortBeforeStartMeansTheTaskNeverRunsAndItsHandleSaysCancelled) {
  kc::WorkStealingExecutor ex(1);
  std::latch release(1);
  std::latch blocking(1);
  ex.spawn([&] {
    blocking.count_down();
    release.wait();  // holds the only worker
  });
  blocking.wait();
  std::atomic<bool> ran{false};
  auto handle = ex.spawn_with_handle([&ran] { ran.store(true); });
  handle.abort();
  release.count_down();
  EXPECT_THROW(handle.get(), kc::Cancelled);
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(ex.metrics().tasks_cancelled, 1U);
}

TEST(Executor, GetOnTheOnlyWorkerRunsTheAwaitedTaskInsteadOfDeadlocking) {
  kc::WorkStealingExecutor ex(1);
  auto outer = ex.spawn_with_handle([&ex] {
    auto inner = ex.spawn_with_handle([] { return 20; });
    auto second = ex.spawn_with_handle([] { return 22; });
    return inner.get() + second.get();
  });
  EXPECT_EQ(outer.get(), 42);
}

TEST(Executor, OutsideThreadsAndTaskChildrenSpawningTogetherGiveExactTotals) {
  constexpr int kThreads = 3;
  constexpr int kPerThread = 2000;
  constexpr int kChildren = 5;
  std::atomic<int> ran{0};
  kc::WorkStealingExecutor ex(2);
  std::vector<std::thread> spawners;
  for (int t = 0; t < kThreads; ++t) {
    spawners.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        ex.spawn([&] {
          ran.fetch_add(1);
          for (int c = 0; c < kChildren; ++c) ex.spawn([&ran] { ran.fetch_add(1); });
        });
      }
    });
  }
  for (auto& spawner : spawners) spawner.join();
  ex.shutdown();
  EXPECT_EQ(ran.load(), kThreads * kPerThread * (1 + kChildren));
  EXPECT_EQ(ex.metrics().tasks_completed, static_cast<std::uint64_t>(kThreads * kPerThread * (1 + kChildren)));
}

TEST(Executor, CancellingTheExecutorTokenDiscardsTasksThatHaveNotStarted) {
  kc::WorkStealingExecutor ex(1);
  std::latch release(1);
  std::latch blocking(1);
  ex.spawn([&] {
    blocking.count_down();
    release.wait();
  });
  blocking.wait();
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) ex.spawn([&ran] { ran.fetch_add(1); });
  ex.token().cancel();
  release.count_down();
  ex.shutdown();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(ex.metrics().tasks_cancelled, 1000U);
}

TEST(Executor, AnIdleExecutorParksItsWorkers) {
  kc::WorkStealingExecutor ex(2);
  ex.spawn_with_handle([] {}).get();
  EXPECT_TRUE(eventually([&ex] { return ex.metrics().workers_idle == 2; }));
  EXPECT_GT(ex.metrics().parks, 0U);
}

// Only one parked worker (the watcher) wakes on park_timeout; the others sleep until woken. Each
// burst needs all four workers at once: its tasks wait for each other, so every parked worker,
// watcher or not, must be woken by the burst itself.
TEST(Executor, EveryParkedWorkerWakesForABurstThatNeedsThemAll) {
  constexpr std::size_t kWorkers = 4;
  kc::WorkerConfig config;
  config.worker_count = kWorkers;
  config.park_timeout = 5ms;  // the watcher times out, and hands over, often
  kc::WorkStealingExecutor ex(config);
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(eventually([&ex] { return ex.metrics().workers_idle == kWorkers; }));
    std::atomic<std::size_t> arrived{0};
    std::vector<kc::JoinHandle<bool>> handles;
    for (std::size_t i = 0; i < kWorkers; ++i) {
      handles.push_back(ex.spawn_with_handle([&arrived] {
        arrived.fetch_add(1);
        return eventually([&arrived] { return arrived.load() == kWorkers; });
      }));
    }
    for (auto& handle : handles) EXPECT_TRUE(handle.get()) << "round " << round;
  }
}

// Idle protocol 3 without the safety net: the park timeout is an hour, so a wake-up lost between
// a worker's spawn onto its own queue and the other worker going to sleep would leave the spawned
// task unrun while its spawner spins. The spawner waits a varying while first, so that the other
// worker is caught at every stage: searching, registering as a sleeper, asleep.
TEST(Executor, ASpawnOntoAWorkersOwnQueueWakesTheOtherWorkerWithoutTheParkTimeout) {
  kc::WorkerConfig config;
  config.worker_count = 2;
  config.park_timeout = std::chrono::hours(1);
  kc::WorkStealingExecutor ex(config);
#if defined(KNHK_SANITIZED)
  constexpr int kRounds = 300;
#else
  constexpr int kRounds = 3000;
#endif
  for (int round = 0; round < kRounds; ++round) {
    const auto delay = std::chrono::microseconds(round % 64);
    const bool ran = ex.spawn_with_handle([&ex, delay] {
                         const auto until = std::chrono::steady_clock::now() + delay;
                         while (std::chrono::steady_clock::now() < until) {
                         }
                         // Shared: after a failed round the task may still run once this one returned.
                         auto started = std::make_shared<std::atomic<bool>>(false);
                         ex.spawn([started] { started->store(true); });
                         // Spins rather than get(): a helping spawner would run the task itself.
                         const auto deadline = std::chrono::steady_clock::now() + 10s;
                         while (!started->load()) {
                           if (std::chrono::steady_clock::now() > deadline) return false;
                         }
                         return true;
                       }).get();
    ASSERT_TRUE(ran) << "round " << round << ": the other worker never woke for the spawned task";
  }
}

// Runtime objects come from a pool of 16-byte-aligned blocks; an over-aligned value or callable
// must still get its alignment (a join state holds the value, a record the callable).
struct alignas(64) OverAligned {
  OverAligned() noexcept : aligned(at_64(this)) {}
  OverAligned(const OverAligned& other) noexcept : aligned(other.aligned && at_64(this)) {}
  OverAligned& operator=(const OverAligned& other) noexcept {
    aligned = other.aligned && at_64(this);
    return *this;
  }
  ~OverAligned() = default;
  static bool at_64(const void* address) noexcept { return reinterpret_cast<std::uintptr_t>(address) % 64 == 0; }
  bool aligned;
};

TEST(Executor, OverAlignedValuesAndCallablesKeepTheirAlignment) {
  kc::WorkStealingExecutor ex(2);
  const OverAligned captured;
  auto handle = ex.spawn_with_handle([captured] { return OverAligned(captured); });
  EXPECT_TRUE(handle.get().aligned);
  // Not for Task<OverAligned>: g++ 12 aligns no coroutine frame beyond 16 bytes (task.hpp).
}

TEST(Executor, DroppingAHandleDetachesTheTask) {
  std::atomic<bool> ran{false};
  {
    kc::WorkStealingExecutor ex(2);
    {
      auto handle = ex.spawn_with_handle([&ran] {
        std::this_thread::sleep_for(5ms);
        ran.store(true);
      });
    }
    ex.shutdown();  // graceful: waits for the detached task (the destructor would cancel it)
  }
  EXPECT_TRUE(ran.load());
}

TEST(Executor, MetricsReportUtilisationBetweenZeroAndOne) {
  kc::WorkStealingExecutor ex(2);
  for (int i = 0; i < 1000; ++i) ex.spawn([] {});
  ex.shutdown();
  const double utilisation = ex.metrics().cpu_utilization;
  EXPECT_GE(utilisation, 0.0);
  EXPECT_LE(utilisation, 1.0);
}

// --- Misuse is a typed error (API.md, Errors) ---

TEST(JoinHandleMisuse, ASecondGetOfAFailedIntHandleThrowsLogicErrorInsteadOfCrashing) {
  kc::WorkStealingExecutor ex(1);
  auto handle = ex.spawn_with_handle([]() -> int { throw std::runtime_error("boom"); });
  EXPECT_THROW(handle.get(), std::runtime_error);

  EXPECT_THROW(handle.get(), std::logic_error);
}

TEST(JoinHandleMisuse, ASecondGetOfAStringHandleThrowsLogicErrorInsteadOfAMovedFromValue) {
  kc::WorkStealingExecutor ex(1);
  auto handle = ex.spawn_with_handle([] { return std::string(100, 'x'); });
  EXPECT_EQ(handle.get(), std::string(100, 'x'));

  EXPECT_THROW(handle.get(), std::logic_error);
}

TEST(JoinHandleMisuse, ASecondGetOfAVoidHandleThrowsLogicErrorInsteadOfSucceedingAgain) {
  kc::WorkStealingExecutor ex(1);
  auto handle = ex.spawn_with_handle([] {});
  handle.get();

  EXPECT_THROW(handle.get(), std::logic_error);
}

TEST(JoinHandleMisuse, ASecondGetOfAFailedVoidHandleThrowsLogicError) {
  kc::WorkStealingExecutor ex(1);
  auto handle = ex.spawn_with_handle([] { throw std::runtime_error("boom"); });
  EXPECT_THROW(handle.get(), std::runtime_error);

  EXPECT_THROW(handle.get(), std::logic_error);
}

TEST(JoinHandleMisuse, GetOnAMovedFromHandleThrowsLogicError) {
  kc::WorkStealingExecutor ex(1);
  auto handle = ex.spawn_with_handle([] { return 7; });
  auto moved = std::move(handle);
  EXPECT_EQ(moved.get(), 7);

  EXPECT_THROW(handle.get(), std::logic_error);  // NOLINT(bugprone-use-after-move): the misuse under test
}

TEST(JoinHandleMisuse, ASecondCoAwaitOfAHandleThrowsLogicError) {
  kc::WorkStealingExecutor ex(1);
  auto outer = ex.spawn_with_handle([&ex]() -> kc::Task<bool> {
    auto handle = ex.spawn_with_handle([] { return std::string(50, 'y'); });
    const std::string first = co_await handle;
    try {
      (void)co_await handle;
    } catch (const std::logic_error&) {
      co_return first == std::string(50, 'y');
    }
    co_return false;
  });

  EXPECT_TRUE(outer.get());
}

TEST(JoinHandleMisuse, CoAwaitOnAMovedFromHandleThrowsLogicError) {
  kc::WorkStealingExecutor ex(1);
  auto outer = ex.spawn_with_handle([&ex]() -> kc::Task<bool> {
    auto handle = ex.spawn_with_handle([] { return 3; });
    auto moved = std::move(handle);
    bool refused = false;
    try {
      (void)co_await handle;  // NOLINT(bugprone-use-after-move): the misuse under test
    } catch (const std::logic_error&) {
      refused = true;
    }
    co_return refused && co_await moved == 3;
  });

  EXPECT_TRUE(outer.get());
}

TEST(Executor, ANegativeParkTimeoutIsRejected) {
  kc::WorkerConfig config;
  config.worker_count = 1;
  config.park_timeout = std::chrono::milliseconds(-1);

  EXPECT_THROW(kc::WorkStealingExecutor{config}, std::invalid_argument);
}

namespace {
// Context switches of this process's threads whose name starts with `prefix` (from /proc): an
// idle worker that sleeps until woken makes none.
std::uint64_t context_switches_of_threads_named(const std::string& prefix) {
  std::uint64_t total = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", error)) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind(prefix, 0) != 0) continue;
    std::ifstream status(entry.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
        total += std::stoull(line.substr(line.find(':') + 1));
      }
    }
  }
  return total;
}
}  // namespace

TEST(Executor, ByDefaultAnIdleExecutorsParkedWorkersNeverWakeOnATimer) {
  kc::WorkerConfig config;  // park_timeout defaults to 0: no timed wake-up
  config.worker_count = 2;
  config.thread_name = "idle-probe";
  kc::WorkStealingExecutor ex(config);
  ASSERT_TRUE(eventually([&] { return ex.metrics().workers_idle == 2; }));
  std::this_thread::sleep_for(20ms);  // past any wake-up still in flight from the start
  ASSERT_TRUE(eventually([&] { return ex.metrics().workers_idle == 2; }));
  const std::uint64_t before = context_switches_of_threads_named("idle-probe");

  std::this_thread::sleep_for(350ms);  // three wake-ups of a 100 ms safety net

  EXPECT_EQ(context_switches_of_threads_named("idle-probe"), before);
  EXPECT_EQ(ex.metrics().workers_idle, 2U);
}

TEST(Executor, SyncWaitOnAWorkerThrowsLogicErrorInsteadOfDeadlocking) {
  kc::WorkStealingExecutor ex(1);
  auto handle = ex.spawn_with_handle([] {
    try {
      kc::sync_wait([]() -> kc::Task<int> { co_return 1; }());
    } catch (const std::logic_error&) {
      return true;
    }
    return false;
  });

  EXPECT_TRUE(handle.get());
}

// --- Counters are exact once the end is observable ---

TEST(ExecutorMetrics, TasksCompletedCountsATaskByTheTimeItsHandleReportsIt) {
  kc::WorkStealingExecutor ex(2);
  for (std::uint64_t i = 1; i <= 5000; ++i) {
    auto handle = ex.spawn_with_handle([] { return 1; });
    EXPECT_EQ(handle.get(), 1);

    ASSERT_EQ(ex.metrics().tasks_completed, i);
  }
}

TEST(ExecutorMetrics, TasksCompletedCountsACoroutineTaskByTheTimeItsHandleReportsIt) {
  kc::WorkStealingExecutor ex(2);
  for (std::uint64_t i = 1; i <= 2000; ++i) {
    auto handle = ex.spawn_with_handle([]() -> kc::Task<int> { co_return 1; });
    while (!handle.is_finished()) std::this_thread::yield();

    ASSERT_EQ(ex.metrics().tasks_completed, i);
    EXPECT_EQ(handle.get(), 1);
  }
}

TEST(ExecutorMetrics, TasksFailedCountsADetachedFailureWhoseLastStepRanOnAnotherExecutor) {
  kc::WorkStealingExecutor home(1);
  kc::WorkStealingExecutor elsewhere(1);
  std::atomic<int> handled{0};
  home.set_unhandled_exception_handler([&](std::exception_ptr) { handled.fetch_add(1); });
  for (int i = 0; i < 2; ++i) {
    home.spawn([&elsewhere]() -> kc::Task<void> {
      co_await elsewhere.schedule();  // the task's last step runs on another executor's worker
      throw std::runtime_error("failed elsewhere");
    });
  }
  home.shutdown();

  EXPECT_EQ(handled.load(), 2);
  EXPECT_EQ(home.metrics().tasks_failed, 2U);
}

// --- The destructor cancels, then joins (API.md) ---

TEST(ExecutorDestructor, DestroyingTheExecutorEndsATaskSleepingForAnHour) {
  std::atomic<bool> started{false};
  std::atomic<bool> cancelled{false};
  {
    kc::WorkStealingExecutor ex(2);
    ex.spawn([&]() -> kc::Task<void> {
      started.store(true);
      try {
        co_await kc::sleep_for(1h);
      } catch (const kc::Cancelled&) {
        cancelled.store(true);
        throw;
      }
    });
    ASSERT_TRUE(eventually([&] { return started.load(); }));
  }  // cancels the executor's token, then joins: returns long before the hour

  EXPECT_TRUE(cancelled.load());
}

TEST(ExecutorDestructor, TasksQueuedWhenTheExecutorIsDestroyedNeverRun) {
  std::atomic<bool> blocker_started{false};
  std::atomic<int> ran{0};
  {
    kc::WorkStealingExecutor ex(1);
    ex.spawn([&] {
      blocker_started.store(true);
      // Holds the only worker until the destructor has cancelled the executor's token.
      while (!kc::current_token().is_cancelled()) std::this_thread::yield();
    });
    ASSERT_TRUE(eventually([&] { return blocker_started.load(); }));
    for (int i = 0; i < 100; ++i) ex.spawn([&ran] { ran.fetch_add(1); });
  }

  EXPECT_EQ(ran.load(), 0);
}

TEST(ExecutorDestructor, ShutdownBeforeTheDestructorStillDrainsGracefully) {
  std::atomic<int> ran{0};
  {
    kc::WorkStealingExecutor ex(1);
    ex.spawn([] { std::this_thread::sleep_for(5ms); });
    for (int i = 0; i < 100; ++i) ex.spawn([&ran] { ran.fetch_add(1); });
    ex.shutdown();
  }

  EXPECT_EQ(ran.load(), 100);
}
