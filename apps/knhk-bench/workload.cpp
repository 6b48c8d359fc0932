#include "workload.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>

namespace knhk::bench {

namespace {
std::mutex g_telemetry_mutex;
bool g_record_telemetry = false;                            // guarded by g_telemetry_mutex
knhk::concurrency::telemetry::MetricsSnapshot g_telemetry;  // guarded by g_telemetry_mutex
}  // namespace

BenchExecutor::~BenchExecutor() {
  const std::lock_guard lock(g_telemetry_mutex);
  if (!g_record_telemetry) return;
  shutdown();  // every task counted before the snapshot
  knhk::concurrency::telemetry::merge_into(g_telemetry, knhk::concurrency::telemetry::collect(*this));
}

void record_run_telemetry() {
  const std::lock_guard lock(g_telemetry_mutex);
  g_record_telemetry = true;
}

knhk::concurrency::telemetry::MetricsSnapshot run_telemetry() {
  const std::lock_guard lock(g_telemetry_mutex);
  return g_telemetry;
}

std::size_t resident_kib() {
  std::ifstream statm("/proc/self/statm");
  std::size_t total_pages = 0;
  std::size_t resident_pages = 0;
  statm >> total_pages >> resident_pages;
  const long page_size = ::sysconf(_SC_PAGESIZE);
  return resident_pages * static_cast<std::size_t>(page_size) / 1024;
}

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

void show_progress(const std::string& workload, int repetition, int repetitions) {
  std::fprintf(stderr, "\r  running %-24s repetition %d/%d   ", workload.c_str(), repetition, repetitions);
  std::fflush(stderr);
}

}  // namespace knhk::bench
