// Pinned values and address_stable: a pinned value never moves while its handle does, pinned
// awaitables can be awaited in place, and the library's own awaiters cannot be relocated.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "knhk/concurrency.hpp"

namespace kc = knhk::concurrency;

// The concept itself.
static_assert(kc::address_stable<std::mutex>);
static_assert(kc::address_stable<std::atomic<int>>);
static_assert(!kc::address_stable<int>);
static_assert(!kc::address_stable<std::unique_ptr<int>>);  // movable

// The owner moves; it is not itself address-stable, and it cannot be copied.
static_assert(std::is_nothrow_move_constructible_v<kc::Pinned<int>>);
static_assert(!std::is_copy_constructible_v<kc::Pinned<int>> && !std::is_copy_assignable_v<kc::Pinned<int>>);

// The library's awaiters and operation states (each also asserts it next to its definition).
static_assert(kc::address_stable<kc::Task<int>::Awaiter>);
static_assert(kc::address_stable<kc::JoinHandle<int>::Awaiter>);
static_assert(kc::address_stable<kc::CancelledAwaiter>);
static_assert(kc::address_stable<kc::YieldAwaiter>);
static_assert(kc::address_stable<kc::WorkStealingExecutor::ScheduleAwaiter>);

namespace {

kc::Task<int> forty_two() { co_return 42; }

struct Counter {
  explicit Counter(int start) : value(start) {}
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;
  Counter(Counter&&) = delete;
  Counter& operator=(Counter&&) = delete;
  int value;
};

}  // namespace

TEST(Pinned, TheValueKeepsItsAddressWhenTheHandleMoves) {
  kc::Pinned<std::string> first = kc::pin(std::string("pinned"));
  const std::string* address = &first.get();

  kc::Pinned<std::string> second = std::move(first);
  kc::Pinned<std::string> third = kc::pin(std::string("other"));
  third = std::move(second);

  EXPECT_EQ(&third.get(), address);
  EXPECT_EQ(*third, "pinned");
  EXPECT_EQ(third->size(), 6U);
  EXPECT_FALSE(static_cast<bool>(first));
  EXPECT_TRUE(static_cast<bool>(third));
}

TEST(Pinned, MakePinnedBuildsAValueThatCanNeitherBeCopiedNorMoved) {
  kc::Pinned<Counter> counter = kc::make_pinned<Counter>(5);
  Counter* address = &counter.get();

  kc::Pinned<Counter> moved = std::move(counter);
  moved->value += 1;

  EXPECT_EQ(&*moved, address);
  EXPECT_EQ(moved.get().value, 6);
}

TEST(Pinned, APinnedTaskCanBeAwaited) {
  const int value = kc::sync_wait([]() -> kc::Task<int> {
    kc::Pinned<kc::Task<int>> task = kc::pin(forty_two());
    co_return co_await task;
  }());

  EXPECT_EQ(value, 42);
}

TEST(Pinned, APinnedTaskCanBeAwaitedAsATemporary) {
  const int value = kc::sync_wait([]() -> kc::Task<int> { co_return co_await kc::pin(forty_two()); }());

  EXPECT_EQ(value, 42);
}

TEST(Pinned, APinnedJoinHandleCanBeAwaitedOnAnExecutor) {
  kc::WorkStealingExecutor ex(2);

  const int value = ex.block_on([&]() -> kc::Task<int> {
    kc::Pinned<kc::JoinHandle<int>> handle = kc::pin(ex.spawn_with_handle([] { return 7; }));
    co_return co_await handle;
  }());

  EXPECT_EQ(value, 7);
}

TEST(Pinned, APinnedAwaiterIsAwaitedWhereItIs) {
  // A type that is its own awaiter (no operator co_await), pinned and awaited by reference.
  struct ReadyAwaiter {
    int resumed = 0;
    [[nodiscard]] bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    int await_resume() noexcept { return ++resumed; }
  };
  kc::Pinned<ReadyAwaiter> awaiter = kc::make_pinned<ReadyAwaiter>();

  const int value = kc::sync_wait([&]() -> kc::Task<int> { co_return co_await awaiter; }());

  EXPECT_EQ(value, 1);
  EXPECT_EQ(awaiter->resumed, 1);  // the pinned object itself was awaited, not a copy
}
