// Timers at volume: a hundred thousand sleepers, and a million sleeps cancelled while they sleep.
// Counts are exact; nothing here depends on how fast the machine is.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "knhk/concurrency.hpp"

namespace kc = knhk::concurrency;
using namespace std::chrono_literals;

namespace {

#if defined(KNHK_SANITIZED)
constexpr bool kSanitized = true;  // sanitizer builds run several times slower: smaller rounds
#else
constexpr bool kSanitized = false;
#endif

bool settles_at_zero() {
  for (int i = 0; i < 2000 && kc::pending_timers() != 0; ++i) std::this_thread::sleep_for(5ms);
  return kc::pending_timers() == 0;
}

}  // namespace

TEST(TimerStress, AHundredThousandSleepersAllWake) {
  const int sleepers = kSanitized ? 20'000 : 100'000;
  std::atomic<int> woke{0};
  {
    kc::WorkStealingExecutor ex(2);
    for (int i = 0; i < sleepers; ++i) {
      ex.spawn([&woke, i]() -> kc::Task<void> {
        co_await kc::sleep_for(std::chrono::milliseconds(10 + i % 90));
        woke.fetch_add(1, std::memory_order_relaxed);
      });
    }
    ex.shutdown();
  }
  EXPECT_EQ(woke.load(), sleepers);
  EXPECT_TRUE(settles_at_zero());
}

TEST(TimerStress, AMillionCancelledSleepsLeaveNoTimerEntriesBehind) {
  const int batches = kSanitized ? 100 : 1000;
  constexpr int kPerBatch = 1000;
  kc::WorkStealingExecutor ex(2);
  std::atomic<int> cancelled{0};
  std::size_t most_pending = 0;
  for (int b = 0; b < batches; ++b) {
    kc::CancelToken batch = ex.token().child_token();
    std::atomic<int> asleep{0};
    std::atomic<int> ended{0};
    for (int i = 0; i < kPerBatch; ++i) {
      ex.spawn([&, batch]() -> kc::Task<void> {
        asleep.fetch_add(1);
        try {
          co_await kc::sleep_for(1h, batch);
        } catch (const kc::Cancelled&) {
          cancelled.fetch_add(1, std::memory_order_relaxed);
        }
        ended.fetch_add(1);
      });
    }
    while (asleep.load() != kPerBatch) std::this_thread::yield();
    most_pending = std::max(most_pending, kc::pending_timers());
    batch.cancel();
    while (ended.load() != kPerBatch) std::this_thread::yield();
  }
  ex.shutdown();
  EXPECT_EQ(cancelled.load(), batches * kPerBatch);
  EXPECT_LE(most_pending, static_cast<std::size_t>(kPerBatch));  // entries never pile up
  EXPECT_TRUE(settles_at_zero());
}
