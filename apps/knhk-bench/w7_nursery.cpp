// W7 nursery: a nursery spawns 100 children and waits for all of them, over and over; microseconds
// per nursery, against oneTBB's task_group run+wait of 100 in the same run.
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <atomic>
#include <cstddef>
#include <knhk/concurrency.hpp>

#include "workload.hpp"

namespace knhk::bench {
namespace {

namespace kc = knhk::concurrency;

constexpr std::size_t kChildren = 100;

// Each child adds its index, so a lost or doubled child changes the sum.
constexpr std::size_t kSumPerNursery = kChildren * (kChildren - 1) / 2;

double knhk_nurseries(kc::WorkStealingExecutor& ex, std::size_t nurseries) {
  std::atomic<std::size_t> sum{0};
  const auto start = Clock::now();
  ex.block_on([&]() -> kc::Task<void> {
    for (std::size_t n = 0; n < nurseries; ++n) {
      kc::Nursery nursery(ex);
      for (std::size_t i = 0; i < kChildren; ++i) {
        nursery.spawn([&sum, i] { sum.fetch_add(i, std::memory_order_relaxed); });
      }
      co_await nursery.wait_all();
    }
  }());
  const double us = nanoseconds_between(start, Clock::now()) / 1e3 / static_cast<double>(nurseries);
  check(sum.load() == nurseries * kSumPerNursery, "W7 knhk: a nursery lost or repeated a child");
  return us;
}

double tbb_task_groups(tbb::task_arena& arena, std::size_t groups) {
  std::atomic<std::size_t> sum{0};
  double us = 0;
  arena.execute([&] {
    const auto start = Clock::now();
    for (std::size_t n = 0; n < groups; ++n) {
      tbb::task_group group;
      for (std::size_t i = 0; i < kChildren; ++i) {
        group.run([&sum, i] { sum.fetch_add(i, std::memory_order_relaxed); });
      }
      group.wait();
    }
    us = nanoseconds_between(start, Clock::now()) / 1e3 / static_cast<double>(groups);
  });
  check(sum.load() == groups * kSumPerNursery, "W7 oneTBB: a task_group lost or repeated a task");
  return us;
}

}  // namespace

std::vector<Row> run_nursery_workload(const Options& options) {
  Row row{"W7", "nursery100_us", "us", {}, Samples{}, Target::at_most_onetbb(1.0)};
  const std::size_t nurseries = options.quick ? 2'000 : 20'000;
  BenchExecutor ex(2);
  tbb::task_arena arena(2);
  (void)knhk_nurseries(ex, nurseries / 10);  // warm both pools before the first measurement
  (void)tbb_task_groups(arena, nurseries / 10);
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    show_progress("W7 nursery", rep, options.repetitions);
    row.add(knhk_nurseries(ex, nurseries), tbb_task_groups(arena, nurseries));
  }
  return {row};
}

}  // namespace knhk::bench
