#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>
#include <thread>

#if KNHK_BENCH_HAS_ONETBB
#include <oneapi/tbb/version.h>
#endif

namespace knhk::bench {
namespace {

std::string format_number(double value) {
  std::ostringstream out;
  const double magnitude = std::fabs(value);
  if (magnitude >= 1e6) {
    out << std::setprecision(4) << value;  // scientific-ish, e.g. 7.4e+06
  } else if (magnitude >= 100) {
    out << std::fixed << std::setprecision(0) << value;
  } else if (magnitude >= 1) {
    out << std::fixed << std::setprecision(2) << value;
  } else {
    out << std::setprecision(3) << value;
  }
  return out.str();
}

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  std::ostringstream out;
  out << std::setprecision(6) << value;
  return out.str();
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(c));
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

}  // namespace

std::string Target::text() const {
  std::string out = op == Op::at_most ? "<= " : ">= ";
  out += format_number(value);
  if (relative_to_onetbb) out += " x oneTBB";
  return out;
}

double Samples::median() const {
  if (values.empty()) throw std::logic_error("median of no samples");
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t mid = sorted.size() / 2;
  return sorted.size() % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
double Samples::min() const { return *std::min_element(values.begin(), values.end()); }
double Samples::max() const { return *std::max_element(values.begin(), values.end()); }

std::optional<double> Row::ratio() const {
  if (!onetbb || onetbb->median() == 0) return std::nullopt;
  return knhk.median() / onetbb->median();
}

std::optional<bool> Row::met() const {
  if (!target) return std::nullopt;
  double bound = target->value;
  if (target->relative_to_onetbb) {
    if (!onetbb) return std::nullopt;
    bound *= onetbb->median();
  }
  const double value = knhk.median();
  return target->op == Target::Op::at_most ? value <= bound : value >= bound;
}

MachineInfo describe_machine() {
  MachineInfo info;
  info.cpus = std::thread::hardware_concurrency();
  info.model = cpu_model();
#if defined(__clang__)
  info.compiler = std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  info.compiler = std::string("g++ ") + __VERSION__;
#endif
  info.build_type = KNHK_BENCH_BUILD_TYPE;
#if KNHK_BENCH_HAS_ONETBB
  info.onetbb_version = TBB_VERSION_STRING;
#else
  info.onetbb_version = "not built in";
#endif
  return info;
}

void print_table(const MachineInfo& machine, const std::vector<Row>& rows, const std::vector<std::string>& notes) {
  std::printf("\nknhk-bench on %u CPUs (%s), %s, %s build, oneTBB %s\n", machine.cpus, machine.model.c_str(),
              machine.compiler.c_str(), machine.build_type.c_str(), machine.onetbb_version.c_str());
  std::printf("Each figure is the median of its repetitions [min..max].\n\n");
  std::printf("%-5s %-30s %-34s %-10s %-7s %-16s %s\n", "", "figure", "knhk [min..max]", "oneTBB", "ratio", "target",
              "verdict");
  for (const Row& row : rows) {
    const std::string knhk = format_number(row.knhk.median()) + " " + row.unit + " [" + format_number(row.knhk.min()) +
                             ".." + format_number(row.knhk.max()) + "]";
    const std::string onetbb = row.onetbb ? format_number(row.onetbb->median()) : "-";
    const auto ratio = row.ratio();
    const std::string ratio_text = ratio ? format_number(*ratio) : "-";
    const std::string target = row.target ? row.target->text() : "-";
    const auto met = row.met();
    const char* verdict = !met ? "-" : (*met ? "met" : "MISSED");
    std::printf("%-5s %-30s %-34s %-10s %-7s %-16s %s\n", row.workload.c_str(), row.figure.c_str(), knhk.c_str(),
                onetbb.c_str(), ratio_text.c_str(), target.c_str(), verdict);
  }
  for (const std::string& note : notes) std::printf("note: %s\n", note.c_str());
  std::fflush(stdout);
}

void write_json(const std::string& path, const MachineInfo& machine, bool quick, const std::vector<Row>& rows) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << "{ \"machine\": {\"cpus\": " << machine.cpus << ", \"model\": " << json_string(machine.model)
      << ", \"compiler\": " << json_string(machine.compiler) << ", \"build_type\": " << json_string(machine.build_type)
      << "},\n  \"quick\": " << (quick ? "true" : "false") << ",\n  \"rows\": [";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    const auto ratio = row.ratio();
    const auto met = row.met();
    out << (i == 0 ? "\n" : ",\n") << "    {\"workload\": " << json_string(row.workload)
        << ", \"figure\": " << json_string(row.figure) << ", \"unit\": " << json_string(row.unit)
        << ", \"knhk\": " << json_number(row.knhk.median()) << ", \"knhk_min\": " << json_number(row.knhk.min())
        << ", \"knhk_max\": " << json_number(row.knhk.max())
        << ", \"onetbb\": " << (row.onetbb ? json_number(row.onetbb->median()) : "null")
        << ", \"ratio\": " << (ratio ? json_number(*ratio) : "null")
        << ", \"target\": " << (row.target ? json_string(row.target->text()) : "null")
        << ", \"met\": " << (met ? (*met ? "true" : "false") : "null") << "}";
  }
  out << "\n  ] }\n";
  if (!out) throw std::runtime_error("failed while writing " + path);
}

}  // namespace knhk::bench
