// CancelToken micro-benchmarks: create, child_token, cancel, is_cancelled (direct and on a
// grandchild), registration.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "knhk/concurrency/cancel_token.hpp"

namespace kc = knhk::concurrency;

namespace {

void BM_TokenCreate(benchmark::State& state) {
  for (auto _ : state) {
    kc::CancelToken token;
    benchmark::DoNotOptimize(token);
  }
}
BENCHMARK(BM_TokenCreate);

void BM_ChildTokenCreateAndDrop(benchmark::State& state) {
  const kc::CancelToken root;
  for (auto _ : state) {
    kc::CancelToken child = root.child_token();
    benchmark::DoNotOptimize(child);
  }
}
BENCHMARK(BM_ChildTokenCreateAndDrop);

// Cancelling a token with N children, each holding a callback (the tree is rebuilt untimed).
void BM_CancelWithChildren(benchmark::State& state) {
  const auto children = static_cast<std::size_t>(state.range(0));
  std::size_t calls = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto root = std::make_unique<kc::CancelToken>();
    std::vector<kc::CancelToken> tokens;
    std::vector<kc::CancelRegistration> registrations;
    for (std::size_t i = 0; i < children; ++i) {
      tokens.push_back(root->child_token());
      registrations.push_back(tokens.back().on_cancel([&calls] { ++calls; }));
    }
    state.ResumeTiming();
    root->cancel();
    state.PauseTiming();
    registrations.clear();
    tokens.clear();
    root.reset();
    state.ResumeTiming();
  }
  if (calls != children * static_cast<std::size_t>(state.iterations())) state.SkipWithError("callbacks missed");
  state.SetItemsProcessed(static_cast<std::int64_t>(children) * state.iterations());
}
BENCHMARK(BM_CancelWithChildren)->Arg(0)->Arg(100)->Arg(10'000);

void BM_IsCancelled(benchmark::State& state) {
  const kc::CancelToken token;
  for (auto _ : state) benchmark::DoNotOptimize(token.is_cancelled());
}
BENCHMARK(BM_IsCancelled);

void BM_GrandchildIsCancelled(benchmark::State& state) {
  const kc::CancelToken root;
  const kc::CancelToken grandchild = root.child_token().child_token();
  for (auto _ : state) benchmark::DoNotOptimize(grandchild.is_cancelled());
}
BENCHMARK(BM_GrandchildIsCancelled);

void BM_OnCancelRegisterAndDrop(benchmark::State& state) {
  const kc::CancelToken token;
  int calls = 0;
  for (auto _ : state) {
    kc::CancelRegistration registration = token.on_cancel([&calls] { ++calls; });
    benchmark::DoNotOptimize(registration);
  }
  if (calls != 0) state.SkipWithError("a callback ran without a cancel");
}
BENCHMARK(BM_OnCancelRegisterAndDrop);

}  // namespace
