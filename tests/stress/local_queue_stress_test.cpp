// The Chase-Lev deque under contention: one owner pushing and popping, thieves stealing, and the
// owner moving overflow to an injector. Every item must be taken exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "injector.hpp"
#include "local_queue.hpp"

namespace kd = knhk::concurrency::detail;

namespace {
struct Item {
  std::atomic<int> taken{0};
  Item* next = nullptr;
};
using Queue = kd::LocalQueue<Item>;

#if defined(KNHK_SANITIZED)
constexpr std::size_t kItems = 50'000;
#else
constexpr std::size_t kItems = 500'000;
#endif
}  // namespace

TEST(LocalQueueStress, EveryItemIsTakenExactlyOnceByOwnerThievesOrOverflow) {
  std::vector<Item> items(kItems);
  Queue queue;
  kd::Injector<Item> overflow;
  std::atomic<bool> done{false};
  std::atomic<std::size_t> taken_total{0};
  auto take = [&](Item* item) {
    item->taken.fetch_add(1, std::memory_order_relaxed);
    taken_total.fetch_add(1, std::memory_order_relaxed);
  };

  std::vector<std::thread> thieves;
  for (int i = 0; i < 2; ++i) {
    thieves.emplace_back([&] {
      auto thief = queue.stealer();
      while (!done.load(std::memory_order_acquire)) {
        Item* item = nullptr;
        if (thief.steal(item) == kd::StealResult::success) take(item);
      }
    });
  }

  auto owner = queue.owner();
  for (std::size_t i = 0; i < kItems; ++i) {
    while (!owner.push(&items[i])) {
      owner.take_older_half([&](Item* item) { overflow.push(item); });
    }
    if (i % 3 == 0) {
      if (Item* item = owner.pop()) take(item);
    }
  }
  while (Item* item = owner.pop()) take(item);
  while (taken_total.load() + overflow.size_hint() < kItems) std::this_thread::yield();
  done.store(true, std::memory_order_release);
  for (auto& thief : thieves) thief.join();
  while (Item* item = overflow.pop()) take(item);

  EXPECT_EQ(taken_total.load(), kItems);
  for (std::size_t i = 0; i < kItems; ++i) ASSERT_EQ(items[i].taken.load(), 1) << "item " << i;
}
