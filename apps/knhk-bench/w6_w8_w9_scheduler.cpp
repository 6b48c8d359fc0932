// W6 chained_spawn, W8 idle, W9 cpu_util: how the scheduler hands work on, rests, and keeps the
// cores busy, on knhk and on oneTBB in the same run.
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <knhk/concurrency.hpp>
#include <latch>
#include <string>
#include <thread>

#include "workload.hpp"

namespace knhk::bench {
namespace {

namespace kc = knhk::concurrency;

constexpr std::size_t kChain = 1000;       // W6
constexpr std::size_t kCpuTasks = 10'000;  // W9
constexpr double kCpuTaskUs = 50.0;        // W9: each task computes for about this long

// --- W6: each task spawns the next; ns per hop ---

double knhk_chain(kc::WorkStealingExecutor& ex) {
  std::latch done(1);
  std::atomic<std::size_t> hops{0};
  std::function<void(std::size_t)> hop = [&](std::size_t left) {
    hops.fetch_add(1, std::memory_order_relaxed);
    if (left == 0) {
      done.count_down();
      return;
    }
    ex.spawn([&hop, left] { hop(left - 1); });
  };
  const auto start = Clock::now();
  ex.spawn([&hop] { hop(kChain - 1); });
  done.wait();
  const auto end = Clock::now();
  check(hops.load() == kChain, "W6 knhk: the chain lost a hop");
  return nanoseconds_between(start, end) / kChain;
}

double tbb_chain(tbb::task_arena& arena) {
  std::atomic<std::size_t> hops{0};
  double ns = 0;
  arena.execute([&] {
    tbb::task_group group;
    std::function<void(std::size_t)> hop = [&](std::size_t left) {
      hops.fetch_add(1, std::memory_order_relaxed);
      if (left != 0) group.run([&hop, left] { hop(left - 1); });
    };
    const auto start = Clock::now();
    group.run([&hop] { hop(kChain - 1); });
    group.wait();
    ns = nanoseconds_between(start, Clock::now()) / kChain;
  });
  check(hops.load() == kChain, "W6 oneTBB: the chain lost a hop");
  return ns;
}

// --- W8: one tiny task, then idle; CPU seconds burned per idle second ---

// The window opens after a settling pause, so that start-up work is not counted.
constexpr std::chrono::milliseconds kSettle(200);

// On-CPU seconds of this process's threads whose name starts with `prefix`, from
// /proc/self/task/*/schedstat (nanoseconds). getrusage would also count other runtimes' threads
// in the process (oneTBB's workers spin for a while after an arena is released).
double threads_cpu_seconds(const std::string& prefix) {
  double total = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind(prefix, 0) != 0) continue;
    std::ifstream schedstat(task.path() / "schedstat");
    double on_cpu_ns = 0;
    schedstat >> on_cpu_ns;
    total += on_cpu_ns / 1e9;
  }
  return total;
}

double knhk_idle(std::chrono::milliseconds idle) {
  kc::WorkerConfig config;
  config.worker_count = 2;
  config.thread_name = "knhk-w8";
  BenchExecutor ex(config);
  ex.spawn_with_handle([] { return 1; }).get();
  std::this_thread::sleep_for(kSettle);
  const double before = threads_cpu_seconds(config.thread_name);
  std::this_thread::sleep_for(idle);
  const double burned = threads_cpu_seconds(config.thread_name) - before;
  check(ex.metrics().tasks_completed == 1, "W8 knhk: the tiny task did not run once");
  return burned / std::chrono::duration<double>(idle).count();
}

double tbb_idle(std::chrono::milliseconds idle) {
  tbb::task_arena arena(2);
  std::atomic<int> ran{0};
  arena.execute([&] {
    tbb::task_group group;
    group.run([&ran] { ran.fetch_add(1); });
    group.wait();
  });
  std::this_thread::sleep_for(kSettle);
  const double before = process_cpu_seconds();
  std::this_thread::sleep_for(idle);
  const double burned = process_cpu_seconds() - before;
  check(ran.load() == 1, "W8 oneTBB: the tiny task did not run once");
  return burned / std::chrono::duration<double>(idle).count();
}

// --- W9: 10,000 tasks of about 50 us each on 2 workers ---

// Iterations of a dependent multiply-add loop that take about kCpuTaskUs here.
std::uint64_t calibrate_spin() {
  std::uint64_t iterations = 1000;
  for (;;) {
    const auto start = Clock::now();
    volatile std::uint64_t x = 1;
    for (std::uint64_t i = 0; i < iterations; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const double us = nanoseconds_between(start, Clock::now()) / 1e3;
    if (us > 2000) return static_cast<std::uint64_t>(static_cast<double>(iterations) * kCpuTaskUs / us);
    iterations *= 2;
  }
}

std::uint64_t compute(std::uint64_t iterations) {
  std::uint64_t x = 1;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    asm volatile("" : "+r"(x));  // keep the loop
  }
  return x;
}

struct Utilisation {
  double utilisation;  // (user + sys) / (wall x threads)
  double wall_over_ideal;
};

template <class RunAll>
Utilisation measure_utilisation(std::uint64_t iterations, RunAll&& run_all) {
  const std::uint64_t expected = compute(iterations);
  std::atomic<std::size_t> correct{0};
  const double cpu_before = process_cpu_seconds();
  const auto start = Clock::now();
  run_all([&] {
    if (compute(iterations) == expected) correct.fetch_add(1, std::memory_order_relaxed);
  });
  const double wall = nanoseconds_between(start, Clock::now()) / 1e9;
  const double cpu = process_cpu_seconds() - cpu_before;
  check(correct.load() == kCpuTasks, "W9: a task computed a wrong value or did not run");
  const double ideal = static_cast<double>(kCpuTasks) * kCpuTaskUs / 1e6 / 2.0;
  return {cpu / (wall * 2.0), wall / ideal};
}

}  // namespace

std::vector<Row> run_scheduler_workloads(const Options& options) {
  Row chain{"W6", "chained_spawn_ns_per_hop", "ns", {}, Samples{}, Target::at_most_onetbb(1.0)};
  Row idle{"W8", "idle_cpu_s_per_s", "s/s", {}, Samples{}, Target::at_most(0.0005)};
  Row util{"W9", "cpu_utilization", "1", {}, Samples{}, Target::at_least(0.97)};
  Row wall{"W9", "cpu_wall_over_ideal", "1", {}, Samples{}, std::nullopt};
  const std::chrono::milliseconds idle_window(options.quick ? 250 : 1000);
  const std::uint64_t iterations = calibrate_spin();

  // W8 first, while no other knhk executor is alive in the process.
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    show_progress("W8 idle", rep, options.repetitions);
    idle.add(knhk_idle(idle_window), tbb_idle(idle_window));
  }

  BenchExecutor ex(2);
  tbb::task_arena arena(2);
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    show_progress("W6 W9 scheduler", rep, options.repetitions);
    chain.add(knhk_chain(ex), tbb_chain(arena));

    const Utilisation k = measure_utilisation(iterations, [&](auto task) {
      std::latch done(static_cast<std::ptrdiff_t>(kCpuTasks));
      for (std::size_t i = 0; i < kCpuTasks; ++i) {
        ex.spawn([&task, &done] {
          task();
          done.count_down();
        });
      }
      done.wait();
    });
    const Utilisation t = measure_utilisation(iterations, [&](auto task) {
      arena.execute([&] {
        tbb::task_group group;
        for (std::size_t i = 0; i < kCpuTasks; ++i) group.run([&task] { task(); });
        group.wait();
      });
    });
    util.add(k.utilisation, t.utilisation);
    wall.add(k.wall_over_ideal, t.wall_over_ideal);
  }
  return {chain, idle, util, wall};
}

}  // namespace knhk::bench
