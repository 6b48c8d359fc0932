// The export formats, checked against their specifications with independent readers: OTLP/JSON
// parsed by nlohmann-json and walked field by field (opentelemetry-proto's JSON encoding), the
// Prometheus text exposition read by a strict line parser written from the format's grammar.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "knhk/concurrency.hpp"
#include "support/telemetry_workload.hpp"

namespace kt = knhk::concurrency::telemetry;
using nlohmann::json;

namespace {

const knhk::test::Emitted& emitted() {
  static const knhk::test::Emitted e = knhk::test::run_telemetry_workload();
  return e;
}

bool is_decimal_string(const json& v) {
  return v.is_string() && !v.get<std::string>().empty() &&
         v.get<std::string>().find_first_not_of("0123456789") == std::string::npos;
}

bool is_hex_id(const json& v, std::size_t digits) {
  if (!v.is_string()) return false;
  const std::string s = v.get<std::string>();
  return s.size() == digits && s.find_first_not_of("0123456789abcdef") == std::string::npos &&
         s.find_first_not_of('0') != std::string::npos;
}

// AnyValue: exactly one of the value fields, of the JSON type the proto3 mapping gives it.
void expect_any_value(const json& value, const std::string& where) {
  ASSERT_TRUE(value.is_object()) << where;
  ASSERT_EQ(value.size(), 1U) << where << ": " << value.dump();
  const std::string field = value.begin().key();
  const json& v = value.begin().value();
  if (field == "intValue") {
    const std::string digits = v.is_string() ? v.get<std::string>() : "";
    EXPECT_TRUE(is_decimal_string(json(digits.rfind('-', 0) == 0 ? digits.substr(1) : digits))) << where;
  } else if (field == "boolValue") {
    EXPECT_TRUE(v.is_boolean()) << where;
  } else if (field == "doubleValue") {
    EXPECT_TRUE(v.is_number()) << where;
  } else if (field == "stringValue") {
    EXPECT_TRUE(v.is_string()) << where;
  } else {
    ADD_FAILURE() << where << ": unknown AnyValue field " << field;
  }
}

void expect_attributes(const json& attributes, const std::string& where) {
  ASSERT_TRUE(attributes.is_array()) << where;
  std::set<std::string> keys;
  for (const json& kv : attributes) {
    ASSERT_TRUE(kv.contains("key") && kv["key"].is_string()) << where;
    EXPECT_TRUE(keys.insert(kv["key"].get<std::string>()).second) << where << ": duplicate key " << kv["key"];
    ASSERT_TRUE(kv.contains("value")) << where;
    expect_any_value(kv["value"], where + " " + kv["key"].get<std::string>());
  }
}

// resource.attributes with service.name, and the instrumentation scope.
void expect_resource_and_scope(const json& resource_item, const char* scope_key) {
  const json& attributes = resource_item.at("resource").at("attributes");
  expect_attributes(attributes, "resource");
  bool service_name = false;
  for (const json& kv : attributes) {
    if (kv["key"] == "service.name") service_name = kv["value"].at("stringValue") == "knhk";
  }
  EXPECT_TRUE(service_name) << resource_item["resource"].dump();
  ASSERT_EQ(resource_item.at(scope_key).size(), 1U);
  const json& scope = resource_item[scope_key][0].at("scope");
  EXPECT_EQ(scope.at("name"), "knhk.concurrency");
  EXPECT_EQ(scope.at("version"), std::string(kt::library_version()));
}

TEST(OtlpJsonMetrics, SnapshotOfARealExecutorIsAValidExportMetricsServiceRequest) {
  const json request = json::parse(kt::to_otlp_json(emitted().metrics));

  ASSERT_EQ(request.size(), 1U);
  ASSERT_EQ(request.at("resourceMetrics").size(), 1U);
  const json& resource_metrics = request["resourceMetrics"][0];
  expect_resource_and_scope(resource_metrics, "scopeMetrics");
  const json& metrics = resource_metrics["scopeMetrics"][0].at("metrics");
  ASSERT_EQ(metrics.size(), emitted().metrics.metrics.size());
  for (const json& m : metrics) {
    const std::string name = m.at("name").get<std::string>();
    EXPECT_TRUE(m.at("unit").is_string()) << name;
    EXPECT_TRUE(m.at("description").is_string()) << name;
    const int data_fields = static_cast<int>(m.contains("sum")) + static_cast<int>(m.contains("gauge")) +
                            static_cast<int>(m.contains("histogram"));
    ASSERT_EQ(data_fields, 1) << name;
    if (m.contains("sum")) {
      EXPECT_EQ(m["sum"].at("aggregationTemporality"), 2) << name;  // CUMULATIVE
      EXPECT_EQ(m["sum"].at("isMonotonic"), true) << name;
    }
    const json& data = m.contains("sum") ? m["sum"] : m.contains("gauge") ? m["gauge"] : m["histogram"];
    ASSERT_FALSE(data.at("dataPoints").empty()) << name;
    for (const json& p : data["dataPoints"]) {
      expect_attributes(p.at("attributes"), name);
      ASSERT_TRUE(is_decimal_string(p.at("startTimeUnixNano"))) << name;
      ASSERT_TRUE(is_decimal_string(p.at("timeUnixNano"))) << name;
      EXPECT_LE(std::stoull(p["startTimeUnixNano"].get<std::string>()),
                std::stoull(p["timeUnixNano"].get<std::string>()))
          << name;
      if (m.contains("histogram")) {
        EXPECT_EQ(m["histogram"].at("aggregationTemporality"), 2) << name;
        const json& bounds = p.at("explicitBounds");
        const json& counts = p.at("bucketCounts");
        ASSERT_EQ(counts.size(), bounds.size() + 1) << name;
        for (std::size_t i = 1; i < bounds.size(); ++i) EXPECT_LT(bounds[i - 1].get<double>(), bounds[i].get<double>());
        std::uint64_t total = 0;
        for (const json& c : counts) {
          ASSERT_TRUE(is_decimal_string(c)) << name;
          total += std::stoull(c.get<std::string>());
        }
        ASSERT_TRUE(is_decimal_string(p.at("count"))) << name;
        EXPECT_EQ(total, std::stoull(p["count"].get<std::string>())) << name;
        EXPECT_TRUE(p.at("sum").is_number()) << name;
      } else {
        EXPECT_NE(p.contains("asInt"), p.contains("asDouble")) << name;
        if (p.contains("asInt")) {
          EXPECT_TRUE(is_decimal_string(p["asInt"])) << name;
        }
        if (p.contains("asDouble")) {
          EXPECT_TRUE(p["asDouble"].is_number()) << name;
        }
      }
    }
  }
}

TEST(OtlpJsonMetrics, CountersCarryTheExecutorsExactCounts) {
  const json request = json::parse(kt::to_otlp_json(emitted().metrics));
  const json& metrics = request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
  std::map<std::string, std::uint64_t> totals;
  for (const json& m : metrics) {
    if (!m.contains("sum")) continue;
    for (const json& p : m["sum"]["dataPoints"]) totals[m["name"]] += std::stoull(p["asInt"].get<std::string>());
  }
  // The workload's spawns: 300 from outside, the bait and its 100, the sleeper, 6 nursery
  // children, 1 block_on task: all have ended before the snapshot (the workload waits for idleness).
  const std::uint64_t spawned = totals.at("knhk.concurrency.executor.tasks.spawned");
  EXPECT_GE(spawned, 408U);
  EXPECT_EQ(totals.at("knhk.concurrency.executor.tasks.completed"), spawned);
  EXPECT_GE(totals.at("knhk.concurrency.executor.tasks.stolen"), 1U);
}

TEST(OtlpJsonTraces, SpansAreAValidExportTraceServiceRequest) {
  const auto& spans = emitted().spans;
  ASSERT_FALSE(spans.empty());
  EXPECT_EQ(emitted().spans_dropped, 0U);

  const json request = json::parse(kt::to_otlp_json(std::span<const kt::SpanRecord>(spans)));

  ASSERT_EQ(request.at("resourceSpans").size(), 1U);
  const json& resource_spans = request["resourceSpans"][0];
  expect_resource_and_scope(resource_spans, "scopeSpans");
  const json& out = resource_spans["scopeSpans"][0].at("spans");
  ASSERT_EQ(out.size(), spans.size());
  std::set<std::string> span_ids;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const json& s = out[i];
    EXPECT_TRUE(is_hex_id(s.at("traceId"), 32)) << s.dump();
    EXPECT_TRUE(is_hex_id(s.at("spanId"), 16)) << s.dump();
    EXPECT_TRUE(span_ids.insert(s["spanId"].get<std::string>()).second) << "duplicate spanId";
    EXPECT_EQ(s.at("name"), std::string(spans[i].name));
    EXPECT_EQ(s.at("kind"), 1);  // SPAN_KIND_INTERNAL
    ASSERT_TRUE(is_decimal_string(s.at("startTimeUnixNano")));
    ASSERT_TRUE(is_decimal_string(s.at("endTimeUnixNano")));
    EXPECT_LE(std::stoull(s["startTimeUnixNano"].get<std::string>()),
              std::stoull(s["endTimeUnixNano"].get<std::string>()))
        << s.dump();
    expect_attributes(s.at("attributes"), s["name"].get<std::string>());
    EXPECT_EQ(s.at("attributes").size(), spans[i].attributes().size());
  }
}

// --- Prometheus text exposition (format 0.0.4), read strictly ---

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string type;
  bool has_help = false;
  std::vector<Sample> samples;
};

bool is_name_start(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
bool is_name_char(char c, bool colon) { return is_name_start(c, colon) || (c >= '0' && c <= '9'); }

// Reads a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or a label name (no ':') at `at`; empty if none.
std::string read_name(const std::string& line, std::size_t& at, bool colon) {
  const std::size_t begin = at;
  if (at < line.size() && is_name_start(line[at], colon)) {
    ++at;
    while (at < line.size() && is_name_char(line[at], colon)) ++at;
  }
  return line.substr(begin, at - begin);
}

// Reads {name="value",...} at `at` (the '{' itself), unescaping \\, \" and \n. False if malformed.
bool read_labels(const std::string& line, std::size_t& at, std::map<std::string, std::string>& labels) {
  ++at;  // '{'
  while (at < line.size() && line[at] != '}') {
    const std::string name = read_name(line, at, false);
    if (name.empty() || line.compare(at, 2, "=\"") != 0) return false;
    at += 2;
    std::string value;
    for (;;) {
      if (at >= line.size()) return false;
      const char c = line[at++];
      if (c == '"') break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (at >= line.size()) return false;
      const char e = line[at++];
      if (e == 'n') {
        value += '\n';
      } else if (e == '\\' || e == '"') {
        value += e;
      } else {
        return false;
      }
    }
    if (!labels.emplace(name, value).second) return false;  // a label given twice
    if (at < line.size() && line[at] == ',') ++at;
  }
  if (at >= line.size()) return false;
  ++at;  // '}'
  return true;
}

// Parses the exposition or fails the test with the offending line. Grammar (text format 0.0.4):
// "# HELP name docstring", "# TYPE name type", or "name[{labels}] value" (no timestamps here).
std::map<std::string, Family> parse_prometheus(const std::string& text) {
  std::map<std::string, Family> families;
  std::string current;
  std::set<std::string> series;
  EXPECT_TRUE(!text.empty() && text.back() == '\n') << "the exposition must end with a newline";
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::size_t at = 7;
      const std::string name = read_name(line, at, true);
      const bool spaced = !name.empty() && at < line.size() && line[at] == ' ';
      EXPECT_TRUE(spaced) << "malformed comment line: " << line;
      const std::string rest = spaced ? line.substr(at + 1) : "";
      if (line[2] == 'H') {
        current = name;
        EXPECT_FALSE(families[current].has_help) << "second HELP: " << line;
        EXPECT_TRUE(families[current].samples.empty()) << "HELP after samples: " << line;
        families[current].has_help = true;
        for (std::size_t i = 0; i < rest.size(); ++i) {  // only \\ and \n may follow a backslash
          if (rest[i] == '\\') {
            EXPECT_TRUE(i + 1 < rest.size() && (rest[i + 1] == '\\' || rest[i + 1] == 'n')) << line;
            ++i;
          }
        }
      } else {
        EXPECT_EQ(name, current) << "TYPE for another family than its HELP: " << line;
        EXPECT_TRUE(families[current].type.empty()) << "second TYPE: " << line;
        EXPECT_TRUE(rest == "counter" || rest == "gauge" || rest == "histogram" || rest == "summary" ||
                    rest == "untyped")
            << line;
        families[current].type = rest;
      }
      continue;
    }
    Sample s;
    std::size_t at = 0;
    s.name = read_name(line, at, true);
    const std::size_t labels_begin = at;
    bool ok = !s.name.empty();
    if (ok && at < line.size() && line[at] == '{') ok = read_labels(line, at, s.labels);
    const std::string label_text = line.substr(labels_begin, at - labels_begin);
    ok = ok && at < line.size() && line[at] == ' ';
    const std::string value = ok ? line.substr(at + 1) : "";
    if (!ok || value.empty() || value.find(' ') != std::string::npos) {
      ADD_FAILURE() << "not a valid exposition line: '" << line << "'";
      continue;
    }
    if (value != "+Inf" && value != "-Inf" && value != "NaN") {
      std::size_t used = 0;
      s.value = std::stod(value, &used);
      EXPECT_EQ(used, value.size()) << "malformed value: " << line;
    }
    EXPECT_FALSE(current.empty()) << "sample before any HELP/TYPE: " << line;
    const std::string& t = families[current].type;
    const bool belongs =
        s.name == current || (t == "histogram" && (s.name == current + "_bucket" || s.name == current + "_sum" ||
                                                   s.name == current + "_count"));
    EXPECT_TRUE(belongs) << "sample outside its family " << current << ": " << line;
    EXPECT_TRUE(series.insert(s.name + label_text).second) << "duplicate series: " << line;
    families[current].samples.push_back(s);
  }
  return families;
}

TEST(PrometheusText, SnapshotOfARealExecutorIsAValidExposition) {
  const std::map<std::string, Family> families = parse_prometheus(kt::to_prometheus(emitted().metrics));

  ASSERT_EQ(families.size(), emitted().metrics.metrics.size());
  for (const auto& [name, family] : families) {
    EXPECT_TRUE(family.has_help) << name;
    EXPECT_FALSE(family.type.empty()) << name;
    EXPECT_FALSE(family.samples.empty()) << name;
    if (family.type == "counter") {
      EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
    }
    if (family.type != "histogram") continue;
    // Per label set: cumulative buckets in increasing le, ending with +Inf equal to _count.
    std::map<std::string, std::vector<std::pair<std::string, double>>> buckets;
    std::map<std::string, double> counts;
    for (const Sample& s : family.samples) {
      std::map<std::string, std::string> rest = s.labels;
      const std::string le = rest.count("le") != 0 ? rest["le"] : "";
      rest.erase("le");
      std::string key;
      for (const auto& [k, v] : rest) key += k + "=" + v + ",";
      if (s.name == name + "_bucket") {
        ASSERT_FALSE(le.empty()) << name;
        buckets[key].emplace_back(le, s.value);
      } else if (s.name == name + "_count") {
        counts[key] = s.value;
      }
    }
    ASSERT_FALSE(buckets.empty()) << name;
    for (const auto& [key, list] : buckets) {
      ASSERT_EQ(list.back().first, "+Inf") << name << " " << key;
      for (std::size_t i = 1; i < list.size(); ++i) {
        EXPECT_LE(list[i - 1].second, list[i].second) << name << " buckets are not cumulative";
        if (i + 1 < list.size()) {
          EXPECT_LT(std::stod(list[i - 1].first), std::stod(list[i].first)) << name;
        }
      }
      EXPECT_EQ(list.back().second, counts.at(key)) << name;
    }
  }
}

TEST(PrometheusText, NamesFollowTheOpenTelemetryMapping) {
  const std::map<std::string, Family> families = parse_prometheus(kt::to_prometheus(emitted().metrics));

  const std::string p = "knhk_concurrency_executor_";
  EXPECT_EQ(families.at(p + "tasks_spawned_total").type, "counter");
  EXPECT_EQ(families.at(p + "tasks_completed_total").type, "counter");
  EXPECT_EQ(families.at(p + "workers_idle").type, "gauge");  // {worker}: annotations add no suffix
  EXPECT_EQ(families.at(p + "cpu_utilization_ratio").type, "gauge");
  EXPECT_EQ(families.at(p + "spawn_latency_nanoseconds").type, "histogram");
  EXPECT_EQ(families.at(p + "steal_attempts").type, "histogram");
  bool worker_label = false;
  for (const Sample& s : families.at(p + "tasks_completed_total").samples)
    worker_label |= s.labels.count("executor_worker_id") != 0;
  EXPECT_TRUE(worker_label);
}

TEST(PrometheusText, TheStrictReaderRejectsMalformedExpositions) {
  EXPECT_NONFATAL_FAILURE(parse_prometheus("# HELP a x\n# TYPE a gauge\na{b=\"1\" 3\n"), "not a valid exposition line");
  EXPECT_NONFATAL_FAILURE(parse_prometheus("# HELP a x\n# TYPE a gauge\nb 3\n"), "sample outside its family");
  EXPECT_NONFATAL_FAILURE(parse_prometheus("# HELP a x\n# TYPE a gauge\na 3\na 4\n"), "duplicate series");
  EXPECT_NONFATAL_FAILURE(parse_prometheus("# HELP a x\n# TYPE a gauge\na 3x\n"), "malformed value");
  EXPECT_NONFATAL_FAILURE(parse_prometheus("# HELP a x\n# TYPE a gauge\na 3"), "must end with a newline");
}

TEST(PrometheusText, HelpAndLabelValuesAreEscaped) {
  kt::MetricsSnapshot snapshot;
  kt::Metric metric{"odd.metric", "{thing}", "a \"quoted\" help \\ with\na newline", kt::InstrumentKind::gauge, {}};
  metric.points.push_back(kt::DataPoint{{{"kind", std::string_view("a\"b\\c")}}, std::int64_t{3}});
  snapshot.metrics.push_back(metric);

  const std::string text = kt::to_prometheus(snapshot);

  EXPECT_NE(text.find("# HELP odd_metric a \"quoted\" help \\\\ with\\na newline\n"), std::string::npos) << text;
  EXPECT_NE(text.find("odd_metric{kind=\"a\\\"b\\\\c\"} 3\n"), std::string::npos) << text;
  parse_prometheus(text);
  const json parsed = json::parse(kt::to_otlp_json(snapshot));
  EXPECT_EQ(parsed["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["description"], metric.description);
}

}  // namespace
