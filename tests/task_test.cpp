// Task<T>: lazy, move-only coroutines with symmetric transfer.
#include "knhk/concurrency/task.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/sync_wait.hpp"
#include "support/manual_coroutine.hpp"

namespace kc = knhk::concurrency;

namespace {

static_assert(!std::is_copy_constructible_v<kc::Task<int>>);
static_assert(std::is_nothrow_move_constructible_v<kc::Task<int>>);
static_assert(std::is_nothrow_move_assignable_v<kc::Task<void>>);

kc::Task<int> value_of(int value) { co_return value; }
kc::Task<void> nothing() { co_return; }
kc::Task<int> throws_runtime_error() {
  throw std::runtime_error("boom");
  co_return 0;
}
kc::Task<void> throws_in_void_task() {
  throw std::out_of_range("void boom");
  co_return;
}

// Counts its live instances; a coroutine parameter of this type lives in the frame.
struct FrameProbe {
  explicit FrameProbe(int* live) : live_(live) { ++*live_; }
  FrameProbe(const FrameProbe& other) : live_(other.live_) { ++*live_; }
  FrameProbe& operator=(const FrameProbe&) = delete;
  ~FrameProbe() { --*live_; }
  int* live_;
};

kc::Task<void> record_run(FrameProbe /*probe*/, bool* ran) {
  *ran = true;
  co_return;
}

}  // namespace

TEST(Task, CreatingATaskRunsNothing) {
  bool ran = false;
  int live = 0;
  {
    const FrameProbe probe(&live);
    kc::Task<void> task = record_run(probe, &ran);
    EXPECT_TRUE(task.valid());
    EXPECT_FALSE(task.is_ready());
  }
  EXPECT_FALSE(ran);
}

TEST(Task, DestroyingAnUnstartedTaskFreesItsFrame) {
  int live = 0;
  bool ran = false;
  {
    const FrameProbe probe(&live);
    kc::Task<void> task = record_run(probe, &ran);
    EXPECT_EQ(live, 2);  // the local probe and the copy in the frame
  }
  EXPECT_EQ(live, 0);
  EXPECT_FALSE(ran);
}

TEST(Task, AwaitingReturnsTheValue) {
  auto outer = []() -> kc::Task<int> { co_return co_await value_of(41) + 1; };
  EXPECT_EQ(kc::sync_wait(outer()), 42);
}

TEST(Task, AwaitingAnLvalueTaskWorks) {
  auto outer = []() -> kc::Task<std::string> {
    kc::Task<int> inner = value_of(7);
    const int value = co_await inner;
    EXPECT_TRUE(inner.is_ready());
    co_return std::to_string(value);
  };
  EXPECT_EQ(kc::sync_wait(outer()), "7");
}

TEST(Task, AwaitingRethrowsTheTasksException) {
  auto outer = []() -> kc::Task<std::string> {
    try {
      co_await throws_runtime_error();
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  EXPECT_EQ(kc::sync_wait(outer()), "boom");
}

TEST(Task, VoidTaskCarriesItsException) {
  EXPECT_THROW(kc::sync_wait(throws_in_void_task()), std::out_of_range);
  EXPECT_NO_THROW(kc::sync_wait(nothing()));
}

TEST(Task, MoveOnlyResultsAreMovedOut) {
  auto make = []() -> kc::Task<std::unique_ptr<int>> { co_return std::make_unique<int>(5); };
  const std::unique_ptr<int> result = kc::sync_wait(make());
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(*result, 5);
}

TEST(Task, ReferenceTaskReturnsTheSameObject) {
  int target = 1;
  auto ref = [](int& r) -> kc::Task<int&> { co_return r; };
  int& result = kc::sync_wait(ref(target));
  EXPECT_EQ(&result, &target);
}

TEST(Task, AwaitingAnEmptyTaskThrowsLogicError) { EXPECT_THROW(kc::sync_wait(kc::Task<int>{}), std::logic_error); }

TEST(Task, MoveAssignmentDestroysThePreviousFrame) {
  int live = 0;
  bool ran = false;
  {
    const FrameProbe probe(&live);
    kc::Task<void> task = record_run(probe, &ran);
    task = nothing();
    EXPECT_EQ(live, 1);
    kc::sync_wait(std::move(task));
  }
  EXPECT_EQ(live, 0);
  EXPECT_FALSE(ran);
}

TEST(Task, AMillionAwaitsInALoopDoNotGrowTheStack) {
  auto loop = []() -> kc::Task<long> {
    long sum = 0;
    for (int i = 0; i < 1'000'000; ++i) sum += co_await value_of(1);
    co_return sum;
  };
  EXPECT_EQ(kc::sync_wait(loop()), 1'000'000);
}

namespace {
kc::Task<int> depth(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await depth(n - 1);
}
}  // namespace

TEST(Task, ADeepChainOfNestedAwaitsDoesNotGrowTheStack) { EXPECT_EQ(kc::sync_wait(depth(200'000)), 200'000); }

TEST(Task, ATaskSuspendedOnAnotherThreadsEventCompletesSyncWait) {
  kc::CancelToken token;
  auto waiter = [](kc::CancelToken t) -> kc::Task<int> {
    co_await t.cancelled();
    co_return co_await value_of(3);
  };
  std::thread canceller([&token] {
    std::this_thread::yield();
    token.cancel();
  });
  EXPECT_EQ(kc::sync_wait(waiter(token)), 3);
  canceller.join();
}

namespace {
using kc::testing::ManualCoroutine;

ManualCoroutine await_value_into(int* out) { *out = co_await value_of(7); }
}  // namespace

TEST(Task, ResumingACoroutineByHandInsideATaskRunsItsAwaitsBeforeResumeReturns) {
  auto outer = []() -> kc::Task<int> {
    int value = 0;
    ManualCoroutine inner = await_value_into(&value);
    inner.handle.resume();  // plain resume() from inside a running Task
    const bool done = inner.handle.done();
    co_return done ? value : -1;
  };
  EXPECT_EQ(kc::sync_wait(outer()), 7);
}

namespace {
template <class T, class U>
concept CanReturn = requires(kc::detail::TaskPromise<T>& promise, U&& value) {
  promise.return_value(std::forward<U>(value));
};
static_assert(CanReturn<const std::string&, std::string&>);
static_assert(!CanReturn<const std::string&, std::string>, "a reference task must not bind a temporary");
static_assert(CanReturn<std::string, std::string>);
}  // namespace
