// Telemetry: the trace-sink hook, the span buffer, and metrics snapshots of an executor.
//
// Sink protocol (two-epoch reader counts, after RCU): a reporter reads the epoch, counts itself
// in that epoch's slot, and re-reads the epoch; if it changed, it backs out and tries again. Then
// it loads the sink and calls it, and leaves its slot. install_trace_sink() swaps the sink,
// advances the epoch, and waits until the old epoch's slot is empty. All seq_cst: a reporter that
// counted itself before the epoch advanced is waited for; one that saw the new epoch loads the
// sink after the swap (the swap precedes the epoch store), so it cannot call the old sink. The
// waiter waits only for reporters that entered before it, so a steady stream of new ones cannot
// starve it.
#include "knhk/concurrency/telemetry.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "executor_telemetry.hpp"
#include "knhk/concurrency/detail/trace.hpp"
#include "knhk/concurrency/executor.hpp"
#include "log2_histogram.hpp"
#include "telemetry_names.hpp"

#ifndef KNHK_VERSION_STRING
#error "the build defines KNHK_VERSION_STRING (src/CMakeLists.txt)"
#endif

namespace knhk::concurrency::detail {

std::atomic<telemetry::TraceSink*> g_trace_sink{nullptr};

namespace {
std::atomic<std::uint64_t> g_epoch{0};
std::atomic<std::uint64_t> g_reporters[2]{};
std::mutex g_install_mutex;             // one install at a time
thread_local bool tls_in_sink = false;  // this thread is inside TraceSink::on_span

// Span times: wall-clock time of one moment, advanced by the steady clock, so that a step of the
// wall clock (NTP) never makes a span end before it began.
struct SpanClock {
  std::chrono::steady_clock::time_point steady_anchor = std::chrono::steady_clock::now();
  std::int64_t unix_anchor_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
};
}  // namespace

std::int64_t trace_clock_now() noexcept {
  static const SpanClock clock;
  return clock.unix_anchor_ns +
         std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - clock.steady_anchor)
             .count();
}

void emit_span(const telemetry::SpanRecord& span) noexcept {
  // A span reported by the sink itself (it made a token, spawned a task) is dropped: passing it
  // on would recurse without end.
  if (tls_in_sink) return;
  std::uint64_t epoch = 0;
  for (;;) {
    epoch = g_epoch.load();
    g_reporters[epoch & 1].fetch_add(1);
    if (g_epoch.load() == epoch) break;
    g_reporters[epoch & 1].fetch_sub(1);
  }
  if (telemetry::TraceSink* sink = g_trace_sink.load()) {
    tls_in_sink = true;
    sink->on_span(span);
    tls_in_sink = false;
  }
  g_reporters[epoch & 1].fetch_sub(1);
}

struct TelemetryAccess {
  static const ExecutorState* state(const WorkStealingExecutor& ex) noexcept { return ex.state_.get(); }
};

}  // namespace knhk::concurrency::detail

namespace knhk::concurrency::telemetry {

namespace names = detail::names;

TraceSink* install_trace_sink(TraceSink* sink) noexcept {
  if (detail::tls_in_sink) {
    // It would wait for its own call into the old sink to return: a certain deadlock.
    std::fputs("knhk: install_trace_sink() called from inside TraceSink::on_span()\n", stderr);
    std::terminate();
  }
  const std::lock_guard lock(detail::g_install_mutex);
  TraceSink* const previous = detail::g_trace_sink.exchange(sink);
  const std::uint64_t old_epoch = detail::g_epoch.fetch_add(1);
  while (detail::g_reporters[old_epoch & 1].load() != 0) std::this_thread::yield();
  return previous;
}

TraceSink* installed_trace_sink() noexcept { return detail::g_trace_sink.load(); }

void SpanBuffer::on_span(const SpanRecord& span) noexcept {
  const std::lock_guard lock(mutex_);
  if (spans_.size() >= capacity_) {
    ++dropped_;
    return;
  }
  try {
    spans_.push_back(span);
  } catch (...) {
    ++dropped_;  // out of memory: the span is lost, and counted
  }
}

std::vector<SpanRecord> SpanBuffer::take() {
  const std::lock_guard lock(mutex_);
  return std::exchange(spans_, {});
}

std::uint64_t SpanBuffer::dropped() const {
  const std::lock_guard lock(mutex_);
  return dropped_;
}

const Metric* MetricsSnapshot::find(std::string_view name) const noexcept {
  const auto it = std::find_if(metrics.begin(), metrics.end(), [&](const Metric& m) { return m.name == name; });
  return it != metrics.end() ? &*it : nullptr;
}

std::string_view library_version() noexcept { return KNHK_VERSION_STRING; }

namespace {

DataPoint int_point(std::uint64_t value, std::vector<Attribute> attributes = {}) {
  return DataPoint{std::move(attributes), static_cast<std::int64_t>(value)};
}

DataPoint histogram_point(const detail::HistogramCounts& raw, std::vector<Attribute> attributes = {}) {
  HistogramValue h;
  h.bounds = detail::Log2Histogram::bounds();
  h.counts = raw.counts;
  h.counts.resize(detail::Log2Histogram::kBuckets, 0);
  for (const std::uint64_t c : h.counts) h.count += c;
  h.sum = static_cast<double>(raw.sum);
  return DataPoint{std::move(attributes), std::move(h)};
}

Attribute worker_id(std::size_t index) { return {names::kWorkerId, static_cast<std::int64_t>(index)}; }

}  // namespace

MetricsSnapshot collect(const WorkStealingExecutor& executor) {
  detail::ExecutorTelemetryData raw;
  detail::read_telemetry(detail::TelemetryAccess::state(executor), raw);

  MetricsSnapshot s;
  s.start_unix_ns = raw.start_unix_ns;
  s.time_unix_ns = detail::trace_clock_now();
  auto add = [&](std::string_view name, std::string_view unit, std::string_view description,
                 InstrumentKind kind) -> Metric& {
    return s.metrics.emplace_back(Metric{name, unit, description, kind, {}});
  };

  add(names::kTasksSpawned, "{task}", "Tasks spawned on the executor.", InstrumentKind::counter)
      .points.push_back(int_point(raw.tasks_spawned));

  Metric& completed = add(names::kTasksCompleted, "{task}", "Tasks that ended, by the worker that ended them.",
                          InstrumentKind::counter);
  for (std::size_t i = 0; i < raw.completed_per_worker.size(); ++i) {
    completed.points.push_back(int_point(raw.completed_per_worker[i], {worker_id(i)}));
  }
  // Coroutine tasks whose last step ran on another thread (a timer's, a canceller's): no worker.
  if (raw.completed_elsewhere != 0) completed.points.push_back(int_point(raw.completed_elsewhere));

  add(names::kTasksFailed, "{task}", "Fire-and-forget tasks and nursery children that failed.", InstrumentKind::counter)
      .points.push_back(int_point(raw.tasks_failed));

  Metric& stolen = add(names::kTasksStolen, "{task}", "Tasks a worker took from another worker's local queue.",
                       InstrumentKind::counter);
  for (std::size_t i = 0; i < raw.stolen_per_worker.size(); ++i) {
    stolen.points.push_back(int_point(raw.stolen_per_worker[i], {worker_id(i)}));
  }

  add(names::kWorkersIdle, "{worker}", "Workers parked right now.", InstrumentKind::gauge)
      .points.push_back(int_point(raw.workers_idle));

  Metric& depth =
      add(names::kQueueDepth, "{task}", "Depth of a queue, sampled at spawns and steals.", InstrumentKind::histogram);
  depth.points.push_back(histogram_point(raw.depth_local, {{names::kQueueType, names::kQueueLocal}}));
  depth.points.push_back(histogram_point(raw.depth_global, {{names::kQueueType, names::kQueueGlobal}}));
  depth.points.push_back(histogram_point(raw.depth_stolen, {{names::kQueueType, names::kQueueStolen}}));

  add(names::kSpawnLatency, "ns", "Duration of a spawn call, sampled.", InstrumentKind::histogram)
      .points.push_back(histogram_point(raw.spawn_latency_ns));
  add(names::kStealLatency, "ns", "Duration of a search that stole, sampled.", InstrumentKind::histogram)
      .points.push_back(histogram_point(raw.steal_latency_ns));
  add(names::kStealAttemptsMetric, "{attempt}", "Victims tried by a search that stole.", InstrumentKind::histogram)
      .points.push_back(histogram_point(raw.steal_attempts));

  add(names::kCpuUtilization, "1", "Busy time of the workers over their wall time.", InstrumentKind::gauge)
      .points.push_back(DataPoint{{}, raw.cpu_utilization});
  return s;
}

namespace {

void add_point(DataPoint& into, const DataPoint& more) {
  if (auto* h = std::get_if<HistogramValue>(&into.value)) {
    const auto& m = std::get<HistogramValue>(more.value);
    if (h->bounds != m.bounds || h->counts.size() != m.counts.size()) {
      throw std::invalid_argument("knhk: merge_into: histograms with different bounds");
    }
    for (std::size_t i = 0; i < h->counts.size(); ++i) h->counts[i] += m.counts[i];
    h->count += m.count;
    h->sum += m.sum;
  } else if (auto* i = std::get_if<std::int64_t>(&into.value)) {
    *i += std::get<std::int64_t>(more.value);
  } else {
    std::get<double>(into.value) += std::get<double>(more.value);
  }
}

}  // namespace

void merge_into(MetricsSnapshot& total, const MetricsSnapshot& more) {
  if (total.metrics.empty()) {
    total = more;
    return;
  }
  total.start_unix_ns = std::min(total.start_unix_ns, more.start_unix_ns);
  total.time_unix_ns = std::max(total.time_unix_ns, more.time_unix_ns);
  for (const Metric& m : more.metrics) {
    auto it =
        std::find_if(total.metrics.begin(), total.metrics.end(), [&](const Metric& t) { return t.name == m.name; });
    if (it == total.metrics.end()) {
      total.metrics.push_back(m);
      continue;
    }
    if (it->kind != m.kind) throw std::invalid_argument("knhk: merge_into: one name, two instruments");
    for (const DataPoint& point : m.points) {
      auto same = std::find_if(it->points.begin(), it->points.end(),
                               [&](const DataPoint& p) { return p.attributes == point.attributes; });
      if (same == it->points.end()) {
        it->points.push_back(point);
      } else if (m.kind == InstrumentKind::gauge) {
        same->value = point.value;
      } else {
        add_point(*same, point);
      }
    }
  }
}

}  // namespace knhk::concurrency::telemetry
