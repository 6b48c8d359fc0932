// Time and cancellation helpers: sleeps, deadlines, yield_now, current_token, run_until_cancelled.
// Real executors and the library's real timer thread; no test asserts on how fast anything is.
// A deadline may only be checked from below (a sleep never ends before it), never from above.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "knhk/concurrency.hpp"

namespace kc = knhk::concurrency;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Waits (bounded) until pending_timers() drops back to `expected`: a timer's last step on the timer
// thread may trail the resumption it caused by a moment.
bool pending_timers_settle_at(std::size_t expected) {
  for (int i = 0; i < 2000; ++i) {
    if (kc::pending_timers() == expected) return true;
    std::this_thread::sleep_for(5ms);
  }
  return kc::pending_timers() == expected;
}

long kernel_thread_id() { return ::syscall(SYS_gettid); }

void raise_max(std::atomic<int>& max, int value) {
  for (int seen = max.load(); value > seen && !max.compare_exchange_weak(seen, value);) {
  }
}

}  // namespace

TEST(Sleep, SleepForNeverEndsBeforeItsDuration) {
  kc::WorkStealingExecutor ex(2);
  const auto start = Clock::now();
  ex.block_on(kc::sleep_for(20ms));
  EXPECT_GE(Clock::now() - start, 20ms);
}

TEST(Sleep, SleepUntilNeverEndsBeforeItsDeadline) {
  kc::WorkStealingExecutor ex(1);
  const auto deadline = Clock::now() + 15ms;
  ex.block_on(kc::sleep_until(deadline));
  EXPECT_GE(Clock::now(), deadline);
}

TEST(Sleep, AZeroOrNegativeSleepCompletesAtOnceWithoutATimer) {
  kc::WorkStealingExecutor ex(1);
  const std::size_t before = kc::pending_timers();
  ex.block_on([]() -> kc::Task<void> {
    co_await kc::sleep_for(0ns);
    co_await kc::sleep_for(-5ms);
    co_await kc::sleep_until(Clock::now() - 1s);
  }());
  EXPECT_EQ(kc::pending_timers(), before);
}

TEST(Sleep, ASleepingTaskResumesOnAWorkerOfItsExecutor) {
  kc::WorkStealingExecutor ex(2);
  const bool on_worker = ex.block_on([&ex]() -> kc::Task<bool> {
    co_await kc::sleep_for(5ms);
    co_return kc::WorkStealingExecutor::current() == &ex;
  }());
  EXPECT_TRUE(on_worker);
}

TEST(Sleep, ASleepOffAnyExecutorResumesOnTheTimerThread) {
  const long caller = kernel_thread_id();
  const long resumed_on = kc::sync_wait([caller]() -> kc::Task<long> {
    // A timer that fires before await_suspend has finished lets the sleeper go on where it was
    // (a loaded machine); then sleep again. Any sleep that did suspend resumes on the timer thread.
    for (int attempt = 0; attempt < 1000 && kernel_thread_id() == caller; ++attempt) co_await kc::sleep_for(5ms);
    co_return kernel_thread_id();
  }());
  EXPECT_NE(resumed_on, caller);
}

TEST(Sleep, SleepingTasksHoldNoThreadSoMoreSleepThanThereAreWorkers) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<int> sleeping{0};
  std::atomic<int> most_sleeping{0};
  std::atomic<int> woke{0};
  for (int i = 0; i < 400; ++i) {
    ex.spawn([&]() -> kc::Task<void> {
      raise_max(most_sleeping, sleeping.fetch_add(1) + 1);
      co_await kc::sleep_for(50ms);
      sleeping.fetch_sub(1);
      woke.fetch_add(1);
    });
  }
  ex.shutdown();
  EXPECT_EQ(woke.load(), 400);
  EXPECT_GT(most_sleeping.load(), 2);  // a sleep that held a worker would cap this at 2
}

TEST(Sleep, MixedComputeAndSleepTasksAllFinishWithExactCounts) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<long> computed{0};
  std::atomic<int> slept{0};
  for (int i = 0; i < 2000; ++i) {
    if (i % 4 == 0) {
      ex.spawn([&, i]() -> kc::Task<void> {
        co_await kc::sleep_for(std::chrono::milliseconds(i % 7));
        slept.fetch_add(1);
      });
    } else {
      ex.spawn([&, i] { computed.fetch_add(i); });
    }
  }
  ex.shutdown();
  long expected = 0;
  for (int i = 0; i < 2000; ++i) expected += (i % 4 == 0) ? 0 : i;
  EXPECT_EQ(slept.load(), 500);
  EXPECT_EQ(computed.load(), expected);
}

TEST(Sleep, CancellingTheExplicitTokenEndsTheSleepWithCancelled) {
  kc::WorkStealingExecutor ex(2);
  kc::CancelToken token;
  const std::size_t before = kc::pending_timers();
  auto sleeper = ex.spawn_with_handle(kc::sleep_for(1h, token));
  while (kc::pending_timers() == before) std::this_thread::sleep_for(1ms);  // it is asleep
  token.cancel();
  EXPECT_THROW(sleeper.get(), kc::Cancelled);
  EXPECT_TRUE(pending_timers_settle_at(before));
}

TEST(Sleep, AbortingATaskEndsItsSleepThroughCurrentToken) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> asleep{false};
  std::atomic<bool> after_sleep{false};
  auto task = ex.spawn_with_handle([&]() -> kc::Task<void> {
    asleep = true;
    co_await kc::sleep_for(1h);
    after_sleep = true;
  });
  while (!asleep) std::this_thread::sleep_for(1ms);
  task.abort();
  EXPECT_THROW(task.get(), kc::Cancelled);
  EXPECT_FALSE(after_sleep.load());
}

TEST(Sleep, ASleepWithAnAlreadyCancelledTokenThrowsAtOnce) {
  kc::CancelToken token;
  token.cancel();
  EXPECT_THROW(kc::sync_wait(kc::sleep_for(1h, token)), kc::Cancelled);
  EXPECT_THROW(kc::sync_wait(kc::sleep_for(0ns, token)), kc::Cancelled);
}

TEST(Sleep, ACancelledSleepOffAnyExecutorResumesOnTheCancellingThread) {
  kc::CancelToken token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(10ms);
    token.cancel();
  });
  EXPECT_THROW(kc::sync_wait(kc::sleep_for(1h, token)), kc::Cancelled);
  canceller.join();
}

TEST(Sleep, TheSleepHelpersCopyTheirTokenSoATemporaryIsSafe) {
  kc::WorkStealingExecutor ex(1);
  kc::Task<void> sleep = [] {
    kc::CancelToken temporary;
    return kc::sleep_for(1ms, temporary);
  }();  // the token handle is gone; the Task keeps its own copy
  EXPECT_NO_THROW(ex.block_on(std::move(sleep)));
}

TEST(Sleep, ADeepAwaitChainEndingInASleepUnwindsWithCancelledWhenItsTaskIsAborted) {
  kc::WorkStealingExecutor ex(2);
  struct Chain {
    static kc::Task<int> down(int depth, std::atomic<bool>& asleep) {
      if (depth == 0) {
        asleep = true;
        co_await kc::sleep_for(1h);
        co_return 0;
      }
      co_return 1 + co_await down(depth - 1, asleep);
    }
  };
  std::atomic<bool> asleep{false};
  auto deep = ex.spawn_with_handle(Chain::down(10000, asleep));
  while (!asleep) std::this_thread::sleep_for(1ms);
  deep.abort();
  EXPECT_THROW(deep.get(), kc::Cancelled);
}

TEST(Sleep, ADeepAwaitChainWithSleepsAtEveryLevelReturnsItsValue) {
  kc::WorkStealingExecutor ex(2);
  struct Chain {
    static kc::Task<int> down(int depth) {
      if (depth == 0) co_return 0;
      if (depth % 500 == 0) co_await kc::sleep_for(1ms);
      co_return 1 + co_await down(depth - 1);
    }
  };
  EXPECT_EQ(ex.block_on(Chain::down(5000)), 5000);
}

TEST(Sleep, FastShutdownThroughTheExecutorTokenEndsTasksSleepingForHours) {
  std::atomic<int> cancelled{0};
  std::atomic<int> finished{0};
  {
    kc::WorkStealingExecutor ex(2);
    for (int i = 0; i < 1000; ++i) {
      ex.spawn([&]() -> kc::Task<void> {
        try {
          co_await kc::sleep_for(5h);
          finished.fetch_add(1);
        } catch (const kc::Cancelled&) {
          cancelled.fetch_add(1);
          throw;
        }
      });
    }
    ex.token().cancel();
    ex.shutdown();
  }
  // Some tasks may not have started before the cancel: they never run. None slept its 5 hours.
  EXPECT_EQ(finished.load(), 0);
  EXPECT_LE(cancelled.load(), 1000);
  EXPECT_TRUE(pending_timers_settle_at(0));
}

TEST(CancelAfter, CancelsTheTokenLaterNotEarlier) {
  kc::CancelToken token;
  std::atomic<Clock::rep> cancelled_at{0};
  auto registration = token.on_cancel([&] { cancelled_at = Clock::now().time_since_epoch().count(); });
  const auto start = Clock::now();
  kc::cancel_after(token, 30ms);
  while (cancelled_at.load() == 0) std::this_thread::sleep_for(1ms);
  EXPECT_GE(Clock::duration(cancelled_at.load()), start.time_since_epoch() + 30ms);
  EXPECT_TRUE(token.is_cancelled());
}

TEST(CancelAfter, CancelsTheTokensChildrenToo) {
  kc::CancelToken parent;
  const kc::CancelToken child = parent.child_token();
  kc::cancel_after(parent, 1ms);
  EXPECT_THROW(kc::sync_wait(kc::sleep_for(1h, child)), kc::Cancelled);
}

TEST(CancelAfter, ATokenCancelledEarlierReleasesItsTimerAtOnce) {
  const std::size_t before = kc::pending_timers();
  kc::CancelToken token;
  kc::cancel_after(token, 1h);
  EXPECT_EQ(kc::pending_timers(), before + 1);
  token.cancel();
  EXPECT_EQ(kc::pending_timers(), before);  // removed by the cancel, on this thread
}

TEST(CancelAfter, ANonPositiveDelayCancelsNow) {
  kc::CancelToken token;
  kc::cancel_after(token, 0ns);
  EXPECT_TRUE(token.is_cancelled());
}

TEST(CancelAfter, BoundsASleepOfTheSameTask) {
  kc::WorkStealingExecutor ex(2);
  auto task = ex.spawn_with_handle([]() -> kc::Task<void> {
    kc::cancel_after(kc::current_token(), 10ms);
    co_await kc::sleep_for(1h);
  });
  EXPECT_THROW(task.get(), kc::Cancelled);
}

TEST(CancelAfter, ManyDeadlinesFromManyThreadsAllFire) {
  std::vector<kc::CancelToken> tokens(4000);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < tokens.size(); i += 4)
        kc::cancel_after(tokens[i], std::chrono::milliseconds(1 + i % 20));
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& token : tokens) {
    while (!token.is_cancelled()) std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(pending_timers_settle_at(0));
}

TEST(CurrentToken, OutsideAnyTaskItIsAFreshTokenNobodyCancels) {
  const kc::CancelToken a = kc::current_token();
  const kc::CancelToken b = kc::current_token();
  EXPECT_FALSE(a.is_cancelled());
  EXPECT_FALSE(a == b);
}

TEST(CurrentToken, ADetachedTaskGetsAChildOfTheExecutorToken) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> child_cancelled_by_root{false};
  std::atomic<bool> root_untouched_by_child{false};
  std::atomic<bool> done{false};
  ex.spawn([&] {
    const kc::CancelToken mine = kc::current_token();
    EXPECT_FALSE(mine == ex.token());
    EXPECT_TRUE(kc::current_token() == mine);  // the same token for the whole task
    mine.cancel();
    root_untouched_by_child = !ex.token().is_cancelled();
    done = true;
  });
  while (!done) std::this_thread::sleep_for(1ms);
  auto second = ex.spawn_with_handle([&]() -> kc::Task<void> {
    const kc::CancelToken mine = kc::current_token();
    co_await mine.cancelled();
    child_cancelled_by_root = true;
  });
  ex.token().cancel();
  try {
    second.get();
  } catch (const kc::Cancelled&) {
    child_cancelled_by_root = true;  // cancelled before it started: fine too
  }
  EXPECT_TRUE(root_untouched_by_child.load());
  EXPECT_TRUE(child_cancelled_by_root.load());
}

TEST(CurrentToken, AHandledTaskHasItsOwnTokenThatAbortCancels) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> started{false};
  auto task = ex.spawn_with_handle([&]() -> kc::Task<bool> {
    started = true;
    co_await kc::current_token().cancelled();
    co_return true;
  });
  while (!started) std::this_thread::sleep_for(1ms);
  task.abort();
  EXPECT_TRUE(task.get());
  EXPECT_FALSE(ex.token().is_cancelled());
}

TEST(CurrentToken, ItFollowsACoroutineTaskAcrossSuspensionsAndWorkers) {
  kc::WorkStealingExecutor ex(2);
  kc::WorkStealingExecutor other(1);
  const bool same = ex.block_on([&]() -> kc::Task<bool> {
    const kc::CancelToken before = kc::current_token();
    co_await kc::sleep_for(1ms);
    co_await other.schedule();  // another executor's worker
    co_await kc::yield_now();
    co_await ex.schedule();
    co_return kc::current_token() == before;
  }());
  EXPECT_TRUE(same);
}

TEST(CurrentToken, AHelpingWaitRestoresTheWaitingTasksToken) {
  kc::WorkStealingExecutor ex(1);
  const bool same = ex.block_on([&]() -> kc::Task<bool> {
    const kc::CancelToken before = kc::current_token();
    auto inner = ex.spawn_with_handle([] { return kc::current_token(); });
    const kc::CancelToken theirs = inner.get();  // helps: runs `inner` on this very worker
    co_return kc::current_token() == before && !(theirs == before);
  }());
  EXPECT_TRUE(same);
}

TEST(JoinAwait, CancellingTheAwaitingTaskAbortsTheAwaitedOne) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> child_asleep{false};
  std::atomic<bool> child_slept_through{false};
  auto parent = ex.spawn_with_handle([&]() -> kc::Task<void> {
    auto child = ex.spawn_with_handle([&]() -> kc::Task<void> {
      child_asleep = true;
      co_await kc::sleep_for(1h);
      child_slept_through = true;
    });
    co_await child;  // rethrows the child's Cancelled
  });
  while (!child_asleep) std::this_thread::sleep_for(1ms);
  parent.abort();
  EXPECT_THROW(parent.get(), kc::Cancelled);
  ex.shutdown();  // the child has ended too
  EXPECT_FALSE(child_slept_through.load());
}

// The awaited task's token is no child of the awaiter's here (it was spawned from outside), so
// the abort travels through the awaiter's registration, not through the token tree.
TEST(JoinAwait, CancellingTheAwaitingTaskAbortsAnAwaitedTaskItDidNotSpawn) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> other_asleep{false};
  std::atomic<bool> other_slept_through{false};
  auto other = ex.spawn_with_handle([&]() -> kc::Task<void> {
    other_asleep = true;
    co_await kc::sleep_for(1h);
    other_slept_through = true;
  });
  std::atomic<bool> awaiting{false};
  auto waiter = ex.spawn_with_handle([&awaiting, awaited = std::move(other)]() mutable -> kc::Task<void> {
    awaiting = true;              // an abort from now on reaches it, before or after it suspends
    co_await std::move(awaited);  // rethrows the other task's Cancelled
  });
  while (!other_asleep || !awaiting) std::this_thread::sleep_for(1ms);
  waiter.abort();
  EXPECT_THROW(waiter.get(), kc::Cancelled);
  ex.shutdown();
  EXPECT_FALSE(other_slept_through.load());
}

TEST(YieldNow, LetsASiblingRunOnASingleWorker) {
  kc::WorkStealingExecutor ex(1);
  std::atomic<bool> flag{false};
  auto poller = ex.spawn_with_handle([&]() -> kc::Task<long> {
    long yields = 0;
    while (!flag.load()) {
      co_await kc::yield_now();
      ++yields;
    }
    co_return yields;
  });
  ex.spawn([&] { flag = true; });  // queued behind the poller on the only worker
  EXPECT_GE(poller.get(), 1);
}

TEST(YieldNow, LetsLocallyQueuedWorkRunFirst) {
  kc::WorkStealingExecutor ex(1);
  const int order = ex.block_on([&]() -> kc::Task<int> {
    std::atomic<int> ran{0};
    for (int i = 0; i < 10; ++i) ex.spawn([&] { ran.fetch_add(1); });  // this worker's own queue
    co_await kc::yield_now();
    co_return ran.load();
  }());
  EXPECT_EQ(order, 10);
}

TEST(YieldNow, ThrowsCancelledOnceTheTasksTokenIsCancelled) {
  kc::WorkStealingExecutor ex(1);
  auto poller = ex.spawn_with_handle([]() -> kc::Task<void> {
    for (;;) co_await kc::yield_now();
  });
  poller.abort();
  EXPECT_THROW(poller.get(), kc::Cancelled);
}

TEST(YieldNow, OffAnyExecutorItJustGoesOn) {
  EXPECT_NO_THROW(kc::sync_wait([]() -> kc::Task<void> { co_await kc::yield_now(); }()));
}

TEST(RunUntilCancelled, ReturnsTheValueWhenTheWorkFinishesFirst) {
  kc::WorkStealingExecutor ex(2);
  kc::CancelToken token;
  const std::optional<int> result = ex.block_on(kc::run_until_cancelled(token, []() -> kc::Task<int> {
    co_await kc::sleep_for(1ms);
    co_return 7;
  }()));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, 7);
}

TEST(RunUntilCancelled, ReturnsEmptyWhenTheTokenIsCancelledFirstAndTheWorkHasEnded) {
  kc::WorkStealingExecutor ex(2);
  kc::CancelToken token;
  std::atomic<bool> work_ended{false};
  std::atomic<bool> work_asleep{false};
  auto work = [&]() -> kc::Task<int> {  // named: the coroutine refers to the lambda's captures
    struct MarkEnded {
      std::atomic<bool>* flag;
      ~MarkEnded() { *flag = true; }
    } mark{&work_ended};
    work_asleep = true;
    co_await kc::sleep_for(1h);
    co_return 1;
  };
  auto run = ex.spawn_with_handle(kc::run_until_cancelled(token, work()));
  while (!work_asleep) std::this_thread::sleep_for(1ms);
  token.cancel();
  EXPECT_FALSE(run.get().has_value());
  EXPECT_TRUE(work_ended.load());  // no orphan: the work had finished when the result came
}

TEST(RunUntilCancelled, TheWorksCurrentTokenDescendsFromTheGivenToken) {
  kc::CancelToken token;
  const std::optional<bool> linked = kc::sync_wait(kc::run_until_cancelled(token, [&]() -> kc::Task<bool> {
    const kc::CancelToken inner = kc::current_token();
    token.cancel();
    co_return inner.is_cancelled();
  }()));
  ASSERT_TRUE(linked.has_value());  // the work finished normally, so its value is kept
  EXPECT_TRUE(*linked);
}

TEST(RunUntilCancelled, KeepsTheValueWhenTheWorkFinishesDespiteTheCancel) {
  kc::CancelToken token;
  const std::optional<int> result = kc::sync_wait(kc::run_until_cancelled(token, [&]() -> kc::Task<int> {
    token.cancel();  // the work ignores it and completes
    co_return 3;
  }()));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, 3);
}

TEST(RunUntilCancelled, WithAnAlreadyCancelledTokenTheWorkNeverStarts) {
  kc::CancelToken token;
  token.cancel();
  bool started = false;
  const bool finished = kc::sync_wait(kc::run_until_cancelled(token, [&]() -> kc::Task<void> {
    started = true;
    co_return;
  }()));
  EXPECT_FALSE(finished);
  EXPECT_FALSE(started);
}

TEST(RunUntilCancelled, TheVoidFormSaysWhetherTheWorkFinished) {
  kc::WorkStealingExecutor ex(2);
  kc::CancelToken token;
  EXPECT_TRUE(ex.block_on(kc::run_until_cancelled(token, kc::sleep_for(1ms))));
  kc::cancel_after(token, 5ms);
  EXPECT_FALSE(ex.block_on(kc::run_until_cancelled(token, kc::sleep_for(1h))));
}

TEST(RunUntilCancelled, OtherExceptionsOfTheWorkPropagate) {
  kc::CancelToken token;
  EXPECT_THROW(kc::sync_wait(kc::run_until_cancelled(token,
                                                     []() -> kc::Task<int> {
                                                       throw std::runtime_error("work failed");
                                                       co_return 0;
                                                     }())),
               std::runtime_error);
}

TEST(RunUntilCancelled, CancellingTheEnclosingTaskStopsTheWorkAndPropagatesCancelled) {
  kc::WorkStealingExecutor ex(2);
  kc::CancelToken unrelated;
  std::atomic<bool> asleep{false};
  auto outer = ex.spawn_with_handle([&]() -> kc::Task<std::optional<int>> {
    co_return co_await kc::run_until_cancelled(unrelated, [&]() -> kc::Task<int> {
      asleep = true;
      co_await kc::sleep_for(1h);
      co_return 1;
    }());
  });
  while (!asleep) std::this_thread::sleep_for(1ms);
  outer.abort();
  EXPECT_THROW(outer.get(), kc::Cancelled);  // not absorbed: `unrelated` was never cancelled
}

TEST(RunUntilCancelled, RestoresTheEnclosingTasksTokenAfterwards) {
  kc::WorkStealingExecutor ex(2);
  const bool same = ex.block_on([]() -> kc::Task<bool> {
    const kc::CancelToken before = kc::current_token();
    kc::CancelToken token;
    (void)co_await kc::run_until_cancelled(token, kc::sleep_for(2ms));
    co_return kc::current_token() == before;
  }());
  EXPECT_TRUE(same);
}

namespace {

// Records, in its destructor, the token current at that moment (when armed: moves disarm).
struct TokenProbe {
  std::shared_ptr<std::optional<kc::CancelToken>> seen = std::make_shared<std::optional<kc::CancelToken>>();
  bool armed = true;
  TokenProbe() = default;
  TokenProbe(TokenProbe&& other) noexcept : seen(other.seen), armed(std::exchange(other.armed, false)) {}
  TokenProbe(const TokenProbe&) = delete;
  TokenProbe& operator=(const TokenProbe&) = delete;
  TokenProbe& operator=(TokenProbe&&) = delete;
  ~TokenProbe() {
    if (armed) *seen = kc::current_token();
  }
};

}  // namespace

TEST(CurrentToken, ACoroutineTasksCapturesAreDestroyedUnderItsOwnToken) {
  kc::WorkStealingExecutor ex(1);
  TokenProbe probe;
  auto seen = probe.seen;
  auto task_token = std::make_shared<std::optional<kc::CancelToken>>();
  ex.spawn([probe = std::move(probe), task_token]() -> kc::Task<void> {
    *task_token = kc::current_token();  // makes the task's own child token
    co_return;
  });
  ex.shutdown();
  ASSERT_TRUE(seen->has_value());
  EXPECT_TRUE(**seen == **task_token);
}

TEST(CurrentToken, ACallableTasksCapturesAreDestroyedUnderItsOwnTokenNotTheHelpers) {
  kc::WorkStealingExecutor ex(1);
  TokenProbe probe;
  auto seen = probe.seen;
  const bool helper_token_leaked = ex.block_on([&]() -> kc::Task<bool> {
    auto inner = ex.spawn_with_handle([p = std::move(probe)] { return 0; });
    (void)inner.get();  // helps: runs `inner` on this very worker
    co_return seen->has_value() && **seen == kc::current_token();
  }());
  EXPECT_FALSE(helper_token_leaked);
  ASSERT_TRUE(seen->has_value());
}

TEST(RunUntilCancelled, AnEmptyWorkTaskLeavesTheEnclosingTokenInPlace) {
  kc::WorkStealingExecutor ex(1);
  const bool same = ex.block_on([]() -> kc::Task<bool> {
    const kc::CancelToken before = kc::current_token();
    kc::CancelToken token;
    try {
      (void)co_await kc::run_until_cancelled(token, kc::Task<int>{});
    } catch (const std::logic_error&) {
      // awaiting an empty Task is a logic error; the task goes on
    }
    co_return kc::current_token() == before;
  }());
  EXPECT_TRUE(same);
}

TEST(Sleep, BlockingWaitsRefuseToRunOnTheTimerThread) {
  kc::WorkStealingExecutor ex(1);
  // The kernel's thread id: std::this_thread::get_id() is pthread_self(), which glibc declares
  // const, and clang then reuses its value across a coroutine's suspension points.
  const long caller = kernel_thread_id();
  const bool refused = kc::sync_wait([&]() -> kc::Task<bool> {
    // Off any executor a fired sleep continues on the timer thread, unless it fired before its
    // await_suspend ended (a loaded machine): then it goes on here, and we sleep again.
    for (int attempt = 0; attempt < 1000 && kernel_thread_id() == caller; ++attempt) {
      co_await kc::sleep_for(1ms);
    }
    if (kernel_thread_id() == caller) co_return false;
    try {
      ex.block_on(kc::sleep_for(1ms));  // would wait for the timer thread itself
    } catch (const std::logic_error&) {
      co_return true;
    }
    co_return false;
  }());
  EXPECT_TRUE(refused);
}

TEST(CurrentToken, AJoinableChildSpawnedByATaskIsCancelledWithThatTask) {
  kc::WorkStealingExecutor ex(2);
  kc::JoinHandle<void> child;
  std::atomic<bool> child_started{false};

  kc::JoinHandle<void> parent = ex.spawn_with_handle([&]() -> kc::Task<void> {
    child = ex.spawn_with_handle([&]() -> kc::Task<void> {
      child_started.store(true);
      co_await kc::sleep_for(1h);
    });
    co_await kc::sleep_for(1h);  // does not await the child: only the token tree links them
  });
  while (!child_started.load()) std::this_thread::sleep_for(1ms);
  parent.abort();

  EXPECT_THROW(parent.get(), kc::Cancelled);
  EXPECT_THROW(child.get(), kc::Cancelled);
}

TEST(CurrentToken, AJoinableTaskSpawnedFromOutsideDescendsFromTheExecutorToken) {
  kc::WorkStealingExecutor ex(2);
  const kc::CancelToken unrelated;
  std::atomic<bool> started{false};

  kc::JoinHandle<void> handle = ex.spawn_with_handle([&]() -> kc::Task<void> {
    started.store(true);
    co_await kc::sleep_for(1h);
  });
  while (!started.load()) std::this_thread::sleep_for(1ms);
  unrelated.cancel();  // nothing to do with it
  ex.token().cancel();

  EXPECT_THROW(handle.get(), kc::Cancelled);
}

// A joinable task's token descends from its executor's token wherever it was spawned from, so
// the executor's token stops it (a fast shutdown) even when the spawning task's token does not
// descend from it.
TEST(CurrentToken, AJoinableTaskSpawnedInsideANurseryWithAParentOfItsOwnObeysTheExecutorToken) {
  kc::WorkStealingExecutor ex(2);
  const kc::CancelToken unrelated;
  kc::JoinHandle<void> handle;
  std::atomic<bool> started{false};
  {
    kc::Nursery nursery(ex, unrelated);
    nursery.spawn([&] {
      handle = ex.spawn_with_handle([&]() -> kc::Task<void> {
        started.store(true);
        co_await kc::sleep_for(1h);
      });
    });
    kc::sync_wait(nursery.wait_all());
  }
  while (!started.load()) std::this_thread::sleep_for(1ms);

  ex.token().cancel();

  EXPECT_THROW(handle.get(), kc::Cancelled);
}

TEST(CurrentToken, AJoinableTaskSpawnedByAnotherExecutorsTaskObeysItsOwnExecutorToken) {
  kc::WorkStealingExecutor a(1);
  kc::WorkStealingExecutor b(1);
  std::atomic<bool> started{false};

  kc::JoinHandle<void> handle = b.block_on([&]() -> kc::Task<kc::JoinHandle<void>> {
    co_await a.schedule();  // now on a worker of `a`, still as b's task
    co_return a.spawn_with_handle([&]() -> kc::Task<void> {
      started.store(true);
      co_await kc::sleep_for(1h);
    });
  }());
  while (!started.load()) std::this_thread::sleep_for(1ms);
  a.token().cancel();

  EXPECT_THROW(handle.get(), kc::Cancelled);
}

TEST(CurrentToken, AJoinableTaskSpawnedUnderRunUntilCancelledObeysTheExecutorToken) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> started{false};

  kc::JoinHandle<void> handle = ex.block_on([&]() -> kc::Task<kc::JoinHandle<void>> {
    const kc::CancelToken scope;
    std::optional<kc::JoinHandle<void>> spawned =
        co_await kc::run_until_cancelled(scope, [&]() -> kc::Task<kc::JoinHandle<void>> {
          co_return ex.spawn_with_handle([&]() -> kc::Task<void> {
            started.store(true);
            co_await kc::sleep_for(1h);
          });
        }());
    co_return std::move(*spawned);
  }());
  while (!started.load()) std::this_thread::sleep_for(1ms);
  ex.token().cancel();

  EXPECT_THROW(handle.get(), kc::Cancelled);
}

// --- The timer thread: blocking there must not stop the timers (API.md, Errors) ---

namespace {

// Runs `body` (a callable returning Task<bool>) in a coroutine that first moves onto the library's
// timer thread (a sleep awaited off any executor continues there), on a thread of its own. Waits
// at most `limit`: nullopt when it did not finish by then (it hung; the thread is left behind and
// ends with the process), else what `body` returned (false too if the timer thread was not reached).
template <class Body>
std::optional<bool> run_on_timer_thread_within(Body body, std::chrono::seconds limit) {
  struct Outcome {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    bool value = false;
  };
  auto outcome = std::make_shared<Outcome>();
  std::thread([outcome, body = std::move(body)]() mutable {
    const long caller = kernel_thread_id();
    const bool value = kc::sync_wait([&]() -> kc::Task<bool> {
      for (int attempt = 0; attempt < 1000 && kernel_thread_id() == caller; ++attempt) {
        co_await kc::sleep_for(1ms);
      }
      if (kernel_thread_id() == caller) co_return false;
      co_return co_await body();
    }());
    const std::lock_guard lock(outcome->mutex);
    outcome->done = true;
    outcome->value = value;
    outcome->done_cv.notify_one();
  }).detach();
  std::unique_lock lock(outcome->mutex);
  if (!outcome->done_cv.wait_for(lock, limit, [&] { return outcome->done; })) return std::nullopt;
  return outcome->value;
}

}  // namespace

TEST(TimerThread, ShutdownOnTheTimerThreadThrowsLogicError) {
  kc::WorkStealingExecutor ex(1);
  const std::optional<bool> refused = run_on_timer_thread_within(
      [&ex]() -> kc::Task<bool> {
        try {
          ex.shutdown();
        } catch (const std::logic_error&) {
          co_return true;
        }
        co_return false;
      },
      60s);

  ASSERT_TRUE(refused.has_value()) << "shutdown() on the timer thread hung";
  EXPECT_TRUE(*refused);
}

TEST(TimerThread, DestroyingAnExecutorOnTheTimerThreadDoesNotHangOnATaskWaitingForATimer) {
  const std::optional<bool> slept = run_on_timer_thread_within(
      []() -> kc::Task<bool> {
        auto ex = std::make_unique<kc::WorkStealingExecutor>(1);
        auto slept_out = std::make_shared<std::atomic<bool>>(false);
        auto started = std::make_shared<std::atomic<bool>>(false);
        ex->spawn([slept_out, started]() -> kc::Task<void> {
          started->store(true);
          // A token the executor's cancellation does not reach: the destructor waits for this
          // sleep, which needs a timer to fire while the timer thread is blocked in it.
          co_await kc::sleep_for(20ms, kc::CancelToken{});
          slept_out->store(true);
        });
        while (!started->load()) std::this_thread::yield();
        ex.reset();
        co_return slept_out->load();
      },
      60s);

  ASSERT_TRUE(slept.has_value()) << "~WorkStealingExecutor on the timer thread hung";
  EXPECT_TRUE(*slept);
}

TEST(TimerThread, DestroyingANurseryOnTheTimerThreadDoesNotHangOnAChildWaitingForATimer) {
  kc::WorkStealingExecutor ex(1);
  const std::optional<bool> slept = run_on_timer_thread_within(
      [&ex]() -> kc::Task<bool> {
        auto slept_out = std::make_shared<std::atomic<bool>>(false);
        auto started = std::make_shared<std::atomic<bool>>(false);
        {
          kc::Nursery nursery(ex);
          nursery.spawn([slept_out, started]() -> kc::Task<void> {
            started->store(true);
            co_await kc::sleep_for(20ms, kc::CancelToken{});  // not reached by the nursery's cancel
            slept_out->store(true);
          });
          while (!started->load()) std::this_thread::yield();
        }  // cancels and joins: waits for the sleep, whose timer must still fire
        co_return slept_out->load();
      },
      60s);

  ASSERT_TRUE(slept.has_value()) << "~Nursery on the timer thread hung";
  EXPECT_TRUE(*slept);
}

TEST(TimerThread, TimersKeepFiringAfterTheTimerThreadHandedTheWheelOver) {
  const std::optional<bool> handed_over = run_on_timer_thread_within(
      []() -> kc::Task<bool> {
        auto ex = std::make_unique<kc::WorkStealingExecutor>(1);
        ex.reset();  // hands the wheel to a new timer thread, then joins
        // Still on the retired thread, an ordinary thread now: a blocking wait is allowed, and
        // the sleep it waits for is fired by the new timer thread.
        kc::WorkStealingExecutor other(1);
        other.block_on(kc::sleep_for(5ms));
        co_return true;
      },
      60s);

  ASSERT_TRUE(handed_over.has_value()) << "a timer did not fire after the hand-over";
  EXPECT_TRUE(*handed_over);
  EXPECT_NO_THROW(kc::sync_wait(kc::sleep_for(2ms)));
}

// --- run_until_cancelled nests as Trio's cancel scopes do ---

TEST(RunUntilCancelled, AnEnclosingScopesCancellationPropagatesEvenWhenTheInnerTokenIsCancelledToo) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> started{false};
  std::atomic<bool> went_on{false};
  auto handle = ex.spawn_with_handle([&]() -> kc::Task<void> {
    // Cancelled with the task (its child), in the same cancel() as the task's own token.
    const kc::CancelToken inner = kc::current_token().child_token();
    started.store(true);
    (void)co_await kc::run_until_cancelled(inner, kc::sleep_for(1h));
    went_on.store(true);  // must not run: the enclosing scope (the task) is cancelled
  });
  while (!started.load()) std::this_thread::yield();

  handle.abort();

  EXPECT_THROW(handle.get(), kc::Cancelled);
  EXPECT_FALSE(went_on.load());
}

TEST(RunUntilCancelled, NestedScopesCancelledTogetherStopAtTheOuterOne) {
  kc::WorkStealingExecutor ex(2);
  const kc::CancelToken outer;
  std::atomic<bool> started{false};
  std::atomic<bool> inner_went_on{false};
  auto handle = ex.spawn_with_handle([&]() -> kc::Task<bool> {
    const bool finished = co_await kc::run_until_cancelled(outer, [&]() -> kc::Task<void> {
      started.store(true);
      (void)co_await kc::run_until_cancelled(outer.child_token(), kc::sleep_for(1h));
      inner_went_on.store(true);  // must not run: the outer scope is cancelled too
    }());
    co_return finished;
  });
  while (!started.load()) std::this_thread::yield();

  outer.cancel();

  EXPECT_FALSE(handle.get());  // the outer scope absorbed its own cancellation
  EXPECT_FALSE(inner_went_on.load());
}

TEST(RunUntilCancelled, AnInnerTokenAloneIsStillAbsorbed) {
  kc::WorkStealingExecutor ex(2);
  const kc::CancelToken inner;
  std::atomic<bool> started{false};
  auto handle = ex.spawn_with_handle([&]() -> kc::Task<bool> {
    started.store(true);
    const bool finished = co_await kc::run_until_cancelled(inner, kc::sleep_for(1h));
    co_return !finished;  // went on after the scope
  });
  while (!started.load()) std::this_thread::yield();

  inner.cancel();

  EXPECT_TRUE(handle.get());
}
