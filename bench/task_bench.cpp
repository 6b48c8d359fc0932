// Task<T> micro-benchmarks: the cost of creating, starting and awaiting a trivial coroutine.
#include <benchmark/benchmark.h>

#include "knhk/concurrency/sync_wait.hpp"
#include "knhk/concurrency/task.hpp"

namespace kc = knhk::concurrency;

namespace {

kc::Task<int> one() { co_return 1; }

kc::Task<long> await_many(long count) {
  long sum = 0;
  for (long i = 0; i < count; ++i) sum += co_await one();
  co_return sum;
}

// Per await: frame allocation, symmetric transfer in and out, result read, frame free.
void BM_TaskAwaitTrivial(benchmark::State& state) {
  constexpr long kAwaits = 1000;
  for (auto _ : state) {
    const long sum = kc::sync_wait(await_many(kAwaits));
    if (sum != kAwaits) state.SkipWithError("wrong sum");
  }
  state.SetItemsProcessed(state.iterations() * kAwaits);
}
BENCHMARK(BM_TaskAwaitTrivial);

}  // namespace
