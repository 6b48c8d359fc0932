// What every knhk-bench workload shares: options, self-checks, timing, progress.
#pragma once

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <knhk/concurrency.hpp>

#include "report.hpp"

namespace knhk::bench {

struct Options {
  bool quick = false;
  int repetitions = 7;  // BENCHMARKS.md asks for at least 5
};

/// A workload's own result check failed: a fast wrong answer is a failure.
class WorkloadFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline void check(bool ok, const std::string& what) {
  if (!ok) throw WorkloadFailure(what);
}

using Clock = std::chrono::steady_clock;

inline double nanoseconds_between(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::nano>(end - start).count();
}

/// The executor every knhk workload runs on: a WorkStealingExecutor that, when the run records
/// telemetry (--telemetry), adds its final metrics to the run's total as it is destroyed.
class BenchExecutor : public knhk::concurrency::WorkStealingExecutor {
 public:
  using WorkStealingExecutor::WorkStealingExecutor;
  BenchExecutor(const BenchExecutor&) = delete;
  BenchExecutor& operator=(const BenchExecutor&) = delete;
  ~BenchExecutor();
};

/// Makes every BenchExecutor record its metrics into the run's total (--telemetry).
void record_run_telemetry();
/// The run's total: every BenchExecutor's metrics, merged (telemetry::merge_into).
knhk::concurrency::telemetry::MetricsSnapshot run_telemetry();

/// Resident set size of this process, in KiB (from /proc/self/statm).
std::size_t resident_kib();

/// User plus system CPU time of this whole process so far, in seconds (getrusage).
double process_cpu_seconds();

/// Rewrites the progress line on stderr: which workload runs, which repetition.
void show_progress(const std::string& workload, int repetition, int repetitions);

struct Workload {
  const char* id;
  const char* description;
  std::vector<Row> (*run)(const Options&);
};

std::vector<Row> run_spawn_workloads(const Options& options);      // W1, W2, W3
std::vector<Row> run_forkjoin_workloads(const Options& options);   // W4, W5
std::vector<Row> run_scheduler_workloads(const Options& options);  // W6, W8, W9
std::vector<Row> run_nursery_workload(const Options& options);     // W7
std::vector<Row> run_cancel_workload(const Options& options);      // W10
std::vector<Row> run_timer_workload(const Options& options);       // W11
std::vector<Row> run_telemetry_overhead(const Options& options);   // TEL: W1 with telemetry on vs off

}  // namespace knhk::bench
