// Telemetry: the executor's metrics and the library's spans, under the names declared in
// registry/concurrency.yaml (OpenTelemetry semantic-convention format, as read by Weaver).
//
// Metrics: collect(executor) takes a snapshot of an executor's instruments: counters (always
//   kept), gauges, and histograms of sampled latencies (kept only with WorkerConfig::
//   enable_telemetry). Exporters for a snapshot are in telemetry_export.hpp.
// Spans: the library reports an operation (a spawn, a task's run, a steal, a park, a token's
//   creation or cancellation, a nursery's spawn or wait...) to the TraceSink installed with
//   install_trace_sink(). None is installed by default; then each place that could report a span
//   costs one predictable branch on one relaxed load.
//
// Thread safety: every function may be called from any thread. A TraceSink is called on the
//   thread that did the operation (a worker, the timer thread, a user's thread), concurrently
//   from many, so it must be thread-safe and should be quick. Spans its own code causes on its
//   thread (a token it makes, a spawn it makes) are dropped; but work it hands to other threads
//   reports as usual (a task it spawns reports its run), so a sink that spawns per span feeds
//   itself. Calling install_trace_sink() from inside on_span() terminates (it would wait for
//   itself).
// Lifetime: install_trace_sink() returns only when no call into the sink it replaced is running,
//   so a sink may be destroyed once it has been replaced (ScopedTraceSink does both).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace knhk::concurrency {

class WorkStealingExecutor;

namespace telemetry {

/// An attribute's value: int, boolean, double, or a string with static storage duration (every
/// string the library reports, keys and enum values alike, is a literal of the registry).
using AttributeValue = std::variant<std::int64_t, bool, double, std::string_view>;

struct Attribute {
  std::string_view key;  // static storage: an attribute id of the registry
  AttributeValue value;

  friend bool operator==(const Attribute&, const Attribute&) = default;
};

/// One finished operation. Ids (task.id, nursery.id, cancel.token.id) are the addresses of the
/// objects they name: unique among the objects alive at the same time, reused after they die.
struct SpanRecord {
  static constexpr std::size_t kMaxAttributes = 4;

  std::string_view name;           // static storage: a span name of the registry
  std::int64_t start_unix_ns = 0;  // wall-clock time, advanced by the steady clock (never backwards)
  std::int64_t end_unix_ns = 0;
  std::array<Attribute, kMaxAttributes> attribute_storage{};
  std::size_t attribute_count = 0;

  [[nodiscard]] std::span<const Attribute> attributes() const noexcept {
    return {attribute_storage.data(), attribute_count};
  }
  /// Adds an attribute; beyond kMaxAttributes it is dropped (the library never adds that many).
  void add(std::string_view key, AttributeValue value) noexcept {
    if (attribute_count < kMaxAttributes) attribute_storage[attribute_count++] = Attribute{key, value};
  }
};

/// Receives the spans of the whole process once installed.
class TraceSink {
 public:
  TraceSink() = default;
  TraceSink(const TraceSink&) = delete;
  TraceSink& operator=(const TraceSink&) = delete;
  virtual ~TraceSink() = default;

  virtual void on_span(const SpanRecord& span) noexcept = 0;
};

/// Installs `sink` for the whole process (nullptr: none) and returns the one it replaced, after
/// every call into that one has returned.
TraceSink* install_trace_sink(TraceSink* sink) noexcept;
[[nodiscard]] TraceSink* installed_trace_sink() noexcept;

/// Installs a sink for its own lifetime, then puts back the one it replaced. Scopes must end in
/// the reverse order of their start, like any scope guard (else one would put back a sink that
/// has already gone).
class ScopedTraceSink {
 public:
  explicit ScopedTraceSink(TraceSink& sink) noexcept : previous_(install_trace_sink(&sink)) {}
  ScopedTraceSink(const ScopedTraceSink&) = delete;
  ScopedTraceSink& operator=(const ScopedTraceSink&) = delete;
  ~ScopedTraceSink() { install_trace_sink(previous_); }

 private:
  TraceSink* previous_;
};

/// A sink that keeps the spans in memory, up to `capacity`; later ones are counted as dropped.
class SpanBuffer final : public TraceSink {
 public:
  explicit SpanBuffer(std::size_t capacity = std::size_t{1} << 16) : capacity_(capacity) {}

  void on_span(const SpanRecord& span) noexcept override;
  /// Hands over the spans kept so far, oldest first, and empties the buffer.
  [[nodiscard]] std::vector<SpanRecord> take();
  [[nodiscard]] std::uint64_t dropped() const;

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::vector<SpanRecord> spans_;  // guarded by mutex_
  std::uint64_t dropped_ = 0;      // guarded by mutex_
};

enum class InstrumentKind { counter, gauge, histogram };

/// Explicit-bucket histogram: counts[i] holds the values <= bounds[i] (and above bounds[i - 1]);
/// the last count, one more than there are bounds, holds the values above every bound.
struct HistogramValue {
  std::vector<double> bounds;
  std::vector<std::uint64_t> counts;
  std::uint64_t count = 0;
  double sum = 0;
};

struct DataPoint {
  std::vector<Attribute> attributes;
  std::variant<std::int64_t, double, HistogramValue> value;
};

struct Metric {
  std::string_view name;  // static storage: a metric name of the registry
  std::string_view unit;
  std::string_view description;
  InstrumentKind kind = InstrumentKind::counter;
  std::vector<DataPoint> points;
};

/// Cumulative values since the executor started (start_unix_ns) until time_unix_ns.
struct MetricsSnapshot {
  std::int64_t start_unix_ns = 0;
  std::int64_t time_unix_ns = 0;
  std::vector<Metric> metrics;

  /// The metric of that name, else nullptr.
  [[nodiscard]] const Metric* find(std::string_view name) const noexcept;
};

/// A snapshot of `executor`'s instruments. Histograms are empty (every count zero) when the
/// executor runs with enable_telemetry = false.
[[nodiscard]] MetricsSnapshot collect(const WorkStealingExecutor& executor);

/// Adds `more` to `total`: counters and histograms add up, data point by data point (matched by
/// attributes), gauges take `more`'s value; the time span covers both. For one figure over several
/// executors (knhk-bench --telemetry).
void merge_into(MetricsSnapshot& total, const MetricsSnapshot& more);

/// The library's version (the instrumentation scope's version in exports).
[[nodiscard]] std::string_view library_version() noexcept;

}  // namespace telemetry
}  // namespace knhk::concurrency
