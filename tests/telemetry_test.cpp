// Telemetry on real executors: exact counters, sampled histograms (and none when telemetry is
// off), trace sinks that can be swapped and removed safely while spans are being reported,
// merging of snapshots, and the periodic file exporter.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <latch>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "knhk/concurrency.hpp"
#include "log2_histogram.hpp"

namespace kc = knhk::concurrency;
namespace kt = knhk::concurrency::telemetry;
using namespace std::chrono_literals;

namespace {

std::int64_t int_sum(const kt::Metric& metric) {
  std::int64_t total = 0;
  for (const kt::DataPoint& p : metric.points) total += std::get<std::int64_t>(p.value);
  return total;
}

std::uint64_t histogram_count(const kt::Metric& metric) {
  std::uint64_t total = 0;
  for (const kt::DataPoint& p : metric.points) total += std::get<kt::HistogramValue>(p.value).count;
  return total;
}

const kt::Metric& metric(const kt::MetricsSnapshot& s, const char* suffix) {
  const kt::Metric* m = s.find(std::string("knhk.concurrency.executor.") + suffix);
  if (m == nullptr) throw std::runtime_error(std::string("no metric ") + suffix);
  return *m;
}

// Spawns `n` empty tasks from a task on a worker and waits until all have ended. The task itself
// is spawned from a new thread, whose spawn sampling starts afresh: the test thread's countdown
// would carry over from test to test and add a sample now and then.
void spawn_from_worker(kc::WorkStealingExecutor& ex, int n) {
  std::latch done(n);
  std::thread([&] {
    ex.spawn_with_handle([&] {
        for (int i = 0; i < n; ++i) ex.spawn([&done] { done.count_down(); });
      }).get();
  }).join();
  done.wait();
}

// Counts the spans it receives; optionally slow, to widen races with install/uninstall.
class CountingSink final : public kt::TraceSink {
 public:
  void on_span(const kt::SpanRecord&) noexcept override { count.fetch_add(1, std::memory_order_relaxed); }
  std::atomic<std::uint64_t> count{0};
};

TEST(Telemetry, CountersAreExactAfterAMillionTasks) {
  kc::WorkStealingExecutor ex(2);
  constexpr int kTasks = 1'000'000;

  spawn_from_worker(ex, kTasks);
  ex.shutdown();
  const kt::MetricsSnapshot s = kt::collect(ex);

  EXPECT_EQ(int_sum(metric(s, "tasks.spawned")), kTasks + 1);
  EXPECT_EQ(int_sum(metric(s, "tasks.completed")), kTasks + 1);
  EXPECT_EQ(metric(s, "tasks.completed").points.size(), 2U);  // one per worker
  EXPECT_EQ(int_sum(metric(s, "tasks.failed")), 0);
  EXPECT_LE(s.start_unix_ns, s.time_unix_ns);
}

TEST(Telemetry, SpawnLatencyIsSampledOneSpawnIn128) {
  kc::WorkStealingExecutor ex(1);

  spawn_from_worker(ex, 128 * 100);
  const kt::MetricsSnapshot s = kt::collect(ex);

  // All 12,800 spawns ran on the one worker; its countdown samples every 128th.
  EXPECT_EQ(histogram_count(metric(s, "spawn.latency")), 100U);
  const auto& local = std::get<kt::HistogramValue>(metric(s, "queue.depth").points.at(0).value);
  EXPECT_EQ(local.count, 100U);
}

TEST(Telemetry, DisabledTelemetryKeepsCountersButNoHistogramsOrExecutorSpans) {
  kc::WorkerConfig config;
  config.worker_count = 2;
  config.enable_telemetry = false;
  CountingSink sink;
  std::uint64_t spans = 0;
  kt::MetricsSnapshot s;
  {
    const kt::ScopedTraceSink installed(sink);
    kc::WorkStealingExecutor ex(config);
    spawn_from_worker(ex, 10'000);
    ex.shutdown();
    s = kt::collect(ex);
    spans = sink.count.load();
  }

  EXPECT_EQ(int_sum(metric(s, "tasks.spawned")), 10'001);
  for (const char* h : {"spawn.latency", "steal.latency", "steal.attempts", "queue.depth"}) {
    EXPECT_EQ(histogram_count(metric(s, h)), 0U) << h;
  }
  // Only the tokens the executor itself made report spans; no spawn, run, park or shutdown.
  EXPECT_LT(spans, 100U);
}

TEST(Telemetry, EveryTaskReportsASpawnAndAnExecuteSpanWhileASinkIsInstalled) {
  kt::SpanBuffer buffer;
  std::vector<kt::SpanRecord> spans;
  {
    const kt::ScopedTraceSink installed(buffer);
    kc::WorkStealingExecutor ex(2);
    spawn_from_worker(ex, 500);
    ex.shutdown();
  }
  spans = buffer.take();

  int spawn_spans = 0;
  int execute_spans = 0;
  for (const kt::SpanRecord& s : spans) {
    EXPECT_LE(s.start_unix_ns, s.end_unix_ns);
    if (s.name == "knhk.concurrency.executor.task.spawn") ++spawn_spans;
    if (s.name == "knhk.concurrency.executor.task.execute") ++execute_spans;
  }
  EXPECT_EQ(spawn_spans, 501);
  EXPECT_EQ(execute_spans, 501);
}

TEST(Telemetry, NoSpanReachesASinkOnceItIsUninstalled) {
  kc::WorkStealingExecutor ex(2);
  std::atomic<bool> stop{false};
  auto reporter = ex.spawn_with_handle([&] {
    while (!stop.load()) {
      const kc::CancelToken token;  // reports a span whenever a sink is installed
      token.cancel();
    }
  });

  for (int round = 0; round < 200; ++round) {
    CountingSink sink;
    kt::install_trace_sink(&sink);
    std::this_thread::sleep_for(50us);
    kt::install_trace_sink(nullptr);
    const std::uint64_t after_uninstall = sink.count.load();
    std::this_thread::sleep_for(50us);
    ASSERT_EQ(sink.count.load(), after_uninstall) << "a span reached a sink after install_trace_sink returned";
  }  // and each sink is destroyed while the reporter keeps going: TSan/ASan see any late call
  stop.store(true);
  reporter.get();
}

TEST(Telemetry, InstallReturnsThePreviousSinkAndScopedSinksNest) {
  CountingSink outer;
  CountingSink inner;
  {
    const kt::ScopedTraceSink a(outer);
    EXPECT_EQ(kt::installed_trace_sink(), &outer);
    {
      const kt::ScopedTraceSink b(inner);
      EXPECT_EQ(kt::installed_trace_sink(), &inner);
      const kc::CancelToken token;
    }
    EXPECT_EQ(kt::installed_trace_sink(), &outer);
  }
  EXPECT_EQ(kt::installed_trace_sink(), nullptr);
  EXPECT_EQ(inner.count.load(), 1U);
  EXPECT_EQ(outer.count.load(), 0U);
}

// A sink whose own code makes and cancels tokens, which report spans of their own on its thread.
class BusySink final : public kt::TraceSink {
 public:
  void on_span(const kt::SpanRecord&) noexcept override {
    calls.fetch_add(1);
    const kc::CancelToken token;
    token.child_token().cancel();
  }
  std::atomic<std::uint64_t> calls{0};
};

TEST(Telemetry, SpansCausedByTheSinkItselfAreDroppedInsteadOfRecursing) {
  BusySink sink;
  {
    const kt::ScopedTraceSink installed(sink);
    const kc::CancelToken token;
  }
  // The token's creation reached the sink; the three spans the sink's own code caused did not
  // (passed on, each would have caused three more, without end).
  EXPECT_EQ(sink.calls.load(), 1U);
}

TEST(Telemetry, SpanBufferCountsWhatItCannotKeep) {
  kt::SpanBuffer buffer(3);
  {
    const kt::ScopedTraceSink installed(buffer);
    for (int i = 0; i < 5; ++i) const kc::CancelToken token;
  }
  EXPECT_EQ(buffer.take().size(), 3U);
  EXPECT_EQ(buffer.dropped(), 2U);
  EXPECT_TRUE(buffer.take().empty());
}

TEST(Telemetry, CancelAndScopeSpansCarryTheirTokensAndStates) {
  kt::SpanBuffer buffer;
  {
    const kt::ScopedTraceSink installed(buffer);
    const kc::CancelToken root;
    const kc::CancelToken child = root.child_token();
    child.cancel();
    child.cancel();
    const kc::CancelScope scope(root);
  }
  const std::vector<kt::SpanRecord> spans = buffer.take();

  std::vector<std::string> names;
  for (const auto& s : spans) names.emplace_back(s.name);
  const std::vector<std::string> expected = {
      "knhk.concurrency.cancel.token.create", "knhk.concurrency.cancel.token.create",
      "knhk.concurrency.cancel.token.cancel", "knhk.concurrency.cancel.token.cancel",
      "knhk.concurrency.cancel.token.create", "knhk.concurrency.cancel.scope.create",
      "knhk.concurrency.cancel.token.cancel", "knhk.concurrency.cancel.scope.drop"};
  ASSERT_EQ(names, expected);
  EXPECT_EQ(spans[1].attributes()[1].key, "cancel.token.parent_id");
  EXPECT_EQ(spans[1].attributes()[1].value, spans[0].attributes()[0].value);  // the child's parent is the root
  EXPECT_EQ(spans[2].attributes()[1], (kt::Attribute{"cancel.token.is_cancelled", false}));
  EXPECT_EQ(spans[3].attributes()[1], (kt::Attribute{"cancel.token.is_cancelled", true}));  // a no-op cancel
  EXPECT_EQ(spans[7].attributes()[2], (kt::Attribute{"cancel.token.is_cancelled", true}));
}

TEST(Telemetry, MergeAddsCountersAndHistogramsAcrossExecutors) {
  kt::MetricsSnapshot total;
  for (int i = 0; i < 2; ++i) {
    kc::WorkStealingExecutor ex(1);
    spawn_from_worker(ex, 128 * 10);
    ex.shutdown();
    kt::merge_into(total, kt::collect(ex));
  }
  EXPECT_EQ(int_sum(metric(total, "tasks.spawned")), 2 * (128 * 10 + 1));
  EXPECT_EQ(histogram_count(metric(total, "spawn.latency")), 20U);
  EXPECT_EQ(metric(total, "tasks.completed").points.size(), 1U);  // worker 0 of both: one point
}

TEST(Telemetry, Log2HistogramBucketsAreUpperInclusivePowersOfTwo) {
  using H = kc::detail::Log2Histogram;
  EXPECT_EQ(H::bucket_of(0), 0U);
  EXPECT_EQ(H::bucket_of(1), 0U);
  EXPECT_EQ(H::bucket_of(2), 1U);
  EXPECT_EQ(H::bucket_of(3), 2U);
  EXPECT_EQ(H::bucket_of(4), 2U);
  EXPECT_EQ(H::bucket_of(5), 3U);
  EXPECT_EQ(H::bucket_of(std::uint64_t{1} << 24), 24U);
  EXPECT_EQ(H::bucket_of((std::uint64_t{1} << 24) + 1), H::kBounds);  // +Inf
  EXPECT_EQ(H::bucket_of(~std::uint64_t{0}), H::kBounds);
  EXPECT_EQ(H::bounds().back(), static_cast<double>(std::uint64_t{1} << 24));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Telemetry, PeriodicExporterWritesSnapshotsAndAFinalOne) {
  const std::string path = ::testing::TempDir() + "knhk_periodic_export.prom";
  std::remove(path.c_str());
  kc::WorkStealingExecutor ex(2);
  std::uint64_t writes = 0;
  {
    kt::PeriodicExporter exporter(ex, path, 5ms, kt::ExportFormat::prometheus);
    spawn_from_worker(ex, 1000);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (exporter.writes() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_GE(exporter.writes(), 2U);
    writes = exporter.writes();
    EXPECT_EQ(exporter.failures(), 0U);
  }
  const std::string text = read_file(path);
  EXPECT_NE(text.find("knhk_concurrency_executor_tasks_spawned_total 1001\n"), std::string::npos) << text;
  EXPECT_GT(writes, 0U);
}

TEST(Telemetry, PeriodicExporterCountsFailedWritesInsteadOfThrowing) {
  kc::WorkStealingExecutor ex(1);
  kt::PeriodicExporter* exporter = nullptr;
  {
    kt::PeriodicExporter e(ex, "/nonexistent-dir/knhk.json", 1ms);
    exporter = &e;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (exporter->failures() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    EXPECT_GE(exporter->failures(), 1U);
    EXPECT_EQ(exporter->writes(), 0U);
  }
  EXPECT_THROW(kt::PeriodicExporter(ex, "x", 0ms), std::invalid_argument);
}

}  // namespace
