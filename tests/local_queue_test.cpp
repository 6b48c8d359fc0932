// LocalQueue (the Chase-Lev deque) and Injector: the executor's run queues, tested directly.
// Built twice: with the normal capacity and with KNHK_LOCAL_QUEUE_CAPACITY=4.
#include "local_queue.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "injector.hpp"

namespace kd = knhk::concurrency::detail;

namespace {
struct Item {
  int value = 0;
  Item* next = nullptr;
};
using Queue = kd::LocalQueue<Item>;
}  // namespace

TEST(LocalQueue, OwnerPopsNewestFirst) {
  Queue queue;
  auto owner = queue.owner();
  std::vector<Item> items(3);
  for (auto& item : items) ASSERT_TRUE(owner.push(&item));
  EXPECT_EQ(owner.pop(), &items[2]);
  EXPECT_EQ(owner.pop(), &items[1]);
  EXPECT_EQ(owner.pop(), &items[0]);
  EXPECT_EQ(owner.pop(), nullptr);
}

TEST(LocalQueue, ThiefStealsOldestFirst) {
  Queue queue;
  auto owner = queue.owner();
  auto thief = queue.stealer();
  std::vector<Item> items(2);
  for (auto& item : items) ASSERT_TRUE(owner.push(&item));
  Item* stolen = nullptr;
  ASSERT_EQ(thief.steal(stolen), kd::StealResult::success);
  EXPECT_EQ(stolen, &items[0]);
  EXPECT_EQ(owner.pop(), &items[1]);
  EXPECT_EQ(thief.steal(stolen), kd::StealResult::empty);
}

TEST(LocalQueue, PushFailsWhenFullAndTheOlderHalfMovesOut) {
  Queue queue;
  auto owner = queue.owner();
  std::vector<Item> items(static_cast<std::size_t>(Queue::kCapacity) + 1);
  for (std::size_t i = 0; i < static_cast<std::size_t>(Queue::kCapacity); ++i) ASSERT_TRUE(owner.push(&items[i]));
  EXPECT_FALSE(owner.push(&items.back()));
  std::vector<Item*> moved;
  const std::size_t n = owner.take_older_half([&moved](Item* item) { moved.push_back(item); });
  ASSERT_EQ(n, static_cast<std::size_t>(Queue::kCapacity / 2));
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(moved[i], &items[i]);  // oldest first
  EXPECT_TRUE(owner.push(&items.back()));
  EXPECT_EQ(owner.pop(), &items.back());
}

TEST(LocalQueue, WrapsAroundItsRingManyTimes) {
  Queue queue;
  auto owner = queue.owner();
  auto thief = queue.stealer();
  std::vector<Item> items(3);
  for (int round = 0; round < 10'000; ++round) {
    for (auto& item : items) ASSERT_TRUE(owner.push(&item) || Queue::kCapacity < 3);
    Item* stolen = nullptr;
    while (thief.steal(stolen) == kd::StealResult::success) {
    }
    ASSERT_EQ(owner.pop(), nullptr);
  }
}

TEST(Injector, IsFirstInFirstOut) {
  kd::Injector<Item> injector;
  std::vector<Item> items(3);
  EXPECT_TRUE(injector.empty_hint());
  injector.push(&items[0]);
  items[1].next = &items[2];
  injector.push_batch(&items[1], &items[2], 2);
  EXPECT_EQ(injector.size_hint(), 3U);
  EXPECT_EQ(injector.pop(), &items[0]);
  EXPECT_EQ(injector.pop(), &items[1]);
  EXPECT_EQ(injector.pop(), &items[2]);
  EXPECT_EQ(injector.pop(), nullptr);
  EXPECT_TRUE(injector.empty_hint());
}
