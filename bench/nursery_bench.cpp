// Nursery micro-benchmarks: a nursery spawns 1, 10 or 100 trivial children and waits for all of
// them. The benchmark loop itself runs inside a task on the executor (as a nursery normally
// would), so each iteration is exactly construct + spawns + wait_all + destroy; real time is
// reported, since the benchmark thread only waits.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include "knhk/concurrency.hpp"

namespace kc = knhk::concurrency;

namespace {

void BM_NurserySpawnWaitAll(benchmark::State& state) {
  const std::int64_t children = state.range(0);
  kc::WorkStealingExecutor ex(2);
  std::atomic<std::int64_t> runs{0};
  std::int64_t nurseries = 0;
  ex.block_on([&]() -> kc::Task<void> {
    for (auto _ : state) {
      kc::Nursery nursery(ex);
      for (std::int64_t i = 0; i < children; ++i)
        nursery.spawn([&runs] { runs.fetch_add(1, std::memory_order_relaxed); });
      co_await nursery.wait_all();
      ++nurseries;
    }
  }());
  if (runs.load() != nurseries * children) state.SkipWithError("a nursery lost a child");
  state.SetItemsProcessed(nurseries * children);
}
BENCHMARK(BM_NurserySpawnWaitAll)->Arg(1)->Arg(10)->Arg(100)->UseRealTime();

// The same from a thread outside the executor: children go through the global queue and the
// waiting thread blocks in sync_wait.
void BM_NurserySpawnWaitAllFromOutside(benchmark::State& state) {
  const std::int64_t children = state.range(0);
  kc::WorkStealingExecutor ex(2);
  std::atomic<std::int64_t> runs{0};
  std::int64_t nurseries = 0;
  for (auto _ : state) {
    kc::Nursery nursery(ex);
    for (std::int64_t i = 0; i < children; ++i)
      nursery.spawn([&runs] { runs.fetch_add(1, std::memory_order_relaxed); });
    kc::sync_wait(nursery.wait_all());
    ++nurseries;
  }
  if (runs.load() != nurseries * children) state.SkipWithError("a nursery lost a child");
  state.SetItemsProcessed(nurseries * children);
}
BENCHMARK(BM_NurserySpawnWaitAllFromOutside)->Arg(1)->Arg(10)->Arg(100)->UseRealTime();

}  // namespace
