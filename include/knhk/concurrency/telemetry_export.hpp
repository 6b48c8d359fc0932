// Exporters for telemetry (telemetry.hpp): a metrics snapshot as Prometheus text exposition or as
// OTLP/JSON, spans as OTLP/JSON, and a background exporter that writes snapshots to a file.
//
// Prometheus: OpenTelemetry's name mapping (dots and other invalid characters become '_'; a unit
//   in braces is dropped, "ns" appends "_nanoseconds", "1" on a gauge "_ratio"; counters end in
//   "_total"), "# HELP" and "# TYPE" per family, cumulative "_bucket{le=...}" lines with "+Inf",
//   "_sum" and "_count" for histograms.
// OTLP/JSON: the JSON encoding of ExportMetricsServiceRequest / ExportTraceServiceRequest
//   (opentelemetry-proto): 64-bit integers as strings, trace and span ids as hex, enums as
//   numbers; one resource with service.name, one scope "knhk.concurrency" with the library's
//   version. An OpenTelemetry Collector reads such files with its otlpjsonfile receiver.
//
// Thread safety: the functions are pure; a PeriodicExporter may be destroyed from any thread but
//   one of the executor's workers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "knhk/concurrency/telemetry.hpp"

namespace knhk::concurrency::telemetry {

inline constexpr std::string_view kScopeName = "knhk.concurrency";

[[nodiscard]] std::string to_prometheus(const MetricsSnapshot& snapshot);
[[nodiscard]] std::string to_otlp_json(const MetricsSnapshot& snapshot, std::string_view service_name = "knhk");
[[nodiscard]] std::string to_otlp_json(std::span<const SpanRecord> spans, std::string_view service_name = "knhk");

/// The name a metric takes in Prometheus (see above), e.g.
/// "knhk.concurrency.executor.spawn.latency" in "ns" -> "knhk_concurrency_executor_spawn_latency_nanoseconds".
[[nodiscard]] std::string prometheus_name(const Metric& metric);

/// Writes `content` to `path` through a temporary file renamed over it, so a reader never sees a
/// half-written file. Throws std::system_error on failure.
void write_file_atomically(const std::string& path, std::string_view content);

enum class ExportFormat { otlp_json, prometheus };

/// Writes a snapshot of `executor` to `path` every `period`, and once more when destroyed. The
/// executor must outlive the exporter. Write failures are counted, never thrown.
class PeriodicExporter {
 public:
  PeriodicExporter(const WorkStealingExecutor& executor, std::string path, std::chrono::milliseconds period,
                   ExportFormat format = ExportFormat::otlp_json, std::string service_name = "knhk");
  PeriodicExporter(const PeriodicExporter&) = delete;
  PeriodicExporter& operator=(const PeriodicExporter&) = delete;
  ~PeriodicExporter();

  [[nodiscard]] std::uint64_t writes() const noexcept { return writes_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }

 private:
  void run();
  void write_once() noexcept;

  const WorkStealingExecutor& executor_;
  const std::string path_;
  const std::chrono::milliseconds period_;
  const ExportFormat format_;
  const std::string service_name_;
  std::atomic<std::uint64_t> writes_{0};  // relaxed: statistics
  std::atomic<std::uint64_t> failures_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace knhk::concurrency::telemetry
