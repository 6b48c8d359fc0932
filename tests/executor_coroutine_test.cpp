// Coroutine tasks on the WorkStealingExecutor: spawning Tasks, awaiting join handles, waking from
// cancellation, schedule(), block_on, and shutdown waiting for suspended tasks.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/executor.hpp"
#include "knhk/concurrency/sync_wait.hpp"
#include "knhk/concurrency/task.hpp"

namespace kc = knhk::concurrency;
using namespace std::chrono_literals;

namespace {
kc::Task<int> answer() { co_return 42; }

// Each task spawns the next and awaits it: `depth` tasks suspended at once, resumed one by one as
// the chain unwinds.
kc::Task<int> awaited_chain(kc::WorkStealingExecutor& ex, int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await ex.spawn_with_handle(awaited_chain(ex, depth - 1));
}
}  // namespace

TEST(ExecutorCoroutines, ASpawnedTaskReturnsItsValueThroughItsHandle) {
  kc::WorkStealingExecutor ex(2);
  auto handle = ex.spawn_with_handle(answer());
  EXPECT_EQ(handle.get(), 42);
}

TEST(ExecutorCoroutines, ACoroutineLambdasCapturesLiveUntilItsTaskEnds) {
  kc::WorkStealingExecutor ex(2);
  auto handle = ex.spawn_with_handle([&ex, text = std::string(64, 'k')]() -> kc::Task<std::size_t> {
    auto inner = ex.spawn_with_handle([]() -> kc::Task<int> {
      std::this_thread::sleep_for(5ms);
      co_return 1;
    });
    const int one = co_await inner;  // suspends: the lambda must outlive this point
    co_return text.size() + static_cast<std::size_t>(one);
  });
  EXPECT_EQ(handle.get(), 65U);
}

TEST(ExecutorCoroutines, AwaitingAJoinHandleResumesOnAWorkerOfTheExecutor) {
  kc::WorkStealingExecutor ex(2);
  auto handle = ex.spawn_with_handle([&ex]() -> kc::Task<bool> {
    co_await ex.spawn_with_handle([] { std::this_thread::sleep_for(2ms); });
    co_return kc::WorkStealingExecutor::current() == &ex;
  });
  EXPECT_TRUE(handle.get());
}

// A task ending on a worker hands its awaiter to that worker as its next task (the "next" slot),
// which the worker's loop runs: the unwinding never nests one resumption inside another.
TEST(ExecutorCoroutines, ADeepChainOfAwaitedHandlesUnwindsInConstantStack) {
  for (const std::size_t workers : {std::size_t{1}, std::size_t{2}}) {
    kc::WorkStealingExecutor ex(workers);
    constexpr int kDepth = 20'000;
    EXPECT_EQ(ex.block_on(awaited_chain(ex, kDepth)), kDepth) << workers << " workers";
  }
}

// A worker helping in get() runs a child whose end completes another task's join. That task's
// resumption must stay within other workers' reach: get() may return at once, and its caller spin
// (here, waiting for that very task) without ever looking for work again.
TEST(ExecutorCoroutines, AJoinCompletedWhileHelpingInGetIsNotHeldBackByTheHelper) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> c_started{false};
  std::atomic<bool> x_returning{false};
  std::atomic<bool> a_resumed{false};
  auto p = ex.spawn_with_handle([&] {
    // X, the oldest task in this worker's queue, is what the other worker steals. It ends once C
    // has started, and C ends only after X has: so this get() returns right after C's end.
    auto x = ex.spawn_with_handle([&] {
      while (!c_started) std::this_thread::yield();
      x_returning = true;
    });
    auto a = ex.spawn_with_handle([&]() -> kc::Task<void> {
      co_await ex.spawn_with_handle([&] {
        c_started = true;
        while (!x_returning) std::this_thread::yield();
        std::this_thread::sleep_for(2ms);  // X's handle is complete by now, most likely
      });
      a_resumed = true;
    });
    x.get();  // helps: runs A, then C, whose end completes A's join
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!a_resumed && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    return a_resumed.load();
  });
  EXPECT_TRUE(p.get()) << "the awaiting task was never resumed while its worker was busy";
}

TEST(ExecutorCoroutines, AnExceptionInACoroutineTaskReachesTheHandleAndTheAwaiter) {
  kc::WorkStealingExecutor ex(2);
  auto failing = []() -> kc::Task<int> {
    throw std::runtime_error("coroutine failed");
    co_return 0;
  };
  EXPECT_THROW(ex.spawn_with_handle(failing()).get(), std::runtime_error);
  auto outer = ex.spawn_with_handle([&]() -> kc::Task<std::string> {
    try {
      co_await ex.spawn_with_handle(failing());
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  });
  EXPECT_EQ(outer.get(), "coroutine failed");
}

TEST(ExecutorCoroutines, DetachedCoroutineTasksRunAndTheirFailuresAreCounted) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<int> ran{0};
  std::atomic<int> reported{0};
  ex.set_unhandled_exception_handler([&reported](std::exception_ptr) { reported.fetch_add(1); });
  for (int i = 0; i < 100; ++i) {
    ex.spawn([&ran]() -> kc::Task<void> {
      ran.fetch_add(1);
      co_return;
    });
  }
  ex.spawn([]() -> kc::Task<void> {
    throw std::runtime_error("detached coroutine failed");
    co_return;
  });
  ex.shutdown();
  EXPECT_EQ(ran.load(), 100);
  EXPECT_EQ(reported.load(), 1);
  EXPECT_EQ(ex.metrics().tasks_failed, 1U);
  EXPECT_EQ(ex.metrics().tasks_completed, 101U);
}

TEST(ExecutorCoroutines, ACoroutineWaitingForCancellationIsRescheduledOntoItsExecutor) {
  kc::WorkStealingExecutor ex(2);
  const kc::CancelToken token;
  auto handle = ex.spawn_with_handle([&ex, token]() -> kc::Task<bool> {
    co_await token.cancelled();
    co_return kc::WorkStealingExecutor::current() == &ex;  // not the cancelling thread
  });
  std::this_thread::sleep_for(2ms);
  token.cancel();
  EXPECT_TRUE(handle.get());
}

TEST(ExecutorCoroutines, ScheduleMovesACoroutineOntoTheExecutorAndBetweenExecutors) {
  kc::WorkStealingExecutor first(1);
  kc::WorkStealingExecutor second(1);
  auto hop = [&]() -> kc::Task<std::vector<kc::WorkStealingExecutor*>> {
    std::vector<kc::WorkStealingExecutor*> seen{kc::WorkStealingExecutor::current()};
    co_await first.schedule();
    seen.push_back(kc::WorkStealingExecutor::current());
    co_await second.schedule();
    seen.push_back(kc::WorkStealingExecutor::current());
    co_await first.schedule();
    seen.push_back(kc::WorkStealingExecutor::current());
    co_return seen;
  };
  const auto seen = kc::sync_wait(hop());
  EXPECT_EQ(seen, (std::vector<kc::WorkStealingExecutor*>{nullptr, &first, &second, &first}));
}

TEST(ExecutorCoroutines, BlockOnReturnsTheValueFromOutsideAndFromTheOnlyWorker) {
  kc::WorkStealingExecutor ex(1);
  EXPECT_EQ(ex.block_on(answer()), 42);
  auto nested = ex.spawn_with_handle([&ex] { return ex.block_on(answer()) + 1; });
  EXPECT_EQ(nested.get(), 43);
}

TEST(ExecutorCoroutines, ShutdownWaitsForATaskSuspendedInAWait) {
  auto finished = std::make_shared<std::atomic<bool>>(false);
  const kc::CancelToken token;
  kc::WorkStealingExecutor ex(2);
  ex.spawn([token, finished]() -> kc::Task<void> {
    co_await token.cancelled();
    finished->store(true);
  });
  std::thread canceller([token] {
    std::this_thread::sleep_for(20ms);  // shutdown() is already waiting by then
    token.cancel();
  });
  ex.shutdown();
  EXPECT_TRUE(finished->load());
  canceller.join();
}

TEST(ExecutorCoroutines, AbortBeforeStartEndsACoroutineTaskWithCancelled) {
  kc::WorkStealingExecutor ex(1);
  std::atomic<bool> release{false};
  ex.spawn([&release] {
    while (!release.load()) std::this_thread::yield();  // holds the only worker
  });
  std::atomic<bool> ran{false};
  auto handle = ex.spawn_with_handle([&ran]() -> kc::Task<void> {
    ran.store(true);
    co_return;
  });
  handle.abort();
  release.store(true);
  EXPECT_THROW(handle.get(), kc::Cancelled);
  EXPECT_FALSE(ran.load());
}

TEST(ExecutorCoroutines, ManyTasksAwaitingTheirChildrenGiveExactCounts) {
  constexpr int kParents = 2000;
  kc::WorkStealingExecutor ex(2);
  std::atomic<int> sum{0};
  for (int i = 0; i < kParents; ++i) {
    ex.spawn([&ex, &sum, i]() -> kc::Task<void> {
      auto child = ex.spawn_with_handle([i]() -> kc::Task<int> { co_return i; });
      sum.fetch_add(co_await child);
    });
  }
  ex.shutdown();
  EXPECT_EQ(sum.load(), kParents * (kParents - 1) / 2);
  EXPECT_EQ(ex.metrics().tasks_completed, static_cast<std::uint64_t>(2 * kParents));
}

TEST(ExecutorCoroutines, GetOnTheOnlyWorkerWaitsForASuspendedTaskWithoutDeadlock) {
  kc::WorkStealingExecutor ex(1);
  const kc::CancelToken token;
  std::thread canceller([token] {
    std::this_thread::sleep_for(20ms);  // the only worker is waiting in get() by then
    token.cancel();
  });
  auto outer = ex.spawn_with_handle([&ex, token] {
    auto suspended = ex.spawn_with_handle([token]() -> kc::Task<int> {
      co_await token.cancelled();  // resumed by a record queued on this executor
      co_return 7;
    });
    return suspended.get();  // must keep the worker able to run that record
  });
  EXPECT_EQ(outer.get(), 7);
  canceller.join();
}

namespace {
// Sets its flag when the last copy is destroyed (moved-from copies do not count).
struct DestructionFlag {
  explicit DestructionFlag(std::shared_ptr<std::atomic<bool>> flag) : flag_(std::move(flag)) {}
  DestructionFlag(DestructionFlag&& other) noexcept = default;
  DestructionFlag(const DestructionFlag&) = delete;
  DestructionFlag& operator=(const DestructionFlag&) = delete;
  DestructionFlag& operator=(DestructionFlag&&) = delete;
  ~DestructionFlag() {
    if (flag_) flag_->store(true);
  }
  std::shared_ptr<std::atomic<bool>> flag_;
};
}  // namespace

TEST(ExecutorCoroutines, ATasksCapturesAreDestroyedBeforeShutdownReturnsEvenWhenItEndsElsewhere) {
  auto destroyed = std::make_shared<std::atomic<bool>>(false);
  kc::WorkStealingExecutor other(1);
  {
    kc::WorkStealingExecutor ex(1);
    ex.spawn([guard = DestructionFlag(destroyed), &other]() -> kc::Task<void> {
      co_await other.schedule();  // the task's last step runs on the other executor
      std::this_thread::sleep_for(5ms);
    });
    ex.shutdown();
    EXPECT_TRUE(destroyed->load());
  }
}

TEST(ExecutorCoroutines, SpawnedAndCompletedAgreeAfterTasksHopBetweenExecutors) {
  kc::WorkStealingExecutor ex(2);
  kc::WorkStealingExecutor other(1);
  std::atomic<int> back{0};
  for (int i = 0; i < 50; ++i) {
    ex.spawn([&]() -> kc::Task<void> {
      co_await other.schedule();
      co_await ex.schedule();
      back.fetch_add(1);
    });
  }
  // Hops back onto `ex` from outside it are refused once its shutdown begins: let them land.
  while (back.load() < 50) std::this_thread::sleep_for(1ms);
  ex.shutdown();
  other.shutdown();
  const kc::ExecutorMetrics m = ex.metrics();
  EXPECT_EQ(m.tasks_spawned, m.tasks_completed);
  EXPECT_EQ(other.metrics().tasks_spawned, other.metrics().tasks_completed);
}
