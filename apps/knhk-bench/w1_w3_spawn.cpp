// W1 spawn_local, W2 spawn_remote, W3 spawn_latency: the cost of handing work to the runtime,
// on knhk's WorkStealingExecutor and on oneTBB (tbb::task_group in a tbb::task_arena of the same
// width; arena.enqueue for spawns from outside, its fire-and-forget counterpart), in one run.
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <algorithm>
#include <cstdint>
#include <knhk/concurrency.hpp>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "workload.hpp"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace knhk::bench {
namespace {

namespace kc = knhk::concurrency;

// W1, W2: 1,000,000 spawns (BENCHMARKS.md); W3: 200,000 samples. --quick takes a quarter of each
// (run_spawn_workloads sets them before anything runs).
std::size_t g_spawn_count = 1'000'000;
std::size_t g_latency_samples = 200'000;

struct Throughput {
  double ns_per_call;
  double tasks_per_s;
};

double seconds_between(Clock::time_point a, Clock::time_point b) { return nanoseconds_between(a, b) / 1e9; }

// The latch opens when the last task counts down, inside its body, a moment before its worker
// records the task as completed; how long that moment lasts is up to the scheduler of the machine
// (a preempted worker may hold it for a whole time slice, or many beside a CPU-bound process).
// So the count is waited for by time, not by a number of polls: it must reach `expected` within
// a deadline far beyond any preemption, and must never pass it.
bool eventually_equal(const knhk::concurrency::WorkStealingExecutor& ex, std::uint64_t expected) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(30);
  for (std::uint64_t polls = 0;; ++polls) {
    const std::uint64_t now = ex.metrics().tasks_completed;
    if (now == expected) return true;
    if (now > expected || Clock::now() > deadline) return false;
    if (polls < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
}

// --- W1: a task on a worker spawns N tasks that each count down a latch ---

// The executors live across repetitions, as oneTBB's worker threads do (its arenas share one
// thread pool): both runtimes are measured warm.
std::uint64_t completed(const kc::WorkStealingExecutor& ex) { return ex.metrics().tasks_completed; }

Throughput knhk_spawn_local(kc::WorkStealingExecutor& ex) {
  std::latch done(static_cast<std::ptrdiff_t>(g_spawn_count));
  Clock::time_point start;
  Clock::time_point spawned;
  const std::uint64_t before = completed(ex);
  auto parent = ex.spawn_with_handle([&] {
    start = Clock::now();
    for (std::size_t i = 0; i < g_spawn_count; ++i) ex.spawn([&done] { done.count_down(); });
    spawned = Clock::now();
  });
  parent.get();
  done.wait();
  const Clock::time_point end = Clock::now();
  check(eventually_equal(ex, before + g_spawn_count + 1), "W1 knhk: task count mismatch");
  return {nanoseconds_between(start, spawned) / static_cast<double>(g_spawn_count),
          static_cast<double>(g_spawn_count) / seconds_between(start, end)};
}

Throughput tbb_spawn_local(std::size_t threads) {
  std::latch done(static_cast<std::ptrdiff_t>(g_spawn_count));
  Clock::time_point start;
  Clock::time_point spawned;
  tbb::task_arena arena(static_cast<int>(threads));
  arena.execute([&] {
    tbb::task_group group;
    group.run([&] {
      start = Clock::now();
      for (std::size_t i = 0; i < g_spawn_count; ++i) group.run([&done] { done.count_down(); });
      spawned = Clock::now();
    });
    group.wait();
  });
  const Clock::time_point end = Clock::now();
  check(done.try_wait(), "W1 oneTBB: the latch did not reach zero");
  return {nanoseconds_between(start, spawned) / static_cast<double>(g_spawn_count),
          static_cast<double>(g_spawn_count) / seconds_between(start, end)};
}

// --- W2: the same, spawned from a thread that is not a worker ---

Throughput knhk_spawn_remote(kc::WorkStealingExecutor& ex) {
  std::latch done(static_cast<std::ptrdiff_t>(g_spawn_count));
  const std::uint64_t before = completed(ex);
  const Clock::time_point start = Clock::now();
  for (std::size_t i = 0; i < g_spawn_count; ++i) ex.spawn([&done] { done.count_down(); });
  const Clock::time_point spawned = Clock::now();
  done.wait();
  const Clock::time_point end = Clock::now();
  check(eventually_equal(ex, before + g_spawn_count), "W2 knhk: task count mismatch");
  return {nanoseconds_between(start, spawned) / static_cast<double>(g_spawn_count),
          static_cast<double>(g_spawn_count) / seconds_between(start, end)};
}

Throughput tbb_spawn_remote(std::size_t threads) {
  std::latch done(static_cast<std::ptrdiff_t>(g_spawn_count));
  tbb::task_arena arena(static_cast<int>(threads));
  arena.initialize();
  const Clock::time_point start = Clock::now();
  for (std::size_t i = 0; i < g_spawn_count; ++i) arena.enqueue([&done] { done.count_down(); });
  const Clock::time_point spawned = Clock::now();
  done.wait();
  const Clock::time_point end = Clock::now();
  return {nanoseconds_between(start, spawned) / static_cast<double>(g_spawn_count),
          static_cast<double>(g_spawn_count) / seconds_between(start, end)};
}

// --- W3: single spawn calls timed with the TSC ---

struct TscClock {
  double ns_per_tick = 1.0;
  double overhead_ticks = 0.0;

  static std::uint64_t now() noexcept {
#if defined(__x86_64__)
    _mm_lfence();
    const std::uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
#else
    return static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
#endif
  }

  static TscClock calibrate() {
    TscClock clock;
    const auto wall_start = Clock::now();
    const std::uint64_t tsc_start = now();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::uint64_t tsc_end = now();
    const auto wall_end = Clock::now();
    clock.ns_per_tick = nanoseconds_between(wall_start, wall_end) / static_cast<double>(tsc_end - tsc_start);
    std::vector<double> empty(10'000);
    for (double& sample : empty) {
      const std::uint64_t a = now();
      const std::uint64_t b = now();
      sample = static_cast<double>(b - a);
    }
    std::sort(empty.begin(), empty.end());
    clock.overhead_ticks = empty[empty.size() / 2];
    return clock;
  }
};

struct Percentiles {
  double p50;
  double p99;
  double p999;
};

Percentiles percentiles(std::vector<double>& ticks, const TscClock& clock) {
  std::sort(ticks.begin(), ticks.end());
  auto at = [&](double q) {
    const auto index = static_cast<std::size_t>(q * static_cast<double>(ticks.size() - 1));
    return std::max(0.0, ticks[index] - clock.overhead_ticks) * clock.ns_per_tick;
  };
  return {at(0.50), at(0.99), at(0.999)};
}

template <class Spawn>
void time_spawns(std::vector<double>& ticks, Spawn&& spawn_one) {
  for (double& sample : ticks) {
    const std::uint64_t a = TscClock::now();
    spawn_one();
    const std::uint64_t b = TscClock::now();
    sample = static_cast<double>(b - a);
  }
}

Percentiles knhk_latency(kc::WorkStealingExecutor& ex, bool from_worker, const TscClock& clock) {
  std::vector<double> ticks(g_latency_samples);
  std::latch done(static_cast<std::ptrdiff_t>(g_latency_samples));
  const std::uint64_t before = completed(ex);
  auto spawn_one = [&] { ex.spawn([&done] { done.count_down(); }); };
  if (from_worker) {
    ex.spawn_with_handle([&] { time_spawns(ticks, spawn_one); }).get();
  } else {
    time_spawns(ticks, spawn_one);
  }
  done.wait();
  check(eventually_equal(ex, before + g_latency_samples + (from_worker ? 1 : 0)), "W3 knhk: task count mismatch");
  return percentiles(ticks, clock);
}

Percentiles tbb_latency(bool from_worker, const TscClock& clock) {
  std::vector<double> ticks(g_latency_samples);
  std::latch done(static_cast<std::ptrdiff_t>(g_latency_samples));
  tbb::task_arena arena(2);
  arena.initialize();
  if (from_worker) {
    arena.execute([&] {
      tbb::task_group group;
      group.run([&] { time_spawns(ticks, [&] { group.run([&done] { done.count_down(); }); }); });
      group.wait();
    });
  } else {
    time_spawns(ticks, [&] { arena.enqueue([&done] { done.count_down(); }); });
  }
  done.wait();
  return percentiles(ticks, clock);
}

}  // namespace

std::vector<Row> run_spawn_workloads(const Options& options) {
  g_spawn_count = options.quick ? 250'000 : 1'000'000;
  g_latency_samples = options.quick ? 50'000 : 200'000;
  Row local_t1{"W1", "spawn_local_ns_per_call_t1", "ns", {}, Samples{}, std::nullopt};
  Row local_t2{"W1", "spawn_local_ns_per_call_t2", "ns", {}, Samples{}, std::nullopt};
  Row local_rate{"W1", "spawn_local_tasks_per_s_t2", "1/s", {}, Samples{}, Target::at_least(20e6)};
  Row remote{"W2", "spawn_remote_ns_per_call", "ns", {}, Samples{}, std::nullopt};
  Row remote_rate{"W2", "spawn_remote_tasks_per_s", "1/s", {}, Samples{}, std::nullopt};
  Row lat[6] = {
      {"W3", "spawn_local_p50_ns", "ns", {}, Samples{}, Target::at_most(20)},
      {"W3", "spawn_local_p99_ns", "ns", {}, Samples{}, Target::at_most(50)},
      {"W3", "spawn_local_p999_ns", "ns", {}, Samples{}, std::nullopt},
      {"W3", "spawn_remote_p50_ns", "ns", {}, Samples{}, std::nullopt},
      {"W3", "spawn_remote_p99_ns", "ns", {}, Samples{}, Target::at_most(100)},
      {"W3", "spawn_remote_p999_ns", "ns", {}, Samples{}, std::nullopt},
  };
  const TscClock clock = TscClock::calibrate();
  BenchExecutor one(1);
  BenchExecutor two(2);
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    show_progress("W1-W3 spawn", rep, options.repetitions);
    Throughput k = knhk_spawn_local(one);
    Throughput t = tbb_spawn_local(1);
    local_t1.add(k.ns_per_call, t.ns_per_call);
    k = knhk_spawn_local(two);
    t = tbb_spawn_local(2);
    local_t2.add(k.ns_per_call, t.ns_per_call);
    local_rate.add(k.tasks_per_s, t.tasks_per_s);
    k = knhk_spawn_remote(two);
    t = tbb_spawn_remote(2);
    remote.add(k.ns_per_call, t.ns_per_call);
    remote_rate.add(k.tasks_per_s, t.tasks_per_s);
    for (const bool from_worker : {true, false}) {
      const Percentiles kp = knhk_latency(two, from_worker, clock);
      const Percentiles tp = tbb_latency(from_worker, clock);
      Row* rows = from_worker ? &lat[0] : &lat[3];
      rows[0].add(kp.p50, tp.p50);
      rows[1].add(kp.p99, tp.p99);
      rows[2].add(kp.p999, tp.p999);
    }
  }
  std::vector<Row> rows = {local_t1, local_t2, local_rate, remote, remote_rate};
  rows.insert(rows.end(), std::begin(lat), std::end(lat));
  return rows;
}

// TEL: what telemetry costs on W1's spawn path (issue 7's budget: at most 5 %), at T = 1 (where
// a spawn is cheapest, so any cost shows most) and T = 2. Executors with enable_telemetry on and
// off, measured alternately in one run (blocks of off, on, on, off, so that a drift of the
// machine weighs on both alike).
std::vector<Row> run_telemetry_overhead(const Options& options) {
  g_spawn_count = options.quick ? 250'000 : 1'000'000;
  std::vector<Row> rows;
  for (const std::size_t workers : {std::size_t{1}, std::size_t{2}}) {
    const std::string t = "_t" + std::to_string(workers);
    Row on{"TEL", "spawn_local" + t + "_on_ns", "ns", {}, std::nullopt, std::nullopt};
    Row off{"TEL", "spawn_local" + t + "_off_ns", "ns", {}, std::nullopt, std::nullopt};
    Row ratio{"TEL", "on_over_off" + t, "1", {}, std::nullopt, Target::at_most(1.05)};
    kc::WorkerConfig on_config;
    on_config.worker_count = workers;
    kc::WorkerConfig off_config = on_config;
    off_config.enable_telemetry = false;
    // Every pair of executors runs at its own speed: the same pair kept for a whole process
    // favoured one side by 5-30 %, either side, depending on what ran before it (memory and
    // thread placement), while a 1 % effect is sought. So each repetition makes fresh pairs, in
    // alternating order, warms each executor with one run, and measures off, on, on, off; the
    // repetition's figures sum over its pairs. T = 1 (35 ns a spawn, 40 ms a run) takes three
    // pairs, T = 2 (500 ns a spawn) one.
    const int pairs = workers == 1 ? 3 : 1;
    for (int rep = 1; rep <= options.repetitions; ++rep) {
      show_progress("TEL telemetry on/off, T = " + std::to_string(workers), rep, options.repetitions);
      double on_sum = 0;
      double off_sum = 0;
      for (int pair = 0; pair < pairs; ++pair) {
        std::optional<BenchExecutor> with;
        std::optional<BenchExecutor> without;
        if ((rep + pair) % 2 == 1) {
          with.emplace(on_config);
          without.emplace(off_config);
        } else {
          without.emplace(off_config);
          with.emplace(on_config);
        }
        knhk_spawn_local(*with);
        knhk_spawn_local(*without);
        off_sum += knhk_spawn_local(*without).ns_per_call;
        on_sum += knhk_spawn_local(*with).ns_per_call;
        on_sum += knhk_spawn_local(*with).ns_per_call;
        off_sum += knhk_spawn_local(*without).ns_per_call;
      }
      on.knhk.values.push_back(on_sum / (2 * pairs));
      off.knhk.values.push_back(off_sum / (2 * pairs));
      ratio.knhk.values.push_back(on_sum / off_sum);
    }
    rows.insert(rows.end(), {on, off, ratio});
  }
  return rows;
}

}  // namespace knhk::bench
