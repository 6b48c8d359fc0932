// W4 fib and W5 skynet: recursive fork-join, where every task spawns joinable children and waits
// for them. On knhk a child is spawn_with_handle(Task) and the join is `co_await handle` (the
// parent suspends; no thread blocks); on oneTBB a child is task_group::run and the join is
// task_group::wait. Both in the same run, with the same thread counts.
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <array>
#include <cstdint>
#include <knhk/concurrency.hpp>

#include "workload.hpp"

namespace knhk::bench {
namespace {

namespace kc = knhk::concurrency;

constexpr int kFibN = 30;
constexpr std::uint64_t kFib30 = 832040;
constexpr double kFibSpawns = 1'346'268;  // calls with n >= 2 (BENCHMARKS.md)

constexpr std::uint64_t kSkynetLeaves = 1'000'000;  // 10^6 leaves, 1,111,111 tasks in all
constexpr std::uint64_t kSkynetSum = 499'999'500'000;

// --- W4: fib(n) spawns fib(n-1) as a joinable child, computes fib(n-2) itself, joins ---

[[gnu::noinline]] std::uint64_t serial_fib(int n) {
  return n < 2 ? static_cast<std::uint64_t>(n) : serial_fib(n - 1) + serial_fib(n - 2);
}

kc::Task<std::uint64_t> knhk_fib(kc::WorkStealingExecutor& ex, int n) {
  if (n < 2) co_return static_cast<std::uint64_t>(n);
  kc::JoinHandle<std::uint64_t> child = ex.spawn_with_handle(knhk_fib(ex, n - 1));
  const std::uint64_t mine = co_await knhk_fib(ex, n - 2);
  co_return mine + co_await child;
}

std::uint64_t tbb_fib(int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  std::uint64_t child = 0;
  tbb::task_group group;
  group.run([&child, n] { child = tbb_fib(n - 1); });
  const std::uint64_t mine = tbb_fib(n - 2);
  group.wait();
  return mine + child;
}

// Runs `compute` once and returns its wall time in ms, after checking its answer.
template <class Compute>
double timed_ms(Compute&& compute, std::uint64_t expected, const char* wrong) {
  const auto start = Clock::now();
  const std::uint64_t result = compute();
  const double ms = nanoseconds_between(start, Clock::now()) / 1e6;
  check(result == expected, wrong);
  return ms;
}

double knhk_fib_ms(kc::WorkStealingExecutor& ex) {
  return timed_ms([&ex] { return ex.block_on(knhk_fib(ex, kFibN)); }, kFib30,
                  "W4 knhk: fib(30) computed a wrong value");
}

double tbb_fib_ms(tbb::task_arena& arena) {
  return timed_ms([&arena] { return arena.execute([] { return tbb_fib(kFibN); }); }, kFib30,
                  "W4 oneTBB: fib(30) computed a wrong value");
}

double serial_fib_ms() {
  return timed_ms([] { return serial_fib(kFibN); }, kFib30, "W4 serial: fib(30) computed a wrong value");
}

// --- W5: a 10-ary tree of depth 6; leaves return their index; the sum is checked ---

kc::Task<std::uint64_t> knhk_skynet(kc::WorkStealingExecutor& ex, std::uint64_t first, std::uint64_t size) {
  if (size == 1) co_return first;
  const std::uint64_t part = size / 10;
  std::array<kc::JoinHandle<std::uint64_t>, 10> children;
  for (std::uint64_t i = 0; i < 10; ++i) children[i] = ex.spawn_with_handle(knhk_skynet(ex, first + i * part, part));
  std::uint64_t sum = 0;
  for (kc::JoinHandle<std::uint64_t>& child : children) sum += co_await child;
  co_return sum;
}

std::uint64_t tbb_skynet(std::uint64_t first, std::uint64_t size) {
  if (size == 1) return first;
  const std::uint64_t part = size / 10;
  std::array<std::uint64_t, 10> sums{};
  tbb::task_group group;
  for (std::uint64_t i = 0; i < 10; ++i) {
    group.run([&sums, i, first, part] { sums[i] = tbb_skynet(first + i * part, part); });
  }
  group.wait();
  std::uint64_t sum = 0;
  for (const std::uint64_t s : sums) sum += s;
  return sum;
}

double knhk_skynet_ms(kc::WorkStealingExecutor& ex) {
  return timed_ms([&ex] { return ex.block_on(knhk_skynet(ex, 0, kSkynetLeaves)); }, kSkynetSum,
                  "W5 knhk: skynet's sum is wrong");
}

double tbb_skynet_ms(tbb::task_arena& arena) {
  return timed_ms([&arena] { return arena.execute([] { return tbb_skynet(0, kSkynetLeaves); }); }, kSkynetSum,
                  "W5 oneTBB: skynet's sum is wrong");
}

}  // namespace

std::vector<Row> run_forkjoin_workloads(const Options& options) {
  Row t1{"W4", "fib30_t1_ms", "ms", {}, Samples{}, std::nullopt};
  Row t2{"W4", "fib30_t2_ms", "ms", {}, Samples{}, std::nullopt};
  Row serial{"W4", "fib30_serial_ms", "ms", {}, std::nullopt, std::nullopt};
  Row overhead{"W4", "fib30_overhead_ns_per_task", "ns", {}, Samples{}, Target::at_most(30)};
  Row speedup{"W4", "fib30_speedup", "1", {}, Samples{}, Target::at_least(1.8)};
  Row skynet{"W5", "skynet_ms", "ms", {}, Samples{}, Target::at_most_onetbb(0.5)};

  BenchExecutor one(1);
  BenchExecutor two(2);
  tbb::task_arena arena_one(1);
  tbb::task_arena arena_two(2);
  (void)knhk_fib_ms(two);  // warm the pools and the arenas once
  (void)tbb_fib_ms(arena_two);
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    show_progress("W4 fib W5 skynet", rep, options.repetitions);
    const double serial_ms = serial_fib_ms();
    const double k1 = knhk_fib_ms(one);
    const double o1 = tbb_fib_ms(arena_one);
    const double k2 = knhk_fib_ms(two);
    const double o2 = tbb_fib_ms(arena_two);
    serial.knhk.values.push_back(serial_ms);
    t1.add(k1, o1);
    t2.add(k2, o2);
    overhead.add((k1 - serial_ms) * 1e6 / kFibSpawns, (o1 - serial_ms) * 1e6 / kFibSpawns);
    speedup.add(k1 / k2, o1 / o2);
    skynet.add(knhk_skynet_ms(two), tbb_skynet_ms(arena_two));
  }
  return {t1, t2, serial, overhead, speedup, skynet};
}

}  // namespace knhk::bench
