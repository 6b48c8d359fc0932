// W11 timers (this project's addition to BENCHMARKS.md; oneTBB has no timers to compare with).
//  - 100,000 tasks on T = 2 each sleep 200 ms, all at once: wall time over the ideal 200 ms, CPU
//    seconds the whole process burned meanwhile (workers and timer thread), per sleeper, and the
//    memory each sleeping task holds (frames, timer entry, cancellation callback): heap bytes in
//    use (exact) and resident set growth (after malloc_trim, so that repetitions are comparable).
//  - accuracy: one task sleeps 1..4 ms 100 times; how late each sleep ends (p50, p99).
//  - 100,000 sleeps cancelled while they sleep: ns per sleep (spawn, sleep, cancel, wake); the
//    timer service must hold no entry afterwards.
// Every run checks that every sleeper woke, none before its deadline, and that nothing is left.
#include <malloc.h>
#include <knhk/concurrency.hpp>

#include <algorithm>
#include <atomic>
#include <latch>
#include <string>
#include <vector>

#include "workload.hpp"

namespace knhk::bench {
namespace {

namespace kc = knhk::concurrency;
using namespace std::chrono_literals;

constexpr std::size_t kSleepers = 100'000;
constexpr auto kSleep = 200ms;
constexpr int kAccuracySleeps = 100;
constexpr std::size_t kCancelled = 100'000;

struct SleepersSample {
  double wall_over_ideal;
  double cpu_us_per_sleeper;
  double heap_bytes_per_sleeper;
  double rss_bytes_per_sleeper;
};

// Bytes the allocator has handed out and not taken back (glibc's mallinfo2: exact, repeatable).
double heap_in_use() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<double>(info.uordblks + info.hblkhd);
}

SleepersSample measure_sleepers() {
  BenchExecutor ex(2);
  std::atomic<std::size_t> asleep{0};
  std::atomic<std::size_t> woke{0};
  std::atomic<std::size_t> early{0};
  ex.block_on(kc::sleep_for(1ms));  // the timer thread and the workers exist before the baseline
  malloc_trim(0);                   // give back what earlier repetitions freed, so RSS can grow again
  const double heap_before = heap_in_use();
  // Blocks the runtime keeps for reuse count as in use to malloc: handed to the sleepers, they
  // would not show as growth. What leaves the depot meanwhile is added back below.
  const double cached_before = static_cast<double>(kc::cached_memory_bytes());
  const std::size_t rss_before = resident_kib();
  const double cpu_before = process_cpu_seconds();
  const auto start = Clock::now();
  for (std::size_t i = 0; i < kSleepers; ++i) {
    ex.spawn([&]() -> kc::Task<void> {
      const auto deadline = Clock::now() + kSleep;
      asleep.fetch_add(1, std::memory_order_relaxed);
      co_await kc::sleep_for(kSleep);
      if (Clock::now() < deadline) early.fetch_add(1, std::memory_order_relaxed);
      woke.fetch_add(1, std::memory_order_relaxed);
    });
  }
  // Resident memory while (nearly) all of them sleep: a sleep of 200 ms leaves time to look.
  while (asleep.load(std::memory_order_relaxed) != kSleepers && Clock::now() - start < kSleep / 2) {
    std::this_thread::sleep_for(1ms);
  }
  const std::size_t sleeping = asleep.load(std::memory_order_relaxed) - woke.load(std::memory_order_relaxed);
  const std::size_t rss_asleep = resident_kib();
  const double heap_asleep = heap_in_use() + cached_before - static_cast<double>(kc::cached_memory_bytes());
  ex.shutdown();
  const auto end = Clock::now();
  const double cpu = process_cpu_seconds() - cpu_before;

  check(woke.load() == kSleepers,
        "W11: " + std::to_string(woke.load()) + " of " + std::to_string(kSleepers) + " sleepers woke");
  check(early.load() == 0, "W11: " + std::to_string(early.load()) + " sleeps ended before their deadline");
  check(sleeping != 0, "W11: no sleeper was asleep when memory was measured");
  const double rss_growth = (static_cast<double>(rss_asleep) - static_cast<double>(rss_before)) * 1024.0;
  const auto per_sleeper = [&](double bytes) { return std::max(0.0, bytes) / static_cast<double>(sleeping); };
  return {nanoseconds_between(start, end) / std::chrono::duration<double, std::nano>(kSleep).count(),
          cpu * 1e6 / static_cast<double>(kSleepers), per_sleeper(heap_asleep - heap_before), per_sleeper(rss_growth)};
}

struct AccuracySample {
  double p50_us;
  double p99_us;
};

AccuracySample measure_accuracy() {
  BenchExecutor ex(2);
  std::vector<double> late_us = ex.block_on([]() -> kc::Task<std::vector<double>> {
    std::vector<double> late;
    late.reserve(kAccuracySleeps);
    for (int i = 0; i < kAccuracySleeps; ++i) {
      const auto wanted = std::chrono::milliseconds(1 + i % 4);
      const auto start = Clock::now();
      co_await kc::sleep_for(wanted);
      late.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start - wanted).count());
    }
    co_return late;
  }());
  check(late_us.size() == kAccuracySleeps, "W11: accuracy run lost sleeps");
  check(*std::min_element(late_us.begin(), late_us.end()) >= 0.0, "W11: a sleep ended before its duration");
  std::sort(late_us.begin(), late_us.end());
  auto at = [&](double q) { return late_us[static_cast<std::size_t>(q * static_cast<double>(late_us.size() - 1))]; };
  return {at(0.50), at(0.99)};
}

double measure_cancelled_sleeps_ns() {
  BenchExecutor ex(2);
  constexpr std::size_t kBatch = 1000;
  std::atomic<std::size_t> cancelled{0};
  const auto start = Clock::now();
  for (std::size_t done = 0; done < kCancelled; done += kBatch) {
    const kc::CancelToken batch = ex.token().child_token();
    std::latch asleep(static_cast<std::ptrdiff_t>(kBatch));
    std::latch ended(static_cast<std::ptrdiff_t>(kBatch));
    for (std::size_t i = 0; i < kBatch; ++i) {
      ex.spawn([&, batch]() -> kc::Task<void> {
        asleep.count_down();
        try {
          co_await kc::sleep_for(1h, batch);
        } catch (const kc::Cancelled&) {
          cancelled.fetch_add(1, std::memory_order_relaxed);
        }
        ended.count_down();
      });
    }
    asleep.wait();
    batch.cancel();
    ended.wait();
  }
  const auto end = Clock::now();
  ex.shutdown();
  check(cancelled.load() == kCancelled, "W11: " + std::to_string(cancelled.load()) + " of " +
                                            std::to_string(kCancelled) + " sleeps ended with Cancelled");
  std::size_t pending = kc::pending_timers();
  for (int i = 0; i < 1000 && pending != 0; ++i) {  // the timer thread may trail by a moment
    std::this_thread::sleep_for(1ms);
    pending = kc::pending_timers();
  }
  check(pending == 0, "W11: " + std::to_string(pending) + " timer entries left after cancelled sleeps");
  return nanoseconds_between(start, end) / static_cast<double>(kCancelled);
}

}  // namespace

std::vector<Row> run_timer_workload(const Options& options) {
  Row wall{"W11", "sleepers_100k_wall_over_ideal", "1", {}, std::nullopt, Target::at_most(2)};
  Row cpu{"W11", "sleepers_100k_cpu_us_per_sleeper", "us", {}, std::nullopt, Target::at_most(5)};
  Row heap{"W11", "sleepers_100k_heap_bytes_per_sleeper", "B", {}, std::nullopt, Target::at_most(768)};
  Row rss{"W11", "sleepers_100k_rss_bytes_per_sleeper", "B", {}, std::nullopt, Target::at_most(1024)};
  Row p50{"W11", "sleep_late_p50_us", "us", {}, std::nullopt, Target::at_most(1100)};
  Row p99{"W11", "sleep_late_p99_us", "us", {}, std::nullopt, Target::at_most(2000)};
  Row cancelled{"W11", "cancelled_sleep_ns", "ns", {}, std::nullopt, Target::at_most(5000)};
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    show_progress("W11 timers", rep, options.repetitions);
    const SleepersSample sleepers = measure_sleepers();
    wall.knhk.values.push_back(sleepers.wall_over_ideal);
    cpu.knhk.values.push_back(sleepers.cpu_us_per_sleeper);
    heap.knhk.values.push_back(sleepers.heap_bytes_per_sleeper);
    rss.knhk.values.push_back(sleepers.rss_bytes_per_sleeper);
    const AccuracySample accuracy = measure_accuracy();
    p50.knhk.values.push_back(accuracy.p50_us);
    p99.knhk.values.push_back(accuracy.p99_us);
    cancelled.knhk.values.push_back(measure_cancelled_sleeps_ns());
  }
  return {wall, cpu, heap, rss, p50, p99, cancelled};
}

}  // namespace knhk::bench
