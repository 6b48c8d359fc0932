// A workload that makes the library emit every metric, span, attribute and enum value it has:
// outside and worker spawns, a steal, callables and coroutine tasks, parks, nurseries waited with
// wait_all and wait_any, tokens made, cancelled twice, scopes made and dropped, a shutdown. Shared
// by the registry live check and the export-format tests, which both need real emissions.
#pragma once

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "knhk/concurrency.hpp"

namespace knhk::test {

struct Emitted {
  concurrency::telemetry::MetricsSnapshot metrics;
  std::vector<concurrency::telemetry::SpanRecord> spans;
  std::uint64_t spans_dropped = 0;
};

// Waits (bounded: a stuck workload fails instead of hanging) until `done` holds.
template <class Predicate>
void wait_until(Predicate done, const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error(std::string("timed out: ") + what);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

inline Emitted run_telemetry_workload() {
  namespace kc = concurrency;
  using namespace std::chrono_literals;
  kc::telemetry::SpanBuffer buffer(std::size_t{1} << 20);
  Emitted out;
  {
    const kc::telemetry::ScopedTraceSink installed(buffer);
    kc::WorkStealingExecutor ex(2);

    // Spawns from outside (the global queue): more than one sampling period.
    std::atomic<int> outside{0};
    for (int i = 0; i < 300; ++i) ex.spawn([&outside] { outside.fetch_add(1, std::memory_order_relaxed); });

    // A worker spawns onto its own queue, then keeps its thread busy until the other worker has
    // run some of those tasks. Fewer than the local queue holds (256), so none overflows to the
    // global queue: the other worker can only have stolen them, and a steal is certain.
    std::atomic<std::thread::id> spawner{};
    std::atomic<int> ran_elsewhere{0};
    auto steal_bait = ex.spawn_with_handle([&] {
      spawner.store(std::this_thread::get_id());
      for (int i = 0; i < 100; ++i) {
        ex.spawn([&] {
          if (std::this_thread::get_id() != spawner.load()) ran_elsewhere.fetch_add(1);
        });
      }
      wait_until([&] { return ran_elsewhere.load() > 0; }, "a steal by the second worker");
    });
    steal_bait.get();

    // A coroutine task that suspends (io_bound steps).
    auto sleeper = ex.spawn_with_handle([]() -> kc::Task<int> {
      co_await kc::sleep_for(1ms);
      co_return 7;
    });
    if (sleeper.get() != 7) throw std::runtime_error("the coroutine task returned a wrong value");

    // Nurseries: wait_all, and wait_any (which cancels the rest).
    ex.block_on([&ex]() -> kc::Task<void> {
      kc::Nursery all(ex);
      for (int i = 0; i < 4; ++i) all.spawn([] {});
      co_await all.wait_all();
      kc::Nursery any(ex);
      any.spawn([] {});
      any.spawn([]() -> kc::Task<void> { co_await kc::sleep_for(std::chrono::hours(1)); });
      co_await any.wait_any();
    }());

    // Tokens and scopes: a root, a child, a cancel, a repeated (no-op) cancel; scopes dropped.
    const kc::CancelToken root;
    const kc::CancelToken child = root.child_token();
    root.cancel();
    child.cancel();
    { const kc::CancelScope scope; }
    { const kc::CancelScope scope(root); }

    // Both workers park (idle), and are woken by the shutdown: park spans end.
    wait_until([&] { return ex.metrics().workers_idle == 2; }, "both workers parked");
    wait_until([&] { return outside.load() == 300; }, "the outside spawns ran");
    out.metrics = kc::telemetry::collect(ex);
    ex.shutdown();
  }
  out.spans = buffer.take();
  out.spans_dropped = buffer.dropped();
  return out;
}

}  // namespace knhk::test
