// The hierarchical timer wheel on its own (src/timer_wheel.hpp): entries fire exactly at the first
// advance that reaches their tick, never before, whatever level they started on.
#include "timer_wheel.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace kd = knhk::concurrency::detail;

namespace {

void no_fire(kd::TimerEntry* /*entry*/) noexcept {}

struct Entry : kd::TimerEntry {
  Entry() : kd::TimerEntry(&no_fire) {}
  std::uint64_t fired_at = 0;
  bool fired = false;
};

std::size_t drain(kd::TimerEntry* due, std::uint64_t now) {
  std::size_t n = 0;
  while (due != nullptr) {
    auto* entry = static_cast<Entry*>(due);
    due = due->next;
    EXPECT_FALSE(entry->fired);
    EXPECT_FALSE(entry->linked);
    entry->fired = true;
    entry->fired_at = now;
    ++n;
  }
  return n;
}

}  // namespace

TEST(TimerWheel, AnEntryFiresAtItsTickNotBefore) {
  kd::TimerWheel wheel;
  Entry entry;
  entry.tick = 5;
  wheel.insert(&entry);
  EXPECT_EQ(wheel.next_expiration(), 5U);
  EXPECT_EQ(drain(wheel.advance(4), 4), 0U);
  EXPECT_EQ(drain(wheel.advance(5), 5), 1U);
  EXPECT_EQ(wheel.size(), 0U);
  EXPECT_EQ(wheel.next_expiration(), kd::TimerWheel::kNever);
}

TEST(TimerWheel, RandomDeadlinesAcrossAllLevelsFireExactlyWhenTimeReachesThem) {
  kd::TimerWheel wheel;
  std::mt19937_64 rng(42);
  std::vector<std::unique_ptr<Entry>> entries;
  for (int i = 0; i < 5000; ++i) {
    auto entry = std::make_unique<Entry>();
    const unsigned magnitude = static_cast<unsigned>(rng() % 24);  // up to 2^24 ticks: five levels
    entry->tick = 1 + rng() % (std::uint64_t{1} << magnitude);
    wheel.insert(entry.get());
    entries.push_back(std::move(entry));
  }
  std::uint64_t now = 0;
  std::size_t fired = 0;
  while (wheel.size() != 0) {
    const std::uint64_t next = wheel.next_expiration();
    ASSERT_NE(next, kd::TimerWheel::kNever);
    ASSERT_GT(next, now);
    now += (rng() % 3 == 0) ? next - now : 1 + rng() % 5000;  // jump to it, or stride by a few
    fired += drain(wheel.advance(now), now);
  }
  EXPECT_EQ(fired, entries.size());
  for (const auto& entry : entries) {
    ASSERT_TRUE(entry->fired);
    EXPECT_GE(entry->fired_at, entry->tick);  // never early
  }
}

TEST(TimerWheel, StrideByOneFiresEachEntryOnItsOwnTick) {
  kd::TimerWheel wheel;
  std::mt19937_64 rng(7);
  std::vector<std::unique_ptr<Entry>> entries;
  for (int i = 0; i < 3000; ++i) {
    auto entry = std::make_unique<Entry>();
    entry->tick = 1 + rng() % 300'000;
    wheel.insert(entry.get());
    entries.push_back(std::move(entry));
  }
  for (std::uint64_t now = 1; wheel.size() != 0; ++now) drain(wheel.advance(now), now);
  for (const auto& entry : entries) EXPECT_EQ(entry->fired_at, entry->tick);
}

TEST(TimerWheel, RemovedEntriesNeverFireAndFreeTheirSlot) {
  kd::TimerWheel wheel;
  std::vector<std::unique_ptr<Entry>> entries;
  for (int i = 0; i < 1000; ++i) {
    auto entry = std::make_unique<Entry>();
    entry->tick = 1 + static_cast<std::uint64_t>(i) * 97;
    wheel.insert(entry.get());
    entries.push_back(std::move(entry));
  }
  for (std::size_t i = 0; i < entries.size(); i += 2) wheel.remove(entries[i].get());
  EXPECT_EQ(wheel.size(), 500U);
  std::uint64_t now = 0;
  while (wheel.size() != 0) {
    now = wheel.next_expiration();
    drain(wheel.advance(now), now);
  }
  for (std::size_t i = 0; i < entries.size(); ++i) EXPECT_EQ(entries[i]->fired, i % 2 == 1);
}

TEST(TimerWheel, EntriesAddedAfterTimeMovedOnFireRelativeToTheNewTime) {
  kd::TimerWheel wheel;
  EXPECT_EQ(wheel.advance(1'000'000), nullptr);
  Entry soon;
  soon.tick = 1'000'003;
  Entry later;
  later.tick = 1'300'000;
  wheel.insert(&later);
  wheel.insert(&soon);
  EXPECT_EQ(wheel.next_expiration(), 1'000'003U);
  EXPECT_EQ(drain(wheel.advance(1'000'003), 1'000'003), 1U);
  EXPECT_TRUE(soon.fired);
  EXPECT_EQ(drain(wheel.advance(1'299'999), 1'299'999), 0U);
  EXPECT_EQ(drain(wheel.advance(1'300'000), 1'300'000), 1U);
}

TEST(TimerWheel, ADeadlineBeyondTheHorizonIsClampedToIt) {
  kd::TimerWheel wheel;
  Entry far;
  far.tick = ~std::uint64_t{0};
  wheel.insert(&far);
  EXPECT_EQ(far.tick, kd::TimerWheel::kMaxTick);
  EXPECT_EQ(drain(wheel.advance(kd::TimerWheel::kMaxTick - 1), 0), 0U);
  EXPECT_EQ(drain(wheel.advance(kd::TimerWheel::kMaxTick), 0), 1U);
}
