// A histogram of non-negative integers with power-of-two bucket bounds (1, 2, 4, ... 2^24, then
// +Inf): recording is a bit scan and one counter update, cheap enough for sampled hot paths.
//
// Two ways to record: record_owned() by the histogram's only writer (a worker's own histograms:
// relaxed load and store, no read-modify-write), record_shared() by any thread (relaxed
// fetch_add). Readers (a metrics snapshot) load each counter relaxed: a snapshot needs no ordering
// with the recording threads, and each counter is exact once writers are quiet.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace knhk::concurrency::detail {

class Log2Histogram {
 public:
  static constexpr std::size_t kBounds = 25;  // 2^0 .. 2^24
  static constexpr std::size_t kBuckets = kBounds + 1;

  static constexpr std::size_t bucket_of(std::uint64_t value) noexcept {
    if (value <= 1) return 0;
    const std::size_t index = std::bit_width(value - 1);  // smallest k with value <= 2^k (libstdc++: unsigned)
    return index < kBounds ? index : kBounds;
  }
  static std::vector<double> bounds() {
    std::vector<double> b(kBounds);
    for (std::size_t k = 0; k < kBounds; ++k) b[k] = static_cast<double>(std::uint64_t{1} << k);
    return b;
  }

  void record_owned(std::uint64_t value) noexcept {
    bump(counts_[bucket_of(value)], 1);
    bump(sum_, value);
  }
  void record_shared(std::uint64_t value) noexcept {
    counts_[bucket_of(value)].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }

  /// Adds this histogram's counts (kBuckets of them) and sum to `counts` and `sum`.
  void add_to(std::vector<std::uint64_t>& counts, std::uint64_t& sum) const {
    counts.resize(kBuckets, 0);
    for (std::size_t i = 0; i < kBuckets; ++i) counts[i] += counts_[i].load(std::memory_order_relaxed);
    sum += sum_.load(std::memory_order_relaxed);
  }

 private:
  static void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }

  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> sum_{0};
};

}  // namespace knhk::concurrency::detail
