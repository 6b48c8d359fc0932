// knhk-bench: the project's main program. Runs the workloads of BENCHMARKS.md on knhk and, where
// there is a counterpart, on oneTBB in the same process, then prints one table with targets and
// verdicts (and writes it as JSON with --json). Exits 1 if a workload's own result check failed,
// 2 on a bad command line; a missed target is reported, not an error.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "report.hpp"
#include "workload.hpp"

namespace {

using knhk::bench::Workload;

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> all = {
      {"W1", "spawn_local, spawn_remote (W2), spawn_latency (W3): 1,000,000 and 200,000 spawns",
       &knhk::bench::run_spawn_workloads},
      {"W4", "fib(30) with a joinable child per call, T = 1 and 2; skynet (W5): 1,111,111 tasks",
       &knhk::bench::run_forkjoin_workloads},
      {"W6", "chained_spawn, idle (W8), cpu_util (W9): a chain of 1,000; 1 s idle; 10,000 x 50 us",
       &knhk::bench::run_scheduler_workloads},
      {"W7", "nursery: 100 children spawned, then wait_all; repeated", &knhk::bench::run_nursery_workload},
      {"W10", "cancel: 100,000 children with callbacks; churn of 1,000,000", &knhk::bench::run_cancel_workload},
      {"W11", "timers: 100,000 tasks sleeping 200 ms at once; sleep accuracy; 100,000 cancelled sleeps",
       &knhk::bench::run_timer_workload},
      {"TEL", "telemetry overhead: W1 spawn_local at T = 2 with enable_telemetry on vs off",
       &knhk::bench::run_telemetry_overhead},
  };
  return all;
}

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: knhk-bench [--quick] [--json FILE] [--telemetry FILE] [--only ID[,ID...]] [--repetitions N]\n"
               "                  [--help]\n"
               "\n"
               "Runs the knhk concurrency workloads of BENCHMARKS.md, side by side with oneTBB\n"
               "where it has a counterpart, and prints figures with targets and verdicts.\n"
               "\n"
               "  --quick           fewer repetitions (5), for a run of about 20 s on 2 cores\n"
               "  --json FILE       also write the table as JSON (schema of BENCHMARKS.md; the W rows)\n"
               "  --telemetry FILE  also write the run's metrics as OTLP/JSON: every knhk executor's\n"
               "                    counters and histograms, summed (docs/TELEMETRY.md)\n"
               "  --only IDS        run only these workloads, e.g. --only W10\n"
               "  --repetitions N   repetitions per figure (at least 5; default 7)\n"
               "  --help            this text\n"
               "\nWorkloads:\n");
  for (const Workload& w : workloads()) std::fprintf(out, "  %-4s %s\n", w.id, w.description);
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "knhk-bench: %s\n\n", message.c_str());
  print_usage(stderr);
  std::exit(2);
}

bool selected(const std::string& only, std::string_view id) {
  if (only.empty()) return true;
  std::string_view rest = only;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    if (rest.substr(0, comma) == id) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  knhk::bench::Options options;
  std::string json_path;
  std::string telemetry_path;
  std::string only;
  bool repetitions_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      return 0;
    } else if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--json") {
      json_path = value();
    } else if (arg == "--telemetry") {
      telemetry_path = value();
    } else if (arg == "--only") {
      only = value();
    } else if (arg == "--repetitions") {
      const std::string text = value();
      char* end = nullptr;
      const long n = std::strtol(text.c_str(), &end, 10);
      if (end == text.c_str() || *end != '\0' || n < 5 || n > 1000) usage_error("--repetitions takes 5..1000");
      options.repetitions = static_cast<int>(n);
      repetitions_given = true;
    } else {
      usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (options.quick && !repetitions_given) options.repetitions = 5;
  if (std::none_of(workloads().begin(), workloads().end(), [&](const Workload& w) { return selected(only, w.id); })) {
    usage_error("--only names no known workload: " + only);
  }

  if (!telemetry_path.empty()) knhk::bench::record_run_telemetry();
  std::vector<knhk::bench::Row> rows;
  std::vector<std::string> failures;
  for (const Workload& w : workloads()) {
    if (!selected(only, w.id)) continue;
    try {
      auto produced = w.run(options);
      rows.insert(rows.end(), produced.begin(), produced.end());
    } catch (const knhk::bench::WorkloadFailure& failure) {
      failures.push_back(failure.what());
    } catch (const std::exception& error) {
      failures.push_back(std::string(w.id) + ": " + error.what());
    }
  }
  std::fprintf(stderr, "\r%-70s\r", "");

  const knhk::bench::MachineInfo machine = knhk::bench::describe_machine();
  std::vector<std::string> notes;
  if (selected(only, "W1")) {
    notes.emplace_back(
        "W3: each spawn is timed with the TSC (lfence; rdtsc; lfence), calibrated against steady_clock, "
        "timer overhead subtracted; on this VM the TSC advances in steps of about 10 ns, so W3 "
        "percentiles are quantised to about 10 ns.");
    notes.emplace_back(
        "oneTBB: tbb::task_group in a tbb::task_arena of the same width; spawns from outside use "
        "task_arena::enqueue.");
  }
  knhk::bench::print_table(machine, rows, notes);
  if (!json_path.empty()) {
    try {
      // BENCHMARKS.md's schema lists exactly the W figures; TEL stays in the printed table.
      std::vector<knhk::bench::Row> benchmark_rows;
      std::copy_if(rows.begin(), rows.end(), std::back_inserter(benchmark_rows),
                   [](const knhk::bench::Row& row) { return row.workload.front() == 'W'; });
      knhk::bench::write_json(json_path, machine, options.quick, benchmark_rows);
      std::printf("wrote %s\n", json_path.c_str());
    } catch (const std::exception& error) {
      std::fprintf(stderr, "knhk-bench: %s\n", error.what());
      return 1;
    }
  }
  if (!telemetry_path.empty()) {
    try {
      namespace telemetry = knhk::concurrency::telemetry;
      telemetry::write_file_atomically(telemetry_path,
                                       telemetry::to_otlp_json(knhk::bench::run_telemetry(), "knhk-bench") + '\n');
      std::printf("wrote %s\n", telemetry_path.c_str());
    } catch (const std::exception& error) {
      std::fprintf(stderr, "knhk-bench: %s\n", error.what());
      return 1;
    }
  }
  for (const std::string& failure : failures) std::fprintf(stderr, "RESULT CHECK FAILED: %s\n", failure.c_str());
  return failures.empty() ? 0 : 1;
}
