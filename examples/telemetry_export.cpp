// Telemetry end to end: a nursery workload runs under a span buffer; then the executor's metrics
// are printed as Prometheus text and the spans as OTLP/JSON (docs/TELEMETRY.md).
#include <cstdio>
#include <knhk/concurrency.hpp>

namespace kc = knhk::concurrency;
namespace kt = knhk::concurrency::telemetry;

int main() {
  kt::SpanBuffer spans;
  kc::WorkStealingExecutor ex(2);
  {
    const kt::ScopedTraceSink tracing(spans);
    ex.block_on([&ex]() -> kc::Task<void> {
      kc::Nursery nursery(ex);
      for (int i = 0; i < 3; ++i) nursery.spawn([] {});
      co_await nursery.wait_all();
    }());
  }
  const kt::MetricsSnapshot snapshot = kt::collect(ex);
  std::fputs(kt::to_prometheus(snapshot).c_str(), stdout);
  const std::string trace = kt::to_otlp_json(spans.take(), "telemetry-example");
  std::printf("%s\n", trace.c_str());
  // The nursery's three children and the block_on task: the counters are exact.
  const kt::Metric* spawned = snapshot.find("knhk.concurrency.executor.tasks.spawned");
  return spawned != nullptr && std::get<std::int64_t>(spawned->points.at(0).value) == 4 ? 0 : 1;
}
