// WorkStealingExecutor micro-benchmarks: the cost of one spawn call (from a worker and from
// outside), end-to-end throughput for batches of 10, 100 and 1000 empty tasks, and a batch of
// CPU-bound tasks. Each checks that every task ran.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <latch>

#include "knhk/concurrency.hpp"

namespace kc = knhk::concurrency;

namespace {

// One spawn call from a task on a worker (the local queue); the tasks run after the timed loop.
void BM_SpawnFromWorker(benchmark::State& state) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<std::int64_t> runs{0};
  std::int64_t spawned = 0;
  ex.block_on([&]() -> kc::Task<void> {
    for (auto _ : state) {
      ex.spawn([&runs] { runs.fetch_add(1, std::memory_order_relaxed); });
      ++spawned;
    }
    co_return;
  }());
  ex.shutdown();
  if (runs.load() != spawned) state.SkipWithError("a spawned task did not run");
}
BENCHMARK(BM_SpawnFromWorker)->UseRealTime();

// One spawn call from a thread that is not a worker (the global queue).
void BM_SpawnFromOutside(benchmark::State& state) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<std::int64_t> runs{0};
  std::int64_t spawned = 0;
  for (auto _ : state) {
    ex.spawn([&runs] { runs.fetch_add(1, std::memory_order_relaxed); });
    ++spawned;
  }
  ex.shutdown();
  if (runs.load() != spawned) state.SkipWithError("a spawned task did not run");
}
BENCHMARK(BM_SpawnFromOutside);

// A batch of empty tasks spawned from outside and waited for: spawn, run and wake-up end to end.
void BM_Throughput(benchmark::State& state) {
  const std::int64_t tasks = state.range(0);
  kc::WorkStealingExecutor ex(2);
  for (auto _ : state) {
    std::latch done(tasks);
    for (std::int64_t i = 0; i < tasks; ++i) ex.spawn([&done] { done.count_down(); });
    done.wait();
  }
  state.SetItemsProcessed(state.iterations() * tasks);
}
BENCHMARK(BM_Throughput)->Arg(10)->Arg(100)->Arg(1000)->UseRealTime();

// 64 tasks of about 20 us of arithmetic each: how close two workers get to twice one core.
void BM_CpuBoundBatch(benchmark::State& state) {
  constexpr int kTasks = 64;
  constexpr std::uint64_t kIterations = 20'000;
  kc::WorkStealingExecutor ex(2);
  std::uint64_t expected = 1;
  for (std::uint64_t i = 0; i < kIterations; ++i) expected = expected * 6364136223846793005ULL + 1;
  for (auto _ : state) {
    std::latch done(kTasks);
    std::atomic<int> correct{0};
    for (int t = 0; t < kTasks; ++t) {
      ex.spawn([&] {
        std::uint64_t x = 1;
        for (std::uint64_t i = 0; i < kIterations; ++i) {
          x = x * 6364136223846793005ULL + 1;
          benchmark::DoNotOptimize(x);
        }
        if (x == expected) correct.fetch_add(1, std::memory_order_relaxed);
        done.count_down();
      });
    }
    done.wait();
    if (correct.load() != kTasks) state.SkipWithError("a task computed a wrong value");
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_CpuBoundBatch)->UseRealTime();

}  // namespace
