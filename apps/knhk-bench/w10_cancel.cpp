// W10 cancel: a root token with 100,000 children, each holding an on_cancel callback.
// Figures: ns per child_token(), ns per is_cancelled(), ms for root.cancel() to reach every child
// and run every callback, and RSS growth after creating and dropping 1,000,000 children.
// oneTBB has no cancellation tree to compare with (its task_group_context is not a token API).
#include <knhk/concurrency.hpp>

#include <string>
#include <vector>

#include "workload.hpp"

namespace knhk::bench {
namespace {

namespace kc = knhk::concurrency;

constexpr std::size_t kChildren = 100'000;
constexpr int kIsCancelledPasses = 20;  // 2,000,000 loads: long enough to time, short enough to run
constexpr std::size_t kChurn = 1'000'000;

struct Sample {
  double child_token_ns;
  double is_cancelled_ns;
  double cancel_ms;
};

Sample measure_tree() {
  const kc::CancelToken root;
  std::vector<kc::CancelToken> children;
  children.reserve(kChildren);
  std::vector<kc::CancelRegistration> registrations;
  registrations.reserve(kChildren);
  std::size_t callbacks_run = 0;  // the callbacks all run on this thread, inside cancel()

  const auto create_start = Clock::now();
  for (std::size_t i = 0; i < kChildren; ++i) children.push_back(root.child_token());
  const auto create_end = Clock::now();

  for (const kc::CancelToken& child : children) {
    registrations.push_back(child.on_cancel([&callbacks_run] { ++callbacks_run; }));
  }

  std::size_t seen_cancelled = 0;
  const auto check_start = Clock::now();
  for (int pass = 0; pass < kIsCancelledPasses; ++pass) {
    for (const kc::CancelToken& child : children) seen_cancelled += child.is_cancelled() ? 1U : 0U;
  }
  const auto check_end = Clock::now();
  check(seen_cancelled == 0, "W10: a child reported cancelled before its root was");

  const auto cancel_start = Clock::now();
  root.cancel();
  const auto cancel_end = Clock::now();

  check(callbacks_run == kChildren,
        "W10: root.cancel() ran " + std::to_string(callbacks_run) + " of " + std::to_string(kChildren) + " callbacks");
  for (const kc::CancelToken& child : children) seen_cancelled += child.is_cancelled() ? 1U : 0U;
  check(seen_cancelled == kChildren, "W10: only " + std::to_string(seen_cancelled) + " children cancelled");

  return {nanoseconds_between(create_start, create_end) / static_cast<double>(kChildren),
          nanoseconds_between(check_start, check_end) / (static_cast<double>(kChildren) * kIsCancelledPasses),
          nanoseconds_between(cancel_start, cancel_end) / 1e6};
}

double measure_churn_rss_growth_kib() {
  const kc::CancelToken root;
  for (std::size_t i = 0; i < 10'000; ++i) (void)root.child_token();  // warm the allocator
  const std::size_t before = resident_kib();
  for (std::size_t i = 0; i < kChurn; ++i) {
    const kc::CancelToken child = root.child_token();
    check(!child.is_cancelled(), "W10: a fresh child of a live root reported cancelled");
  }
  const std::size_t after = resident_kib();
  check(kc::detail::linked_child_count(root) == 0, "W10: dropped children are still linked to their parent");
  return static_cast<double>(after) - static_cast<double>(before);
}

}  // namespace

std::vector<Row> run_cancel_workload(const Options& options) {
  Row child_token{"W10", "child_token_ns", "ns", {}, std::nullopt, Target::at_most(40)};
  Row is_cancelled{"W10", "is_cancelled_ns", "ns", {}, std::nullopt, Target::at_most(2)};
  Row cancel{"W10", "cancel_100k_ms", "ms", {}, std::nullopt, Target::at_most(2)};
  Row churn{"W10", "child_churn_rss_growth_kib", "KiB", {}, std::nullopt, Target::at_most(64)};
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    show_progress("W10 cancel", rep, options.repetitions);
    const Sample sample = measure_tree();
    child_token.knhk.values.push_back(sample.child_token_ns);
    is_cancelled.knhk.values.push_back(sample.is_cancelled_ns);
    cancel.knhk.values.push_back(sample.cancel_ms);
    churn.knhk.values.push_back(measure_churn_rss_growth_kib());
  }
  return {child_token, is_cancelled, cancel, churn};
}

}  // namespace knhk::bench
