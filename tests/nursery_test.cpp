// Nursery and nursery_scope: structured concurrency on real executors, with real tokens and the
// library's real timers. Every behaviour runs on a one-worker executor and on several workers.
// No test asserts on how fast anything is; "promptly" means "long before a sleep of an hour ends".
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "knhk/concurrency.hpp"

namespace kc = knhk::concurrency;
using namespace std::chrono_literals;

namespace {

// Collects what reaches the executor's unhandled-exception handler.
struct HandlerLog {
  std::mutex mutex;
  std::vector<std::string> messages;

  void install(kc::WorkStealingExecutor& ex) {
    ex.set_unhandled_exception_handler([this](std::exception_ptr error) {
      const std::lock_guard lock(mutex);
      messages.push_back(kc::describe_exception(error));
    });
  }
  std::vector<std::string> snapshot() {
    const std::lock_guard lock(mutex);
    return messages;
  }
};

std::vector<std::string> messages_of(const kc::NurseryError& error) {
  std::vector<std::string> out;
  for (const std::exception_ptr& e : error.errors()) out.push_back(kc::describe_exception(e));
  return out;
}

// A child that sleeps for an hour unless cancelled: it counts itself in `started` first, in
// `cancelled` when the sleep ends with Cancelled (rethrown: a cancelled child is no failure), and
// sets `went_on` if the sleep ever ended normally. Null counters are skipped.
kc::Task<void> sleep_an_hour(std::atomic<int>* started, std::atomic<int>* cancelled, std::atomic<bool>* went_on) {
  if (started != nullptr) started->fetch_add(1);
  try {
    co_await kc::sleep_for(1h);
  } catch (const kc::Cancelled&) {
    if (cancelled != nullptr) cancelled->fetch_add(1);
    throw;
  }
  if (went_on != nullptr) went_on->store(true);
}

class NurseryTest : public ::testing::TestWithParam<std::size_t> {
 protected:
  kc::WorkStealingExecutor ex{GetParam()};
};

}  // namespace

INSTANTIATE_TEST_SUITE_P(Workers, NurseryTest, ::testing::Values(1, 2, 4),
                         [](const auto& param_info) { return std::to_string(param_info.param) + "Workers"; });

TEST_P(NurseryTest, AnEmptyNurseryCompletesWaitAllAtOnce) {
  kc::Nursery nursery(ex);

  kc::sync_wait(nursery.wait_all());

  EXPECT_TRUE(nursery.is_empty());
  EXPECT_EQ(nursery.task_count(), 0U);
  EXPECT_FALSE(nursery.token().is_cancelled());
}

TEST_P(NurseryTest, AnEmptyNurseryCompletesWaitAnyAtOnceWithoutCancellingItself) {
  kc::Nursery nursery(ex);

  kc::sync_wait(nursery.wait_any());

  EXPECT_FALSE(nursery.token().is_cancelled());
}

TEST_P(NurseryTest, OneTaskRunsBeforeWaitAllCompletes) {
  std::atomic<int> runs{0};
  kc::Nursery nursery(ex);

  nursery.spawn([&] { runs.fetch_add(1); });
  kc::sync_wait(nursery.wait_all());

  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(nursery.task_count(), 1U);
  EXPECT_FALSE(nursery.is_empty());
}

TEST_P(NurseryTest, AHundredTasksAllRunAndTaskCountSaysSo) {
  std::atomic<int> runs{0};
  kc::Nursery nursery(ex);

  for (int i = 0; i < 100; ++i) nursery.spawn([&] { runs.fetch_add(1); });
  const std::size_t counted = nursery.task_count();
  kc::sync_wait(nursery.wait_all());

  EXPECT_EQ(counted, 100U);
  EXPECT_EQ(runs.load(), 100);
}

TEST_P(NurseryTest, EveryFormOfWorkRuns) {
  std::atomic<int> runs{0};
  kc::Nursery nursery(ex);
  auto count = [&runs]() -> kc::Task<void> {
    runs.fetch_add(1);
    co_return;
  };

  nursery.spawn([&] { runs.fetch_add(1); });  // a callable
  nursery.spawn(count);                       // a callable returning a Task
  nursery.spawn(count());                     // a Task
  kc::sync_wait(nursery.wait_all());

  EXPECT_EQ(runs.load(), 3);
}

TEST_P(NurseryTest, TenThousandChildrenAllRunFromInsideATask) {
  std::atomic<int> runs{0};

  ex.block_on([&]() -> kc::Task<void> {
    kc::Nursery nursery(ex);
    for (int i = 0; i < 10'000; ++i) nursery.spawn([&] { runs.fetch_add(1, std::memory_order_relaxed); });
    co_await nursery.wait_all();
    EXPECT_EQ(nursery.task_count(), 10'000U);
  }());

  EXPECT_EQ(runs.load(), 10'000);
}

TEST_P(NurseryTest, ChildrenSpawningSiblingsWhileWaitAllWaitsAreAllWaitedFor) {
  // A binary tree of depth 12 grown by the children themselves: 8191 nodes.
  std::atomic<int> runs{0};
  kc::Nursery nursery(ex);
  std::function<void(int)> grow = [&](int depth) {
    runs.fetch_add(1, std::memory_order_relaxed);
    if (depth == 0) return;
    nursery.spawn([&grow, depth] { grow(depth - 1); });
    nursery.spawn([&grow, depth] { grow(depth - 1); });
  };

  nursery.spawn([&] { grow(12); });
  kc::sync_wait(nursery.wait_all());

  EXPECT_EQ(runs.load(), 8191);
  EXPECT_EQ(nursery.task_count(), 8191U);
}

TEST_P(NurseryTest, CoroutineChildrenSpawningSiblingsAfterSuspendingAreWaitedFor) {
  std::atomic<int> runs{0};

  ex.block_on([&]() -> kc::Task<void> {
    kc::Nursery nursery(ex);
    for (int i = 0; i < 50; ++i) {
      nursery.spawn([&]() -> kc::Task<void> {
        co_await kc::sleep_for(1ms);
        nursery.spawn([&] { runs.fetch_add(1); });  // after the parent may already be waiting
        runs.fetch_add(1);
      });
    }
    co_await nursery.wait_all();
  }());

  EXPECT_EQ(runs.load(), 100);
}

TEST_P(NurseryTest, AChildsTokenDescendsFromTheNurserysToken) {
  kc::Nursery nursery(ex);
  std::atomic<bool> cancelled_seen{false};
  std::atomic<bool> started{false};

  nursery.spawn([&]() -> kc::Task<void> {
    const kc::CancelToken mine = kc::current_token();
    started.store(true);
    co_await mine.cancelled();
    cancelled_seen.store(true);
  });
  while (!started.load()) std::this_thread::yield();
  nursery.cancel();
  kc::sync_wait(nursery.wait_all());

  EXPECT_TRUE(cancelled_seen.load());
}

TEST_P(NurseryTest, WaitAnyReturnsAfterTheFirstCompletionAndCancelsTheRest) {
  std::atomic<bool> fast_done{false};
  std::atomic<bool> slow_went_on{false};
  kc::Nursery nursery(ex);

  nursery.spawn([&]() -> kc::Task<void> {
    co_await kc::sleep_for(1h);
    slow_went_on.store(true);  // must never run: the sleep ends with Cancelled
  });
  nursery.spawn([&] { fast_done.store(true); });
  kc::sync_wait(nursery.wait_any());

  EXPECT_TRUE(fast_done.load());
  EXPECT_TRUE(nursery.token().is_cancelled());
  EXPECT_FALSE(slow_went_on.load());
  kc::sync_wait(nursery.wait_all());  // the cancelled sleeper is no failure
}

TEST_P(NurseryTest, WaitAnyHasWaitedForEveryOtherChildWhenItReturns) {
  std::atomic<int> asleep{0};
  std::atomic<int> finished{0};
  kc::Nursery nursery(ex);

  for (int i = 0; i < 20; ++i) nursery.spawn(sleep_an_hour(&asleep, &finished, nullptr));
  while (asleep.load() < 20) std::this_thread::yield();  // all started: none can be discarded unrun
  nursery.spawn([&] { finished.fetch_add(1); });
  kc::sync_wait(nursery.wait_any());

  EXPECT_EQ(finished.load(), 21);
}

TEST_P(NurseryTest, WaitAnyRethrowsTheFirstChildsFailure) {
  kc::Nursery nursery(ex, kc::NurseryPolicy::supervise);

  nursery.spawn([] { throw std::runtime_error("first"); });

  EXPECT_THROW(
      {
        try {
          kc::sync_wait(nursery.wait_any());
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "first");
          throw;
        }
      },
      std::runtime_error);
  kc::sync_wait(nursery.wait_all());  // reported once: nothing left to report
}

TEST_P(NurseryTest, WaitAnyAfterAChildEndedReturnsAtOnce) {
  kc::Nursery nursery(ex);
  nursery.spawn([] {});
  kc::sync_wait(nursery.wait_all());

  kc::sync_wait(nursery.wait_any());

  EXPECT_TRUE(nursery.token().is_cancelled());
}

TEST_P(NurseryTest, DestructionWithoutWaitingCancelsAndJoinsTheChildren) {
  std::atomic<int> started{0};
  std::atomic<int> ended{0};
  std::atomic<bool> went_on{false};
  {
    kc::Nursery nursery(ex);
    for (int i = 0; i < 10; ++i) nursery.spawn(sleep_an_hour(&started, &ended, &went_on));
    while (started.load() < 10) std::this_thread::yield();
  }  // ~Nursery: cancels, then waits

  EXPECT_EQ(ended.load(), 10);
  EXPECT_FALSE(went_on.load());
}

TEST_P(NurseryTest, DestructionInsideATaskHelpsInsteadOfDeadlocking) {
  // On one worker the woken children can only end if the destructor runs them itself.
  std::atomic<int> started{0};
  std::atomic<int> ended{0};

  ex.block_on([&]() -> kc::Task<void> {
    {
      kc::Nursery nursery(ex);
      for (int i = 0; i < 20; ++i) nursery.spawn(sleep_an_hour(&started, &ended, nullptr));
      co_await kc::sleep_for(5ms);  // lets the children start and fall asleep
      // ~Nursery runs here, on the worker: it cancels, then runs the resumed children meanwhile.
    }
    EXPECT_EQ(ended.load(), started.load());
  }());

  EXPECT_EQ(ended.load(), started.load());
}

TEST_P(NurseryTest, AFailurePropagatesFromWaitAll) {
  kc::Nursery nursery(ex);

  nursery.spawn([] { throw std::runtime_error("boom"); });

  try {
    kc::sync_wait(nursery.wait_all());
    ADD_FAILURE() << "wait_all did not throw";
  } catch (const kc::NurseryError& e) {
    EXPECT_EQ(messages_of(e), std::vector<std::string>{"boom"});
    EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos);
  }
}

TEST_P(NurseryTest, SeveralFailuresAreAllReportedInTheOrderTheyHappened) {
  kc::Nursery nursery(ex, kc::NurseryPolicy::supervise);

  // Each child is spawned once the one before it has been counted as failed (the failure is
  // recorded before it is counted), so the order is known.
  for (std::uint64_t i = 0; i < 5; ++i) {
    nursery.spawn([i] { throw std::runtime_error("failure " + std::to_string(i)); });
    while (ex.metrics().tasks_failed != i + 1) std::this_thread::yield();
  }

  try {
    kc::sync_wait(nursery.wait_all());
    ADD_FAILURE() << "wait_all did not throw";
  } catch (const kc::NurseryError& e) {
    EXPECT_EQ(messages_of(e),
              (std::vector<std::string>{"failure 0", "failure 1", "failure 2", "failure 3", "failure 4"}));
  }
}

TEST_P(NurseryTest, PartialSuccessReportsOnlyTheFailures) {
  std::atomic<int> succeeded{0};
  kc::Nursery nursery(ex, kc::NurseryPolicy::supervise);

  for (int i = 0; i < 30; ++i) {
    if (i % 10 == 3) {
      nursery.spawn([i] { throw std::invalid_argument("bad " + std::to_string(i)); });
    } else {
      nursery.spawn([&] { succeeded.fetch_add(1); });
    }
  }

  try {
    kc::sync_wait(nursery.wait_all());
    ADD_FAILURE() << "wait_all did not throw";
  } catch (const kc::NurseryError& e) {
    std::vector<std::string> got = messages_of(e);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"bad 13", "bad 23", "bad 3"}));
  }
  EXPECT_EQ(succeeded.load(), 27);
}

TEST_P(NurseryTest, FailFastCancelsASleepingSiblingPromptly) {
  std::atomic<bool> sibling_asleep{false};
  std::atomic<bool> sibling_went_on{false};
  std::atomic<bool> sibling_saw_cancel{false};
  kc::Nursery nursery(ex);  // fail_fast is the default

  nursery.spawn([&]() -> kc::Task<void> {
    sibling_asleep.store(true);
    try {
      co_await kc::sleep_for(1h);
      sibling_went_on.store(true);
    } catch (const kc::Cancelled&) {
      sibling_saw_cancel.store(true);
      throw;  // a cancelled child is no failure
    }
  });
  nursery.spawn([&]() -> kc::Task<void> {
    while (!sibling_asleep.load()) co_await kc::sleep_for(1ms);  // a sibling not started is just discarded
    throw std::runtime_error("fail fast");
  });

  try {
    kc::sync_wait(nursery.wait_all());
    ADD_FAILURE() << "wait_all did not throw";
  } catch (const kc::NurseryError& e) {
    EXPECT_EQ(messages_of(e), std::vector<std::string>{"fail fast"});  // Cancelled is not listed
  }
  EXPECT_TRUE(sibling_saw_cancel.load());
  EXPECT_FALSE(sibling_went_on.load());
}

TEST_P(NurseryTest, SuperviseLeavesSiblingsRunning) {
  std::atomic<bool> sibling_finished{false};
  kc::Nursery nursery(ex, kc::NurseryPolicy::supervise);

  nursery.spawn([&]() -> kc::Task<void> {
    co_await kc::sleep_for(20ms);  // outlives its sibling's failure
    sibling_finished.store(true);
  });
  nursery.spawn([] { throw std::runtime_error("only me"); });

  EXPECT_THROW(kc::sync_wait(nursery.wait_all()), kc::NurseryError);
  EXPECT_TRUE(sibling_finished.load());
  EXPECT_FALSE(nursery.token().is_cancelled());
}

TEST_P(NurseryTest, CancelledCausedByTheNurserysCancellationIsNotAFailure) {
  kc::Nursery nursery(ex);
  for (int i = 0; i < 10; ++i) {
    nursery.spawn([]() -> kc::Task<void> { co_await kc::sleep_for(1h); });
  }

  nursery.cancel();

  EXPECT_NO_THROW(kc::sync_wait(nursery.wait_all()));
}

TEST_P(NurseryTest, CancelledFromSomewhereElseIsAFailure) {
  kc::Nursery nursery(ex);
  const kc::CancelToken unrelated;
  unrelated.cancel();

  nursery.spawn([unrelated]() -> kc::Task<void> { co_await kc::sleep_for(1h, unrelated); });

  EXPECT_THROW(kc::sync_wait(nursery.wait_all()), kc::NurseryError);
}

TEST_P(NurseryTest, ChildrenOfACancelledNurseryThatHaveNotStartedNeverRun) {
  std::atomic<int> runs{0};
  kc::Nursery nursery(ex);

  nursery.cancel();
  for (int i = 0; i < 100; ++i) nursery.spawn([&] { runs.fetch_add(1); });
  kc::sync_wait(nursery.wait_all());

  EXPECT_EQ(runs.load(), 0);
  EXPECT_EQ(nursery.task_count(), 100U);
}

TEST_P(NurseryTest, CancellingAnOuterNurseryCancelsEverythingBelow) {
  std::atomic<int> inner_cancelled{0};
  std::atomic<int> started{0};
  kc::Nursery outer(ex);

  for (int i = 0; i < 3; ++i) {
    outer.spawn([&]() -> kc::Task<void> {
      kc::Nursery inner(ex);  // made inside a child: its token descends from the outer one
      for (int j = 0; j < 3; ++j) inner.spawn(sleep_an_hour(&started, &inner_cancelled, nullptr));
      co_await inner.wait_all();
    });
  }
  while (started.load() < 9) std::this_thread::yield();
  outer.cancel();
  kc::sync_wait(outer.wait_all());

  EXPECT_EQ(inner_cancelled.load(), 9);
}

TEST_P(NurseryTest, CancellingTheParentTokenCancelsTheNurseryAndItsChildren) {
  const kc::CancelToken parent;
  std::atomic<bool> started{false};
  std::atomic<bool> went_on{false};
  kc::Nursery nursery(ex, parent);

  nursery.spawn([&]() -> kc::Task<void> {
    started.store(true);
    co_await kc::sleep_for(1h);
    went_on.store(true);
  });
  while (!started.load()) std::this_thread::yield();
  parent.cancel();

  // Cancelled from outside: wait_all says the work did not all happen.
  EXPECT_THROW(kc::sync_wait(nursery.wait_all()), kc::Cancelled);
  EXPECT_TRUE(nursery.token().is_cancelled());
  EXPECT_FALSE(went_on.load());
}

TEST_P(NurseryTest, AChildNurserysFailureSurfacesInItsParentAsOneFailure) {
  kc::Nursery outer(ex, kc::NurseryPolicy::supervise);

  outer.spawn([&]() -> kc::Task<void> {
    kc::Nursery inner(ex, kc::NurseryPolicy::supervise);
    inner.spawn([] { throw std::runtime_error("a"); });
    inner.spawn([] { throw std::runtime_error("b"); });
    co_await inner.wait_all();
  });

  try {
    kc::sync_wait(outer.wait_all());
    ADD_FAILURE() << "wait_all did not throw";
  } catch (const kc::NurseryError& e) {
    ASSERT_EQ(e.errors().size(), 1U);
    try {
      std::rethrow_exception(e.errors().front());
    } catch (const kc::NurseryError& inner) {
      EXPECT_EQ(inner.errors().size(), 2U);
    }
  }
}

TEST_P(NurseryTest, CancellingTheTaskThatWaitsCancelsTheNurseryItWaitsFor) {
  std::atomic<bool> went_on{false};
  const kc::CancelToken unrelated_parent;  // the nursery does not descend from the waiter

  auto waiter = ex.spawn_with_handle([&]() -> kc::Task<void> {
    kc::Nursery nursery(ex, unrelated_parent);
    nursery.spawn([&]() -> kc::Task<void> {
      co_await kc::sleep_for(1h);
      went_on.store(true);
    });
    co_await nursery.wait_all();
  });
  std::this_thread::sleep_for(5ms);
  waiter.abort();
  try {
    waiter.get();
  } catch (const kc::Cancelled&) {
    // aborted before it started: then nothing was spawned
  }

  EXPECT_FALSE(went_on.load());
}

TEST_P(NurseryTest, SpawnValueGivesTheChildsValueAndTheNurseryWaitsForIt) {
  kc::Nursery nursery(ex);

  kc::JoinHandle<int> plain = nursery.spawn_value([] { return 6 * 7; });
  kc::JoinHandle<std::string> coro = nursery.spawn_value([]() -> kc::Task<std::string> {
    co_await kc::sleep_for(1ms);
    co_return "done";
  });
  kc::sync_wait(nursery.wait_all());

  EXPECT_TRUE(plain.is_finished());
  EXPECT_TRUE(coro.is_finished());
  EXPECT_EQ(plain.get(), 42);
  EXPECT_EQ(coro.get(), "done");
  EXPECT_EQ(nursery.task_count(), 2U);
}

TEST_P(NurseryTest, ASpawnValueFailureReachesBothTheHandleAndTheNursery) {
  kc::Nursery nursery(ex);

  kc::JoinHandle<int> handle = nursery.spawn_value([]() -> int { throw std::runtime_error("value failed"); });

  EXPECT_THROW(kc::sync_wait(nursery.wait_all()), kc::NurseryError);
  EXPECT_THROW(handle.get(), std::runtime_error);
}

TEST_P(NurseryTest, AbortingASpawnValueChildIsNotAFailure) {
  kc::Nursery nursery(ex);
  std::atomic<bool> started{false};

  kc::JoinHandle<int> handle = nursery.spawn_value([&]() -> kc::Task<int> {
    started.store(true);
    co_await kc::sleep_for(1h);
    co_return 1;
  });
  while (!started.load()) std::this_thread::yield();
  handle.abort();

  EXPECT_NO_THROW(kc::sync_wait(nursery.wait_all()));
  EXPECT_THROW(handle.get(), kc::Cancelled);
  EXPECT_FALSE(nursery.token().is_cancelled());
}

TEST_P(NurseryTest, AFailureNoWaitReportedReachesTheExecutorsHandler) {
  HandlerLog log;
  log.install(ex);
  {
    std::atomic<bool> ran{false};
    kc::Nursery nursery(ex);
    nursery.spawn([&] {
      ran.store(true);
      throw std::runtime_error("unreported");
    });
    while (!ran.load()) std::this_thread::yield();
  }  // destroyed without a wait

  EXPECT_EQ(log.snapshot(), std::vector<std::string>{"unreported"});
}

TEST_P(NurseryTest, SeveralWaitsMayWaitAtOnce) {
  kc::Nursery nursery(ex);
  std::atomic<bool> release{false};
  nursery.spawn([&]() -> kc::Task<void> {
    while (!release.load()) co_await kc::sleep_for(1ms);
  });

  auto first = ex.spawn_with_handle(nursery.wait_all());
  auto second = ex.spawn_with_handle(nursery.wait_all());
  std::thread third([&] { kc::sync_wait(nursery.wait_all()); });
  release.store(true);

  EXPECT_NO_THROW(first.get());
  EXPECT_NO_THROW(second.get());
  third.join();
}

TEST_P(NurseryTest, SpawningAfterShutdownThrowsAndIsNotCounted) {
  kc::Nursery nursery(ex);
  ex.shutdown();

  EXPECT_THROW(nursery.spawn([] {}), kc::ExecutorShutdown);
  EXPECT_THROW((void)nursery.spawn_value([] { return 1; }), kc::ExecutorShutdown);
  EXPECT_EQ(nursery.task_count(), 0U);
  kc::sync_wait(nursery.wait_all());
}

TEST_P(NurseryTest, ANullCallableIsRejected) {
  kc::Nursery nursery(ex);
  std::function<void()> empty;
  void (*null_function)() = nullptr;

  EXPECT_THROW(nursery.spawn(empty), std::invalid_argument);
  EXPECT_THROW(nursery.spawn(null_function), std::invalid_argument);
  EXPECT_THROW(nursery.spawn(kc::Task<void>{}), std::invalid_argument);
  EXPECT_EQ(nursery.task_count(), 0U);
}

TEST_P(NurseryTest, FastShutdownThroughTheExecutorTokenEndsSleepingChildren) {
  std::atomic<int> started{0};
  kc::Nursery nursery(ex);
  for (int i = 0; i < 10; ++i) {
    nursery.spawn([&]() -> kc::Task<void> {
      started.fetch_add(1);
      co_await kc::sleep_for(1h);
    });
  }
  while (started.load() < 10) std::this_thread::yield();

  ex.token().cancel();
  ex.shutdown();

  // All ended, none of them a failure; the executor's cancellation came from outside the nursery.
  EXPECT_THROW(kc::sync_wait(nursery.wait_all()), kc::Cancelled);
}

TEST_P(NurseryTest, NurseryScopeWaitsForEveryChild) {
  std::atomic<int> runs{0};

  ex.block_on(kc::nursery_scope(ex, [&](kc::Nursery& n) -> kc::Task<void> {
    for (int i = 0; i < 100; ++i) {
      n.spawn([&]() -> kc::Task<void> {
        co_await kc::yield_now();
        runs.fetch_add(1);
      });
    }
    co_return;
  }));

  EXPECT_EQ(runs.load(), 100);
}

TEST_P(NurseryTest, NurseryScopeReportsChildFailuresLikeWaitAll) {
  EXPECT_THROW(ex.block_on(kc::nursery_scope(ex,
                                             [](kc::Nursery& n) -> kc::Task<void> {
                                               n.spawn([] { throw std::runtime_error("child"); });
                                               co_return;
                                             })),
               kc::NurseryError);
}

TEST_P(NurseryTest, NurseryScopeWhoseBodyThrowsCancelsWaitsAndRethrows) {
  std::atomic<int> started{0};
  std::atomic<int> ended{0};
  std::atomic<bool> went_on{false};

  try {
    ex.block_on(kc::nursery_scope(ex, [&](kc::Nursery& n) -> kc::Task<void> {
      for (int i = 0; i < 5; ++i) n.spawn(sleep_an_hour(&started, &ended, &went_on));
      while (started.load() < 5) co_await kc::sleep_for(1ms);  // none may be discarded unrun
      throw std::logic_error("body failed");
    }));
    ADD_FAILURE() << "nursery_scope did not throw";
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "body failed");
  }
  EXPECT_EQ(ended.load(), 5);  // every child had finished when the exception came out
  EXPECT_FALSE(went_on.load());
}

TEST_P(NurseryTest, NurseryScopeKeepsTheBodysCapturesAliveUntilItEnds) {
  auto shared = std::make_shared<int>(7);
  std::atomic<int> seen{0};

  ex.block_on(kc::nursery_scope(ex, [shared, &seen](kc::Nursery& n) -> kc::Task<void> {
    co_await kc::sleep_for(1ms);  // the lambda object is gone by now unless the scope keeps it
    n.spawn([&seen, value = *shared] { seen.store(value); });
  }));

  EXPECT_EQ(seen.load(), 7);
}

TEST_P(NurseryTest, ANurseryScopeInsideAChildIsCancelledWithItsParent) {
  std::atomic<bool> went_on{false};
  std::atomic<bool> started{false};
  kc::Nursery outer(ex);

  outer.spawn(kc::nursery_scope(ex, [&](kc::Nursery& inner) -> kc::Task<void> {
    inner.spawn([&]() -> kc::Task<void> {
      started.store(true);
      co_await kc::sleep_for(1h);
      went_on.store(true);
    });
    co_return;
  }));
  while (!started.load()) std::this_thread::yield();
  outer.cancel();
  kc::sync_wait(outer.wait_all());

  EXPECT_FALSE(went_on.load());
}

TEST_P(NurseryTest, ANurseryDestroyedRightAfterAwaitingAValueChildDoesNotWaitForThatChild) {
  // Awaited off the executor, the handle's awaiter resumes inline on the child's worker; the
  // nursery's destructor then runs there and must not find the child still counted.
  const int value = kc::sync_wait([&]() -> kc::Task<int> {
    int result = 0;
    {
      kc::Nursery nursery(ex);
      kc::JoinHandle<int> handle = nursery.spawn_value([]() -> kc::Task<int> {
        co_await kc::sleep_for(1ms);
        co_return 5;
      });
      result = co_await handle;
    }
    co_return result;
  }());

  EXPECT_EQ(value, 5);
}

TEST_P(NurseryTest, AFailedSpawnDoesNotEndAPendingWaitAny) {
  kc::Nursery nursery(ex);
  std::atomic<bool> release{false};
  std::atomic<bool> any_returned{false};
  nursery.spawn([&]() -> kc::Task<void> {
    while (!release.load()) co_await kc::sleep_for(1ms, kc::CancelToken{});  // ignores the nursery
  });
  std::thread waiter([&] {
    kc::sync_wait(nursery.wait_any());
    any_returned.store(true);
  });
  std::thread stopper([&] { ex.shutdown(); });  // waits for the running child
  // Spawn until the executor refuses work from outside.
  for (;;) {
    try {
      ex.spawn([] {});
    } catch (const kc::ExecutorShutdown&) {
      break;
    }
    std::this_thread::yield();
  }
  std::this_thread::sleep_for(20ms);  // lets the waiter register (if it has not, this proves less)

  EXPECT_THROW(nursery.spawn([] {}), kc::ExecutorShutdown);
  std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(any_returned.load());
  EXPECT_FALSE(nursery.token().is_cancelled());

  release.store(true);
  waiter.join();
  stopper.join();
  EXPECT_TRUE(any_returned.load());
}

TEST_P(NurseryTest, CancellingTheCurrentTokenOfTheTaskThatMadeANurseryCancelsIt) {
  kc::Nursery outer(ex);
  std::atomic<bool> inner_cancelled{false};

  outer.spawn([&]() -> kc::Task<void> {
    kc::Nursery inner(ex);  // made before this child ever asked for its token
    inner.spawn([]() -> kc::Task<void> { co_await kc::sleep_for(1h); });
    kc::current_token().cancel();
    try {
      co_await inner.wait_all();  // its parent was cancelled: Cancelled, by wait_all's rules
    } catch (const kc::Cancelled&) {
      inner_cancelled.store(inner.token().is_cancelled());
    }
  });
  kc::sync_wait(outer.wait_all());

  EXPECT_TRUE(inner_cancelled.load());
  EXPECT_FALSE(outer.token().is_cancelled());
}

TEST(NurseryStress, ManyShortNurseriesKeepExactCounts) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<long> runs{0};

  ex.block_on([&]() -> kc::Task<void> {
    for (int round = 0; round < 2000; ++round) {
      kc::Nursery nursery(ex);
      for (int i = 0; i < 50; ++i) nursery.spawn([&] { runs.fetch_add(1, std::memory_order_relaxed); });
      co_await nursery.wait_all();
    }
  }());

  EXPECT_EQ(runs.load(), 2000L * 50);
}

TEST(NurseryStress, NurseriesDestroyedRightAfterTheirWaitNeverTouchFreedState) {
  // The waker's last touch races the owner's destruction: ASan/TSan see any slip. wait_any cancels
  // the rest, so each child either ran or was discarded unrun, and the counts must say which.
  kc::WorkStealingExecutor ex(2);
  std::atomic<long> runs{0};
  constexpr long kRounds = 2000;
  constexpr long kChildren = 4;

  for (long round = 0; round < kRounds; ++round) {
    auto nursery = std::make_unique<kc::Nursery>(ex);
    for (long i = 0; i < kChildren; ++i) nursery->spawn([&] { runs.fetch_add(1, std::memory_order_relaxed); });
    kc::sync_wait(nursery->wait_any());
    nursery.reset();
  }
  ex.shutdown();

  const kc::ExecutorMetrics m = ex.metrics();
  EXPECT_EQ(m.tasks_spawned, static_cast<std::uint64_t>(kRounds * kChildren));
  EXPECT_EQ(m.tasks_completed, m.tasks_spawned);  // every child ended: ran, or was discarded unrun
  EXPECT_EQ(static_cast<std::uint64_t>(runs.load()) + m.tasks_cancelled, m.tasks_spawned);
  EXPECT_GE(runs.load(), kRounds);  // at least the first child of each round ran
  EXPECT_EQ(m.tasks_failed, 0U);
}

// --- nursery_scope and wait_all as API.md says ---

TEST_P(NurseryTest, NurseryScopesBodyRunsWithTheNurserysTokenAsItsCurrentToken) {
  const bool same = ex.block_on([this]() -> kc::Task<bool> {
    bool seen = false;
    co_await kc::nursery_scope(ex, [&seen](kc::Nursery& n) -> kc::Task<void> {
      seen = kc::current_token() == n.token();
      co_await kc::sleep_for(1ms);  // and still after a suspension
      seen = seen && kc::current_token() == n.token();
    });
    co_return seen;
  }());

  EXPECT_TRUE(same);
}

TEST_P(NurseryTest, ASleepInTheBodyEndsWhenAFailFastChildFailsAndTheChildsFailurePropagates) {
  std::atomic<bool> body_went_on{false};

  try {
    ex.block_on(kc::nursery_scope(ex, [&](kc::Nursery& n) -> kc::Task<void> {
      n.spawn([]() -> kc::Task<void> {
        co_await kc::sleep_for(5ms);
        throw std::runtime_error("child failed");
      });
      co_await kc::sleep_for(1h);  // on the nursery's token: ends with the fail-fast cancellation
      body_went_on.store(true);
    }));
    ADD_FAILURE() << "nursery_scope did not throw";
  } catch (const kc::NurseryError& error) {
    EXPECT_EQ(messages_of(error), std::vector<std::string>{"child failed"});
  }
  EXPECT_FALSE(body_went_on.load());
}

TEST_P(NurseryTest, ANurseryOpenedInTheBodyIsCancelledWithTheOuterNursery) {
  std::atomic<int> started{0};
  std::atomic<int> cancelled{0};

  EXPECT_THROW(ex.block_on(kc::nursery_scope(ex,
                                             [&](kc::Nursery& outer) -> kc::Task<void> {
                                               kc::Nursery inner(ex);  // its parent: the body's current_token()
                                               inner.spawn(sleep_an_hour(&started, &cancelled, nullptr));
                                               while (started.load() < 1) co_await kc::sleep_for(1ms);
                                               outer.spawn([] { throw std::runtime_error("outer child"); });
                                               co_await inner.wait_all();
                                             })),
               kc::NurseryError);

  EXPECT_EQ(cancelled.load(), 1);
}

TEST_P(NurseryTest, WhenTheBodyAndAChildBothFailTheCallerGetsEveryFailureBodyFirst) {
  try {
    ex.block_on(
        kc::nursery_scope(ex, kc::NurseryOptions{kc::NurseryPolicy::supervise}, [&](kc::Nursery& n) -> kc::Task<void> {
          auto child = n.spawn_value([] { throw std::runtime_error("child failed"); });
          try {
            co_await child;  // the child has failed (and was counted) by now
          } catch (const std::runtime_error&) {
          }
          throw std::logic_error("body failed");
        }));
    ADD_FAILURE() << "nursery_scope did not throw";
  } catch (const kc::NurseryError& error) {
    EXPECT_EQ(messages_of(error), (std::vector<std::string>{"body failed", "child failed"}));
  }
}

TEST_P(NurseryTest, NurseryScopeWithSuperviseLeavesSiblingsRunning) {
  std::atomic<bool> sibling_finished{false};

  try {
    ex.block_on(
        kc::nursery_scope(ex, kc::NurseryOptions{kc::NurseryPolicy::supervise}, [&](kc::Nursery& n) -> kc::Task<void> {
          n.spawn([] { throw std::runtime_error("child failed"); });
          n.spawn([&]() -> kc::Task<void> {
            co_await kc::sleep_for(20ms);  // cancelled under fail_fast
            sibling_finished.store(true);
          });
          co_return;
        }));
    ADD_FAILURE() << "nursery_scope did not throw";
  } catch (const kc::NurseryError& error) {
    EXPECT_EQ(error.errors().size(), 1U);
  }
  EXPECT_TRUE(sibling_finished.load());
}

TEST_P(NurseryTest, NurseryScopeWithAnEmptyStdFunctionThrowsInvalidArgumentAtTheCall) {
  const std::function<kc::Task<void>(kc::Nursery&)> empty;

  EXPECT_THROW((void)kc::nursery_scope(ex, empty), std::invalid_argument);
  EXPECT_THROW((void)kc::nursery_scope(ex, kc::NurseryOptions{}, empty), std::invalid_argument);
}

TEST_P(NurseryTest, ANurseryBuiltWithOptionsTakesTheirPolicy) {
  std::atomic<bool> sibling_finished{false};
  kc::Nursery nursery(ex, kc::NurseryOptions{kc::NurseryPolicy::supervise});
  nursery.spawn([] { throw std::runtime_error("child failed"); });
  nursery.spawn([&]() -> kc::Task<void> {
    co_await kc::sleep_for(20ms);
    sibling_finished.store(true);
  });

  EXPECT_THROW(kc::sync_wait(nursery.wait_all()), kc::NurseryError);
  EXPECT_TRUE(sibling_finished.load());
  EXPECT_FALSE(nursery.token().is_cancelled());
}

TEST_P(NurseryTest, WaitAllThrowsCancelledWhenTheNurseryWasCancelledFromOutside) {
  const kc::CancelToken parent;
  std::atomic<int> started{0};
  kc::Nursery nursery(ex, parent);
  nursery.spawn(sleep_an_hour(&started, nullptr, nullptr));
  while (started.load() < 1) std::this_thread::yield();

  parent.cancel();

  EXPECT_THROW(kc::sync_wait(nursery.wait_all()), kc::Cancelled);
}

TEST_P(NurseryTest, WaitAllAfterTheNurserysOwnCancelReturnsNormally) {
  std::atomic<int> started{0};
  kc::Nursery nursery(ex);
  nursery.spawn(sleep_an_hour(&started, nullptr, nullptr));
  while (started.load() < 1) std::this_thread::yield();

  nursery.cancel();

  EXPECT_NO_THROW(kc::sync_wait(nursery.wait_all()));
}

TEST_P(NurseryTest, WaitAllInsideTheBodyAfterAFailFastFailureReportsTheFailureNotCancelled) {
  try {
    ex.block_on(kc::nursery_scope(ex, [](kc::Nursery& n) -> kc::Task<void> {
      n.spawn([] { throw std::runtime_error("child failed"); });
      co_await n.wait_all();  // the body's token is the nursery's own: its cancellation is no outside one
    }));
    ADD_FAILURE() << "nursery_scope did not throw";
  } catch (const kc::NurseryError& error) {
    EXPECT_EQ(messages_of(error), std::vector<std::string>{"child failed"});
  }
}

TEST_P(NurseryTest, NurseryScopeCancelledFromOutsideThrowsCancelled) {
  std::atomic<int> started{0};
  auto handle = ex.spawn_with_handle(kc::nursery_scope(ex, [&](kc::Nursery& n) -> kc::Task<void> {
    n.spawn(sleep_an_hour(&started, nullptr, nullptr));
    co_return;
  }));
  while (started.load() < 1) std::this_thread::yield();

  handle.abort();

  EXPECT_THROW(handle.get(), kc::Cancelled);
}
