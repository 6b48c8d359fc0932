// What an executor hands to telemetry::collect() (src/telemetry.cpp): its instruments' raw values,
// read by ExecutorState::read_telemetry() in src/executor.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace knhk::concurrency::detail {

class ExecutorState;

struct HistogramCounts {
  std::vector<std::uint64_t> counts;  // Log2Histogram::kBuckets of them
  std::uint64_t sum = 0;
};

struct ExecutorTelemetryData {
  std::int64_t start_unix_ns = 0;
  std::uint64_t tasks_spawned = 0;
  std::uint64_t tasks_failed = 0;
  std::vector<std::uint64_t> completed_per_worker;
  std::uint64_t completed_elsewhere = 0;  // coroutine tasks whose last step ran off the workers
  std::vector<std::uint64_t> stolen_per_worker;
  std::size_t workers_idle = 0;
  double cpu_utilization = 0;
  bool histograms_enabled = false;  // WorkerConfig::enable_telemetry
  HistogramCounts spawn_latency_ns;
  HistogramCounts steal_latency_ns;
  HistogramCounts steal_attempts;
  HistogramCounts depth_local;
  HistogramCounts depth_global;
  HistogramCounts depth_stolen;
};

void read_telemetry(const ExecutorState* executor, ExecutorTelemetryData& out);

}  // namespace knhk::concurrency::detail
