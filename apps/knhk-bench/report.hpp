// The figures knhk-bench measures and how it reports them: one row per figure, the median of its
// repetitions with min and max, the oneTBB counterpart where there is one, the target and the
// verdict; printed as a table and, on request, written as the JSON of BENCHMARKS.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace knhk::bench {

/// A target: "median <op> value", or "median <op> value x oneTBB's median" when relative.
struct Target {
  enum class Op { at_most, at_least };
  Op op = Op::at_most;
  double value = 0;
  bool relative_to_onetbb = false;

  static Target at_most(double v) { return {Op::at_most, v, false}; }
  static Target at_least(double v) { return {Op::at_least, v, false}; }
  static Target at_most_onetbb(double factor) { return {Op::at_most, factor, true}; }

  [[nodiscard]] std::string text() const;
};

struct Samples {
  std::vector<double> values;
  [[nodiscard]] double median() const;
  [[nodiscard]] double min() const;
  [[nodiscard]] double max() const;
};

struct Row {
  std::string workload;  // "W10"
  std::string figure;    // "child_token_ns", exactly as BENCHMARKS.md names it
  std::string unit;      // "ns", "ms", "KiB", "1/s", "1"
  Samples knhk;
  std::optional<Samples> onetbb;
  std::optional<Target> target;

  /// Records one repetition of both runtimes (the row must have been made with oneTBB samples).
  void add(double knhk_value, double onetbb_value) {
    knhk.values.push_back(knhk_value);
    onetbb->values.push_back(onetbb_value);
  }

  [[nodiscard]] std::optional<double> ratio() const;  // knhk / oneTBB (medians)
  [[nodiscard]] std::optional<bool> met() const;      // empty when there is no target
};

struct MachineInfo {
  unsigned cpus = 0;
  std::string model;
  std::string compiler;
  std::string build_type;
  std::string onetbb_version;
};

MachineInfo describe_machine();

void print_table(const MachineInfo& machine, const std::vector<Row>& rows, const std::vector<std::string>& notes);
void write_json(const std::string& path, const MachineInfo& machine, bool quick, const std::vector<Row>& rows);

}  // namespace knhk::bench
